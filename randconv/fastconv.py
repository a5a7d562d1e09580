"""A Winograd F(4x4, 3x3) convolution for 3x3 stride-1 convs, in plain jnp.

The Conv1-DeConv1 width sweep of Section 4.2 (Figs. 8, 9) spends nearly all
its time in 3x3, stride-1 convs with many channels. Winograd's minimal
filtering (Lavin & Gray 2016, *Fast Algorithms for Convolutional Neural
Networks*, arXiv 1509.09308) computes each 4x4 output tile from a 6x6 input
tile with 36 instead of 144 multiplies per (input, output) channel pair:

  Y = A^T [ (G g G^T) (.) (B^T d B) ] A

where ``d`` is a 6x6 input tile, ``g`` the 3x3 kernel, and (.) the
element-wise product, which, summed over the input channels, becomes one
batched matmul over the 36 tile positions:
``M[t] = V[t] @ U[t]``, ``V [36, tiles, C_in]``, ``U [36, C_in, C_out]``.

Layout choices that matter on a CPU:
* the 6x6 input tiles are read with strided slices (``x[:, a::4]``), never a
  gather, and transformed row then column as sums with the constant
  coefficients, which XLA fuses into one pass;
* the matmul is one ``dot_general`` with the 36 positions as its batch axis;
* the output transform writes the 4x4 tiles interleaved straight into NHWC.

Float32 error: about 1e-6 relative to the output's scale for the interpolation
points 0, +-1, +-2 (tests/test_fastconv.py checks it against
:func:`randconv.policy.direct_conv`, the direct convolution, which stays the
reference).

The same module holds the other exact rewrites that the ``auto`` and
``wgrad`` conv paths (:mod:`randconv.ops`) pick where they measured faster:
the Winograd kernel gradient (:func:`weight_grad3x3`, training), unpooling
plus the next conv on the pooled map (:func:`unpool_conv3x3`), and 3x3
convs with 3 channels on one side as one matmul (:func:`thin_conv3x3`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

TILE = 4  # output tile m in F(m x m, 3 x 3)
ALPHA = TILE + 2  # input tile size

# Lavin & Gray's F(4, 3) matrices (interpolation points 0, 1, -1, 2, -2, inf).
BT = np.array([[4, 0, -5, 0, 1, 0],
               [0, -4, -4, 1, 1, 0],
               [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0],
               [0, 4, 0, -5, 0, 1]], np.float64)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 1, 1, 0],
               [0, 1, -1, 2, -2, 0],
               [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], np.float64)


def _acc(dtype) -> jnp.dtype:
  """The accumulation type for ``dtype``: at least float32."""
  return jnp.promote_types(dtype, jnp.float32)


def _combine(coeffs: np.ndarray, parts: list[jax.Array]) -> jax.Array:
  """``out[r] = sum_a coeffs[r, a] * parts[a]``, stacked on a new axis 0.

  Written as broadcasts of constant columns so XLA fuses each transform
  into one loop (a compact program: 36 separate sums compile 10x slower).
  """
  out = None
  for a, part in enumerate(parts):
    if not np.any(coeffs[:, a]):
      continue
    col = jnp.asarray(coeffs[:, a], part.dtype).reshape(
        (-1,) + (1,) * part.ndim)
    term = col * part[None]
    out = term if out is None else out + term
  return out


def transform_kernel(w: jax.Array) -> jax.Array:
  """HWIO [3, 3, C_in, C_out] -> U = G g G^T as [36, C_in, C_out]."""
  if w.shape[:2] != (3, 3):
    raise ValueError(f"Winograd F(4x4, 3x3) needs a 3x3 kernel, got {w.shape}")
  g = jnp.asarray(G, w.dtype)
  u = jnp.einsum("ai,ijco,bj->abco", g, w, g,
                 precision=lax.Precision.HIGHEST)
  return u.reshape(ALPHA * ALPHA, *w.shape[2:])


def transform_input(x: jax.Array, padding: int, out_hw: tuple[int, int]
                    ) -> jax.Array:
  """NHWC input -> V = B^T d B for every tile, [36, N, tiles_h, tiles_w, C].

  Tile (i, j) reads padded rows 4i..4i+5 and columns 4j..4j+5: six strided
  slices per axis, columns first, then rows, so the result comes out in
  (row, column) order with no transpose.
  """
  n, h, w, c = x.shape
  th, tw = -(-out_hw[0] // TILE), -(-out_hw[1] // TILE)
  hp, wp = TILE * th + 2, TILE * tw + 2
  x = jnp.pad(x, ((0, 0), (padding, hp - h - padding),
                  (padding, wp - w - padding), (0, 0)))
  cols = _combine(BT, [lax.slice_in_dim(x, b, b + TILE * (tw - 1) + 1, TILE,
                                        axis=2) for b in range(ALPHA)])
  # cols: [6 (s), N, hp, tw, C]
  v = _combine(BT, [lax.slice_in_dim(cols, a, a + TILE * (th - 1) + 1, TILE,
                                     axis=2) for a in range(ALPHA)])
  return v.reshape(ALPHA * ALPHA, n, th, tw, c)  # [6 (r) x 6 (s), ...]


def transform_output(m: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
  """M [36, N, th, tw, C] -> Y = A^T M A interleaved into NHWC, cropped."""
  _, n, th, tw, c = m.shape
  m = m.reshape(ALPHA, ALPHA, n, th, tw, c)
  z = _combine(AT, [m[:, s] for s in range(ALPHA)])  # [4 (q), 6 (r), ...]
  y = _combine(AT, [z[:, r] for r in range(ALPHA)])  # [4 (p), 4 (q), ...]
  y = jnp.transpose(y, (2, 3, 0, 4, 1, 5)).reshape(n, th * TILE, tw * TILE, c)
  return y[:, :out_hw[0], :out_hw[1], :]


def winograd_conv3x3(x: jax.Array, w: jax.Array, padding: int = 1,
                     u: jax.Array | None = None) -> jax.Array:
  """3x3, stride-1 cross-correlation by Winograd F(4x4, 3x3).

  Same contract as :func:`randconv.policy.direct_conv` with ``stride=1``,
  ``groups=1``: ``x`` [N, H, W, C_in], ``w`` HWIO [3, 3, C_in, C_out],
  zero padding ``padding`` on every side.

  Args:
    x: input, NHWC.
    w: kernel, HWIO.
    padding: zero padding (1 keeps the size).
    u: the transformed kernel (:func:`transform_kernel`), when the caller
      already has it.

  Returns:
    [N, H + 2 p - 2, W + 2 p - 2, C_out].
  """
  if x.ndim != 4 or w.ndim != 4 or w.shape[2] != x.shape[3]:
    raise ValueError(f"shapes do not fit: x {x.shape}, w {w.shape}")
  out_hw = (x.shape[1] + 2 * padding - 2, x.shape[2] + 2 * padding - 2)
  if min(out_hw) < 1:
    raise ValueError(f"a {x.shape[1]}x{x.shape[2]} input with padding "
                     f"{padding} has no 3x3 output")
  if u is None:
    u = transform_kernel(w)
  v = transform_input(x, padding, out_hw)  # [36, N, th, tw, C_in]
  t, n, th, tw, c = v.shape
  m = lax.dot_general(v.reshape(t, n * th * tw, c), u.astype(v.dtype),
                      (((2,), (1,)), ((0,), (0,))),
                      precision=lax.Precision.HIGHEST)  # [36, tiles, C_out]
  return transform_output(m.reshape(t, n, th, tw, -1), out_hw)


def transform_grad_output(dy: jax.Array) -> jax.Array:
  """The output gradient in Winograd space: A dY A^T for every 4x4 tile of
  ``dy`` [N, H_out, W_out, C_out] (zero beyond the edge), as
  [36, N, tiles_h, tiles_w, C_out]: the transpose of
  :func:`transform_output`."""
  n, oh, ow, c = dy.shape
  th, tw = -(-oh // TILE), -(-ow // TILE)
  dy = jnp.pad(dy, ((0, 0), (0, TILE * th - oh), (0, TILE * tw - ow), (0, 0)))
  t = dy.reshape(n, th, TILE, tw, TILE, c)
  cols = _combine(AT.T, [t[:, :, :, :, q] for q in range(TILE)])
  # cols: [6 (s), N, th, 4 (p), tw, C]
  m = _combine(AT.T, [cols[:, :, :, p] for p in range(TILE)])
  return m.reshape(ALPHA * ALPHA, n, th, tw, c)  # [6 (r) x 6 (s), ...]


CHUNK_FLOATS = 2 ** 19  # per-chunk input size that keeps a CPU's cache warm


def batch_chunk(n: int, per_item: int, target: int = CHUNK_FLOATS) -> int:
  """The largest divisor of ``n`` whose chunk holds at most ``target``
  floats at ``per_item`` floats an image (at least 1)."""
  best = 1
  for c in range(1, n + 1):
    if n % c == 0 and c * per_item <= target:
      best = c
  return best


def _weight_grad_sum(x: jax.Array, dy: jax.Array, padding: int) -> jax.Array:
  """dU = sum over tiles of V (.) (A dY A^T): [36, C_in, C_out]."""
  v = transform_input(x, padding, dy.shape[1:3])
  t = v.shape[1] * v.shape[2] * v.shape[3]
  m = transform_grad_output(dy)
  return lax.dot_general(v.reshape(ALPHA * ALPHA, t, -1),
                         m.reshape(ALPHA * ALPHA, t, -1),
                         (((1,), (1,)), ((0,), (0,))),
                         precision=lax.Precision.HIGHEST,
                         preferred_element_type=_acc(x.dtype))


def weight_grad3x3(x: jax.Array, dy: jax.Array, padding: int = 1,
                   chunk: int | None = None) -> jax.Array:
  """The kernel gradient of a 3x3 stride-1 conv by Winograd F(3x3, 4x4).

  For ``y = conv(x, w, padding)`` and the gradient ``dy`` of y, returns
  ``dL/dw`` HWIO [3, 3, C_in, C_out]: differentiating
  ``Y = A^T [U (.) V] A`` by U gives ``dU = sum over tiles of
  V (.) (A dY A^T)``, one matmul batched over the 36 positions
  (``[36, C_in, tiles] @ [36, tiles, C_out]``), and ``dw = G^T dU G``:
  4x fewer multiplies than the direct correlation of x with dy, which
  XLA's CPU backend runs at a third of its forward conv's speed.

  The batch is summed in chunks of ``chunk`` images (a ``lax.scan``; by
  default the largest divisor of the batch whose chunk of x or of dy,
  whichever is larger, holds at most :data:`CHUNK_FLOATS` floats; for a
  prime batch of large images that is one image at a time): the
  transformed tiles of a chunk stay in the CPU's cache, which makes the
  whole 2-6x faster than one pass over a 32-image batch (README, Section 3,
  "where the time goes"). The sum is kept in at least float32; the result
  has x's dtype.
  """
  out_hw = dy.shape[1:3]
  n = x.shape[0]
  dy = dy.astype(x.dtype)
  if chunk is None:
    chunk = batch_chunk(n, max(x.shape[1] * x.shape[2] * x.shape[3],
                               out_hw[0] * out_hw[1] * dy.shape[3]))
  if n % chunk:
    raise ValueError(f"chunk {chunk} does not divide the batch {n}")
  if chunk == n:
    du = _weight_grad_sum(x, dy, padding)
  else:
    def body(acc, pair):
      return acc + _weight_grad_sum(pair[0], pair[1], padding), None
    zero = jnp.zeros((ALPHA * ALPHA, x.shape[3], dy.shape[3]),
                     _acc(x.dtype))
    du, _ = lax.scan(body, zero, (x.reshape(n // chunk, chunk, *x.shape[1:]),
                                  dy.reshape(n // chunk, chunk,
                                             *dy.shape[1:])))
  g = jnp.asarray(G, du.dtype)
  return jnp.einsum("ai,abco,bj->ijco",
                    g, du.reshape(ALPHA, ALPHA, *du.shape[1:]), g,
                    precision=lax.Precision.HIGHEST).astype(x.dtype)


def direct_conv(x, w, stride, pads, lhs_dilation=(1, 1), groups=1):
  """XLA's convolution at full float32 precision: the reference."""
  return lax.conv_general_dilated(
      x, w, (stride, stride), pads, lhs_dilation=lhs_dilation,
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups,
      precision=lax.Precision.HIGHEST)


