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
:func:`randconv.ops.conv2d`, the direct convolution, which stays the
reference).
"""

from __future__ import annotations

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

  Same contract as :func:`randconv.ops.conv2d` with ``stride=1``,
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


def weight_grad3x3(x: jax.Array, dy: jax.Array, padding: int = 1
                   ) -> jax.Array:
  """The kernel gradient of a 3x3 stride-1 conv by Winograd F(3x3, 4x4).

  For ``y = conv(x, w, padding)`` and the gradient ``dy`` of y, returns
  ``dL/dw`` HWIO [3, 3, C_in, C_out]: differentiating
  ``Y = A^T [U (.) V] A`` by U gives ``dU = sum over tiles of
  V (.) (A dY A^T)``, one matmul batched over the 36 positions
  (``[36, C_in, tiles] @ [36, tiles, C_out]``), and ``dw = G^T dU G``:
  4x fewer multiplies than the direct correlation of x with dy, which
  XLA's CPU backend runs at a third of its forward conv's speed.
  """
  out_hw = dy.shape[1:3]
  v = transform_input(x, padding, out_hw)
  t = v.shape[1] * v.shape[2] * v.shape[3]
  m = transform_grad_output(dy.astype(v.dtype))
  du = lax.dot_general(v.reshape(ALPHA * ALPHA, t, -1),
                       m.reshape(ALPHA * ALPHA, t, -1),
                       (((1,), (1,)), ((0,), (0,))),
                       precision=lax.Precision.HIGHEST)  # [36, C_in, C_out]
  g = jnp.asarray(G, du.dtype)
  return jnp.einsum("ai,abco,bj->ijco",
                    g, du.reshape(ALPHA, ALPHA, *du.shape[1:]), g,
                    precision=lax.Precision.HIGHEST)


def unpool_conv3x3(p: jax.Array, w: jax.Array) -> jax.Array:
  """A 3x3, stride-1, padding-1 conv of ``unpool2d(p, 2, (2h, 2w))``,
  computed on the pooled map ``p`` without the unpooled zeros.

  Unpooling puts each value at the top-left of its 2x2 block (SPEC 1.2), so
  three quarters of the conv's input are zeros. Output pixel (2i + a, 2j + b)
  sees only the kernel taps that land on even rows and columns: one tap for
  phase (0, 0), two for (0, 1) and (1, 0), four for (1, 1), nine in all per
  2x2 block against 36 for the direct conv. Each phase is one matmul of the
  shifted pooled maps, concatenated along channels, with the matching taps.
  Exact up to float rounding (no Winograd transform).

  Args:
    p: the pooled map, [N, h, w, C_in].
    w: HWIO [3, 3, C_in, C_out].

  Returns:
    [N, 2h, 2w, C_out], equal to ``conv2d(unpool2d(p, 2, (2h, 2w)), w, 1, 1)``.
  """
  if w.shape[:2] != (3, 3) or w.shape[2] != p.shape[3]:
    raise ValueError(f"shapes do not fit: p {p.shape}, w {w.shape}")
  n, h, wd, c = p.shape
  q = jnp.pad(p, ((0, 0), (0, 1), (0, 1), (0, 0)))
  p01, p10, p11 = q[:, :h, 1:], q[:, 1:, :wd], q[:, 1:, 1:]

  def phase(parts, taps):
    x = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)
    k = jnp.concatenate([w[dy, dx] for dy, dx in taps], axis=0)
    return lax.dot_general(x, k.astype(x.dtype), (((3,), (0,)), ((), ())),
                           precision=lax.Precision.HIGHEST)

  o00 = phase([p], [(1, 1)])
  o01 = phase([p, p01], [(1, 0), (1, 2)])
  o10 = phase([p, p10], [(0, 1), (2, 1)])
  o11 = phase([p, p01, p10, p11], [(0, 0), (0, 2), (2, 0), (2, 2)])
  top = jnp.stack([o00, o01], axis=3)  # [N, h, w, 2, C]
  bottom = jnp.stack([o10, o11], axis=3)
  y = jnp.stack([top, bottom], axis=2)  # [N, h, 2, w, 2, C]
  return y.reshape(n, 2 * h, 2 * wd, -1)


def supports(kernel: int, stride: int, groups: int,
             dilation: int = 1) -> bool:
  """Whether :func:`winograd_conv3x3` computes this conv."""
  return kernel == 3 and stride == 1 and groups == 1 and dilation == 1


__all__ = ["winograd_conv3x3", "unpool_conv3x3", "weight_grad3x3",
           "transform_kernel", "transform_grad_output",
           "transform_input",
           "transform_output", "supports"]