def _direct(x, w, padding):
  return direct_conv(x, w, 1, ((padding, padding), (padding, padding)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv3x3_wgrad(x: jax.Array, w: jax.Array, padding: int) -> jax.Array:
  """A 3x3 stride-1 conv, direct forward and input gradient, kernel
  gradient by Winograd (:func:`weight_grad3x3`): on a CPU, XLA's
  kernel-gradient conv runs at a third of its forward's speed
  (benchmarks/train_vs_torch.py)."""
  return _direct(x, w, padding)


def _wgrad_fwd(x, w, padding):
  return conv3x3_wgrad(x, w, padding), (x, w)


def _wgrad_bwd(padding, res, dy):
  x, w = res
  _, dx_fn = jax.vjp(lambda x: _direct(x, w, padding), x)
  return dx_fn(dy)[0], weight_grad3x3(x, dy, padding).astype(w.dtype)


conv3x3_wgrad.defvjp(_wgrad_fwd, _wgrad_bwd)


def _matmul(a: jax.Array, b: jax.Array) -> jax.Array:
  """Contracts the last axis of ``a`` with the first of ``b``, as one 2-D
  matmul (XLA's CPU dot is fastest on flat operands), summed in at least
  float32 and returned in ``a``'s dtype."""
  out = lax.dot_general(a.reshape(-1, a.shape[-1]), b.astype(a.dtype),
                        (((1,), (0,)), ((), ())),
                        precision=lax.Precision.HIGHEST,
                        preferred_element_type=_acc(a.dtype))
  return out.reshape(*a.shape[:-1], b.shape[1]).astype(a.dtype)


def _gram(a: jax.Array, b: jax.Array) -> jax.Array:
  """``sum over every position of a[..., :]^T b[..., :]``: [C_a, C_b], summed
  in at least float32 and returned in ``a``'s dtype."""
  out = lax.dot_general(a.reshape(-1, a.shape[-1]),
                        b.reshape(-1, b.shape[-1]).astype(a.dtype),
                        (((0,), (0,)), ((), ())),
                        precision=lax.Precision.HIGHEST,
                        preferred_element_type=_acc(a.dtype))
  return out.astype(a.dtype)


# Unpooling puts each pooled value at the top-left of its 2x2 block, so the
# output pixel (2i + a, 2j + b) of a 3x3 padding-1 conv sees pooled pixels
# (i, j) shifted by (0 or 1, 0 or 1), each through one kernel tap:
# phase (a, b) -> {shift: tap}.
_PHASE_TAPS = {
    (0, 0): {(0, 0): (1, 1)},
    (0, 1): {(0, 0): (1, 0), (0, 1): (1, 2)},
    (1, 0): {(0, 0): (0, 1), (1, 0): (2, 1)},
    (1, 1): {(0, 0): (0, 0), (0, 1): (0, 2), (1, 0): (2, 0), (1, 1): (2, 2)},
}
_SHIFTS = ((0, 0), (0, 1), (1, 0), (1, 1))


def unpool_conv3x3(p: jax.Array, w: jax.Array, form: str = "phases"
                   ) -> jax.Array:
  """A 3x3, stride-1, padding-1 conv of ``unpool2d(p, 2, (2h, 2w))``,
  computed on the pooled map ``p`` without the unpooled zeros.

  Unpooling puts each value at the top-left of its 2x2 block (docs/design.md §2), so
  three quarters of the conv's input are zeros. Output pixel (2i + a, 2j + b)
  sees only the kernel taps that land on even rows and columns: one tap for
  phase (0, 0), two for (0, 1) and (1, 0), four for (1, 1), nine in all per
  2x2 block against 36 for the direct conv. Exact up to float rounding (no
  Winograd transform). Two forms:

  * ``phases``: each phase is one matmul of the shifted pooled maps,
    concatenated along channels, with its own taps (9 taps' multiplies);
  * ``matmul``: the four shifted maps side by side ([.., 4 C_in]) times one
    [4 C_in, 4 C_out] kernel holding every phase's taps and zeros elsewhere:
    16/9 the multiplies, but one matmul and fewer passes over memory, which
    makes its backward pass nearly 2x faster at 64 channels (training).

  Args:
    p: the pooled map, [N, h, w, C_in].
    w: HWIO [3, 3, C_in, C_out].
    form: ``phases`` or ``matmul``.

  Returns:
    [N, 2h, 2w, C_out], equal to ``conv2d(unpool2d(p, 2, (2h, 2w)), w, 1, 1)``.
  """
  if w.shape[:2] != (3, 3) or w.shape[2] != p.shape[3]:
    raise ValueError(f"shapes do not fit: p {p.shape}, w {w.shape}")
  if form not in ("phases", "matmul"):
    raise ValueError(f"unknown form {form!r}; choose phases or matmul")
  n, h, wd, c = p.shape
  co = w.shape[3]
  q = jnp.pad(p, ((0, 0), (0, 1), (0, 1), (0, 0)))
  shifted = {s: q[:, s[0]:s[0] + h, s[1]:s[1] + wd] for s in _SHIFTS}
  w = w.astype(p.dtype)
  if form == "matmul":
    zero = jnp.zeros((c, co), p.dtype)
    k = jnp.concatenate([
        jnp.concatenate([w[taps[s]] if s in taps else zero
                         for taps in _PHASE_TAPS.values()], axis=1)
        for s in _SHIFTS], axis=0)  # [4 C_in (shift), 4 C_out (phase)]
    y = _matmul(jnp.concatenate([shifted[s] for s in _SHIFTS], axis=-1), k)
    y = y.reshape(n, h, wd, 2, 2, co)  # [.., a, b, C]
  else:
    outs = []
    for taps in _PHASE_TAPS.values():
      x = jnp.concatenate([shifted[s] for s in taps], axis=-1)
      outs.append(_matmul(x, jnp.concatenate([w[t] for t in taps.values()],
                                             axis=0)))
    y = jnp.stack(outs, axis=3).reshape(n, h, wd, 2, 2, co)
  return jnp.transpose(y, (0, 1, 3, 2, 4, 5)).reshape(n, 2 * h, 2 * wd, co)


THIN = 4  # channel count at or below which a 3x3 conv runs as one matmul


def _taps(x: jax.Array, padding: int, out_hw: tuple[int, int]) -> jax.Array:
  """im2col: ``x`` [N, H, W, C] zero-padded by ``padding``, the nine 3x3
  taps stacked on the channel axis in (row, column, channel) order:
  [N, out_h, out_w, 9 C]. Cheap only when C is small."""
  xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  return jnp.concatenate([xp[:, i:i + out_hw[0], j:j + out_hw[1]]
                          for i in range(3) for j in range(3)], axis=-1)


def _thin_forward(x: jax.Array, w: jax.Array, padding: int) -> jax.Array:
  n, h, wd, c = x.shape
  out_hw = (h + 2 * padding - 2, wd + 2 * padding - 2)
  co = w.shape[3]
  if c <= co:  # few inputs: im2col, one matmul with K = 9 C_in
    return _matmul(_taps(x, padding, out_hw), w.reshape(9 * c, co))
  # Few outputs: one matmul of x with all nine taps (N = 9 C_out), then the
  # nine shifted partial maps summed; y[a, b] = sum z_pad[a + i, b + j, i, j].
  z = _matmul(x.astype(_acc(x.dtype)),
              jnp.transpose(w, (2, 0, 1, 3)).reshape(c, 9 * co))
  z = jnp.pad(z.reshape(n, h, wd, 9, co),
              ((0, 0), (padding, padding), (padding, padding), (0, 0), (0, 0)))
  y = None
  for t in range(9):
    i, j = divmod(t, 3)
    part = z[:, i:i + out_hw[0], j:j + out_hw[1], t]
    y = part if y is None else y + part
  return y.astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def thin_conv3x3(x: jax.Array, w: jax.Array, padding: int = 1) -> jax.Array:
  """A 3x3 stride-1 conv with few input or output channels (RGB in or out)
  as one matmul, forward and backward.

  XLA's CPU conv runs the first and last layers of a VGG (3 -> 64 and
  64 -> 3 channels) at 10-25 GFLOP/s; as a matmul with 27 on one side they
  run several times faster:

  * few inputs: the nine taps of ``x`` stacked on the channel axis (im2col,
    9 C_in channels) times the kernel as [9 C_in, C_out];
  * few outputs: ``x`` times all nine taps at once ([C_in, 9 C_out]), then
    the nine shifted partial maps summed;
  * the input gradient is the conv of ``dy`` with the flipped, transposed
    kernel and padding ``2 - padding``: the same function with inputs and
    outputs swapped, so it takes the other form;
  * the kernel gradient is one matmul of the im2col of the thin side with
    the other side.

  Same contract as :func:`randconv.policy.direct_conv` with ``stride=1``,
  ``groups=1`` and ``padding`` 0, 1 or 2; exact up to float rounding.
  """
  if x.ndim != 4 or w.shape[:2] != (3, 3) or w.shape[2] != x.shape[3]:
    raise ValueError(f"shapes do not fit: x {x.shape}, w {w.shape}")
  if padding not in (0, 1, 2):
    raise ValueError(f"thin_conv3x3 takes padding 0, 1 or 2, got {padding}")
  if min(x.shape[1:3]) + 2 * padding - 2 < 1:
    raise ValueError(f"a {x.shape[1]}x{x.shape[2]} input with padding "
                     f"{padding} has no 3x3 output")
  return _thin_forward(x, w, padding)


def _thin_fwd(x, w, padding):
  return thin_conv3x3(x, w, padding), (x, w)


def _thin_bwd(padding, res, dy):
  x, w = res
  c, co = w.shape[2], w.shape[3]
  flipped = jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2))
  dx = _thin_forward(dy.astype(x.dtype), flipped, 2 - padding)
  if c <= co:  # dW [(i, j, c), o] = taps(x)^T dy
    dw = _gram(_taps(x, padding, dy.shape[1:3]), dy).reshape(3, 3, c, co)
  else:
    # dW[i, j] = sum_uv x[u, v]^T dy[u + p - i, v + p - j]: the taps of dy
    # at padding 2 - p on x's grid hold dy[u + p - i] at tap 2 - i.
    q = _taps(dy.astype(x.dtype), 2 - padding, x.shape[1:3])
    dw = _gram(q, x).reshape(3, 3, co, c)[::-1, ::-1]
    dw = jnp.transpose(dw, (0, 1, 3, 2))
  return dx, dw.astype(w.dtype)


thin_conv3x3.defvjp(_thin_fwd, _thin_bwd)


def small_conv(x: jax.Array, w: jax.Array, padding: int) -> jax.Array:
  """A stride-1 conv with few channels as one fused elementwise program.

  Each output channel is the sum of ``k * k * C_in`` shifted input planes
  times a scalar weight, computed channel-major (``[C, B, H, W]``, so the
  innermost axis is the image row and vectorises) and stacked back to NHWC.
  XLA fuses the whole sum into one loop per output channel. For convs with
  a handful of channels on both sides (a width-4 net) it beats XLA's CPU
  conv 4-7x: 4 -> 4 at 64 px, batch 8, 0.6 ms against 4 ms. Its cost grows
  with ``k * k * C_in * C_out``, so it only suits small products
  (:class:`randconv.policy.ConvPolicy`, ``small_max_terms``). Plain jnp, so
  every derivative passes through.
  """
  k, _, ci, co = w.shape
  oh = x.shape[1] + 2 * padding - k + 1
  ow = x.shape[2] + 2 * padding - k + 1
  xt = jnp.pad(jnp.moveaxis(x, -1, 0),
               ((0, 0), (0, 0), (padding, padding), (padding, padding)))
  outs = []
  for o in range(co):
    acc = None
    for i in range(k):
      for j in range(k):
        for c in range(ci):
          t = xt[c, :, i:i + oh, j:j + ow] * w[i, j, c, o]
          acc = t if acc is None else acc + t
    outs.append(acc)
  return jnp.stack(outs, axis=-1)


def supports(kernel: int, stride: int, groups: int,
             dilation: int = 1) -> bool:
  """Whether :func:`winograd_conv3x3` computes this conv."""
  return kernel == 3 and stride == 1 and groups == 1 and dilation == 1


__all__ = ["winograd_conv3x3", "unpool_conv3x3", "weight_grad3x3",
           "thin_conv3x3", "small_conv",
           "transform_kernel", "transform_grad_output",
           "transform_input",
           "transform_output", "supports"]
