"""The infinite-width limit image of the Section 5 network, fast.

Two recursions walk a spec's layer records (theory_checks/README.md):

* :func:`energy_limit`, L2-norm pooling (Theorem 5.1 / A.1): the energy map
  ``q(i) = sum_k X(k, i)^2`` follows a linear recursion, a box sum per conv
  times ``m2 = sigma^2 / 2``, a box sum per L2 pool, a placement per unpool.
* :func:`covariance_limit`, average pooling (Theorem A.7): the spatial
  covariance ``K(i, i') = sum_k X(k, i) X(k, i')`` through the arc-cosine
  kernel of the ReLU. It is kept in *banded* form ``K[i, d] = K(i, i + d)``
  for the offsets ``|d| <= D`` that the output still needs. A stride-1 conv
  keeps an offset (both positions see the same tap), ReLU is pointwise in
  the pair, and only average pooling widens it: a pool of window w and
  stride s needs offsets up to ``s D + w - 1`` at its input when ``D`` is
  needed at its output. So ``D`` follows from walking the layers backwards
  (:func:`required_offsets`) and the banded recursion is exact, not an
  approximation. :mod:`theory_checks.routes` computes both limits a second
  way, with explicit route counts and the full covariance matrix.

Both work per axis (every layer here is separable) in float64 numpy, so the
227x227 limit through VGG16 Conv5 takes milliseconds (L2) or seconds (avg).

Scale (**choice**): everything is computed for N(0, 1) weights and the
1/sqrt(N_l) normalisation of the Section 5 network, so the limit is the
exact infinite-width output for sigma = 1. The network is positively
homogeneous, so N(0, sigma^2) weights multiply it by ``sigma ** L``, L the
number of convs (:func:`sigma_factor`); angles never depend on sigma.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from randconv.kernels import (C1, WINDOW_SAMPLES, KernelError, arccos_relu,
                              axis_taps, window_pool_diag)
from randconv.spec import ChannelMean, Conv, Crop, NetSpec, Pool, Unpool

M2 = 0.5                             # E[relu(w)^2] for w ~ N(0, 1)

# The spec is not a network the theory covers: the library's kernel error,
# so one except clause catches both.
TheoryError = KernelError


@dataclass(frozen=True)
class Step:
  """One layer of the Section 5 network with its input and output sizes."""

  layer: object
  in_hw: tuple[int, int]
  out_hw: tuple[int, int]
  output_conv: bool = False  # the conv whose ReLU maps the mean averages


def section5_steps(spec: NetSpec, height: int, width: int,
                   pooling: str | None = None,
                   sampled: bool = False) -> list[Step]:
  """The spec's layers as :class:`Step` records, checked against
  theory_checks/README.md.

  Args:
    spec: a network with the channel-mean output.
    height, width: the input size.
    pooling: ``l2`` or ``avg``: the pooling kind the recursion needs (every
      Pool must have it); ``None`` accepts either.
    sampled: also accept max (and L2) pools, whose kernel the banded
      recursion samples window by window (:func:`covariance_limit`).

  Raises:
    TheoryError: a layer the theory does not cover (max pooling, LRN,
      grouped convs, an activation other than ReLU, no channel mean).
  """
  enc, dec = spec.shapes(height, width)
  shapes = enc + dec
  layers = spec.layers
  names = [type(l).__name__ for l in layers]
  if "ChannelMean" not in names:
    raise TheoryError(f"{spec.arch} {spec.layer}: the Section 5 network ends "
                      "in the channel mean; build the spec with output='mean'")
  mean_at = names.index("ChannelMean")
  if mean_at == 0 or not isinstance(layers[mean_at - 1], Conv):
    raise TheoryError("the channel mean must average the ReLU maps of a conv")
  steps = []
  prev = (height, width)
  for i, (layer, s) in enumerate(zip(layers, shapes)):
    out = (s.height, s.width)
    if isinstance(layer, Conv):
      if layer.activation != "relu":
        raise TheoryError(f"{layer.name}: the theory needs ReLU, not "
                          f"{layer.activation}")
      if layer.groups != 1:
        raise TheoryError(f"{layer.name}: grouped convs are not covered")
    elif isinstance(layer, Pool):
      if not sampled and layer.pooling not in ("l2", "avg"):
        raise TheoryError(
            f"{layer.name}: {layer.pooling} pooling has no closed-form limit; "
            "use pooling='l2' (Theorem 5.1), 'avg' (Theorem A.7) or the "
            "sampled recursion (limit_image(..., 'max'))")
      if not sampled and pooling is not None and layer.pooling != pooling:
        raise TheoryError(f"{layer.name} is {layer.pooling} pooling; this "
                          f"recursion needs {pooling} pooling")
    elif not isinstance(layer, (Unpool, ChannelMean, Crop)):
      raise TheoryError(f"{layer.name}: {type(layer).__name__} is not part "
                        "of the Section 5 network")
    steps.append(Step(layer, prev, out, output_conv=i == mean_at - 1))
    prev = out
  return steps


def n_convs(spec: NetSpec) -> int:
  return len(spec.convs)


def sigma_factor(spec: NetSpec, sigma: float) -> float:
  """The limit for N(0, sigma^2) weights is this times the sigma = 1 one."""
  return sigma ** n_convs(spec)


# --------------------------------------------------------------------------
# Per-axis geometry: A[o, i] = the number of window cells of output o that
# read input i (taps for a conv, pool cells, the unpool placement).

def conv_axis(layer: Conv, n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] tap counts of a conv (or transposed conv) on one axis."""
  return axis_taps(layer, n_in, n_out).sum(axis=0)


def pool_axis(layer: Pool, n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] membership of the pool windows (ceil-mode cells cut)."""
  return axis_taps(layer, n_in, n_out)[0]


def unpool_axis(stride: int, n_in: int, n_out: int) -> np.ndarray:
  return axis_taps(Unpool("unpool", stride, ""), n_in, n_out)[0]


def crop_axis(n_in: int, n_out: int) -> np.ndarray:
  return np.eye(n_out, n_in)


def axis_maps(step: Step) -> tuple[np.ndarray, np.ndarray]:
  """(A_y, A_x) of a step; the layer acts on an [H, W] map as A_y q A_x^T."""
  layer = step.layer
  pairs = list(zip(step.in_hw, step.out_hw))
  if isinstance(layer, Conv):
    return tuple(conv_axis(layer, i, o) for i, o in pairs)
  if isinstance(layer, Pool):
    return tuple(pool_axis(layer, i, o) for i, o in pairs)
  if isinstance(layer, Unpool):
    return tuple(unpool_axis(layer.stride, i, o) for i, o in pairs)
  if isinstance(layer, Crop):
    return tuple(crop_axis(i, o) for i, o in pairs)
  return tuple(np.eye(o, i) for i, o in pairs)  # ChannelMean: identity


def input_energy(x: np.ndarray) -> np.ndarray:
  """q_0(i) = sum over channels of x(c, i)^2. ``x``: [H, W] or [H, W, C]."""
  x = np.asarray(x, np.float64)
  return x * x if x.ndim == 2 else np.sum(x * x, axis=-1)


def energy_limit(spec: NetSpec, x: np.ndarray, *,
                 return_energies: bool = False):
  """The limit image with L2-norm pooling (Theorem 5.1 / A.1), sigma = 1.

  Args:
    spec: the Section 5 network (channel-mean output, L2 or no pooling).
    x: one image, [H, W, C] (or [H, W]), positive pixels.
    return_energies: also return every layer's energy map.

  Returns:
    The limit image, [H, W] float64 (and the list of energy maps).
  """
  q = input_energy(x)
  steps = section5_steps(spec, *q.shape, pooling="l2")
  energies = []
  y = None
  for step in steps:
    ay, ax = (sp.csr_matrix(a) for a in axis_maps(step))
    if isinstance(step.layer, Conv):
      box = ay @ (ax @ q.T).T
      if step.output_conv:
        y = C1 * np.sqrt(box)  # E relu(w . p) = c1 ||p||
        q = y
      else:
        q = M2 * box           # E relu(w . p)^2 = m2 ||p||^2
    elif isinstance(step.layer, ChannelMean):
      pass  # the output conv's step above already gave the mean's limit
    else:
      q = ay @ (ax @ q.T).T    # L2 pool, unpool, crop: exact
    energies.append(q)
  if return_energies:
    return q, energies
  return q


# --------------------------------------------------------------------------
# Average pooling: the banded covariance recursion (Theorem A.7).

def required_offsets(steps: list[Step]) -> list[tuple[int, int]]:
  """The covariance offsets (per axis) each step's *input* must carry so
  that the output's diagonal is exact."""
  need = [(0, 0)] * len(steps)
  d = (0, 0)
  for i in range(len(steps) - 1, -1, -1):
    layer = steps[i].layer
    if isinstance(layer, Conv):
      if layer.stride != 1:
        raise TheoryError(f"{layer.name}: the banded recursion handles "
                          "stride-1 convs only; use method='full'")
    elif isinstance(layer, Pool):
      d = tuple(layer.stride * v + layer.window - 1 for v in d)
    elif isinstance(layer, Unpool):
      d = tuple(v // layer.stride for v in d)
    need[i] = d
  return need


def _shift_sum(k: np.ndarray, axis: int, taps: int, off: int,
               n_out: int) -> np.ndarray:
  """out[o] = sum_{t < taps} k[o + t - off] along ``axis`` (zeros outside)."""
  n_in = k.shape[axis]
  lo, hi = off, max(0, n_out + taps - 1 - off - n_in)
  pad = [(0, 0)] * k.ndim
  pad[axis] = (lo, hi)
  kp = np.pad(k, pad)
  out = 0
  for t in range(taps):
    out = out + np.take(kp, np.arange(t, t + n_out), axis=axis)
  return out


def _mask(k: np.ndarray) -> np.ndarray:
  """Zeros K[i, d] where i + d lies outside the map."""
  h, w, by, bx = k.shape
  dy, dx = (by - 1) // 2, (bx - 1) // 2
  iy = np.arange(h)[:, None] + np.arange(-dy, dy + 1)[None, :]
  ix = np.arange(w)[:, None] + np.arange(-dx, dx + 1)[None, :]
  my = (iy >= 0) & (iy < h)
  mx = (ix >= 0) & (ix < w)
  return k * (my[:, None, :, None] & mx[None, :, None, :])


def _partner_diag(diag: np.ndarray, dy: int, dx: int) -> np.ndarray:
  """out[i, j, a, b] = diag[i + a - dy, j + b - dx], zero outside."""
  p = np.pad(diag, ((dy, dy), (dx, dx)))
  return np.lib.stride_tricks.sliding_window_view(p, (2 * dy + 1, 2 * dx + 1))


def _band(k: np.ndarray, d: tuple[int, int]) -> np.ndarray:
  """Keeps offsets |dy| <= d[0], |dx| <= d[1] (k's band must be wider)."""
  cy, cx = (k.shape[2] - 1) // 2, (k.shape[3] - 1) // 2
  return k[:, :, cy - d[0]:cy + d[0] + 1, cx - d[1]:cx + d[1] + 1]


def _pool_banded_axis(k, axis, layer: Pool, n_out: int, d_out: int):
  """Average pooling along one axis of a banded covariance.

  out[a, e] = sum_{u, u'} k[a s + u, e s + u' - u] / (c_a c_{a+e}).
  """
  s, w = layer.stride, layer.window
  n_in = k.shape[axis]
  d_in = (k.shape[axis + 2] - 1) // 2
  counts = np.array([min(n_in, a * s + w) - a * s for a in range(n_out)],
                    np.float64)
  kk = np.moveaxis(k, (axis, axis + 2), (0, 1))  # [n_in, 2 d_in + 1, ...]
  pad_rows = max(0, (n_out - 1) * s + w - n_in)
  kk = np.pad(kk, [(0, pad_rows)] + [(0, 0)] * (kk.ndim - 1))
  out = np.zeros((n_out, 2 * d_out + 1) + kk.shape[2:])
  rows = np.arange(n_out) * s
  offs = np.arange(-d_out, d_out + 1) * s
  for u in range(w):
    for u2 in range(w):
      idx = offs + u2 - u + d_in
      out += kk[rows + u][:, idx]
  c_a = counts
  partner = np.arange(n_out)[:, None] + np.arange(-d_out, d_out + 1)[None, :]
  c_b = np.where((partner >= 0) & (partner < n_out),
                 counts[np.clip(partner, 0, n_out - 1)], np.inf)
  scale = 1.0 / (c_a[:, None] * c_b)
  out = out * scale.reshape(scale.shape + (1,) * (out.ndim - 2))
  return np.moveaxis(out, (0, 1), (axis, axis + 2))


def _unpool_banded_axis(k, axis, stride: int, n_out: int, d_out: int):
  kk = np.moveaxis(k, (axis, axis + 2), (0, 1))
  n_in, b_in = kk.shape[0], kk.shape[1]
  d_in = (b_in - 1) // 2
  out = np.zeros((n_out, 2 * d_out + 1) + kk.shape[2:])
  a = np.arange(0, n_out, stride)
  a = a[a // stride < n_in]
  e = np.arange(-d_out, d_out + 1)
  e_ok = e % stride == 0
  out[a[:, None], np.nonzero(e_ok)[0][None, :]] = \
      kk[(a // stride)[:, None], (e[e_ok] // stride + d_in)[None, :]]
  return np.moveaxis(out, (0, 1), (axis, axis + 2))


def _input_covariance(x: np.ndarray, d: tuple[int, int]) -> np.ndarray:
  """K_0[i, d] = <x(i), x(i + d)> over the channels of ``x`` [H, W, C],
  for offsets up to ``d``."""
  dy, dx = d
  xp = np.pad(x, ((dy, dy), (dx, dx), (0, 0)))
  win = np.lib.stride_tricks.sliding_window_view(
      xp, (2 * dy + 1, 2 * dx + 1), axis=(0, 1))  # [h, w, C, by, bx]
  return np.einsum("ijc,ijcab->ijab", x, win)


def _conv_covariance(k: np.ndarray, step: Step
                     ) -> tuple[np.ndarray, np.ndarray]:
  """A conv's banded pre-activation covariance (the band of its input
  ``k``) and its diagonal."""
  layer = step.layer
  off = (layer.kernel - 1 - layer.padding if layer.transpose
         else layer.padding)
  s = _shift_sum(k, 0, layer.kernel, off, step.out_hw[0])
  s = _shift_sum(s, 1, layer.kernel, off, step.out_hw[1])
  s = _mask(s)
  cy, cx = (s.shape[2] - 1) // 2, (s.shape[3] - 1) // 2
  return s, s[:, :, cy, cx]


def _sampled_pool(pre: np.ndarray | None, step: Step, d_next, samples: int,
                  seed: int, info: dict | None) -> np.ndarray:
  """A max (or L2) pool's output diagonal, sampled window by window from
  the banded pre-activations ``pre`` of the conv before it."""
  layer = step.layer
  if d_next != (0, 0):
    raise TheoryError(
        f"{layer.name}: the banded recursion samples a {layer.pooling} "
        "pool only where the layers after it need its diagonal alone; "
        "use randconv.kernel_fn (maps up to 64x64)")
  if pre is None:
    raise TheoryError(f"{layer.name}: a sampled pool must follow a ReLU "
                      "conv")
  diag, se = window_pool_diag(pre, layer, step.out_hw, samples=samples,
                              seed=seed)
  if info is not None:
    info.setdefault("pool_rel_se", []).append(se)
  return diag[:, :, None, None]


def _resample_banded(k: np.ndarray, step: Step, d_next) -> np.ndarray:
  """Average pooling or unpooling of a banded covariance, both axes."""
  layer, (ho, wo) = step.layer, step.out_hw
  if isinstance(layer, Pool):
    k = _pool_banded_axis(k, 0, layer, ho, d_next[0])
    return _mask(_pool_banded_axis(k, 1, layer, wo, d_next[1]))
  k = _unpool_banded_axis(k, 0, layer.stride, ho, d_next[0])
  return _unpool_banded_axis(k, 1, layer.stride, wo, d_next[1])


def covariance_limit(spec: NetSpec, x: np.ndarray, *,
                     return_diagonals: bool = False,
                     samples: int | None = None, seed: int = 0,
                     info: dict | None = None):
  """The limit image with average pooling (Theorem A.7), sigma = 1; with
  max (or L2) pooling where ``samples`` is given.

  Banded form (module docstring): exact for any size; memory is
  ``H W (2D + 1)^2`` floats at the widest layer (D = 15 before VGG16's
  pool1 at Conv5: 0.4 GB at 227x227). A max pool has no closed form: its
  output's diagonal is estimated from ``samples`` draws of each window's
  pre-activations (:func:`randconv.kernels.window_pool_diag`); this needs
  the pool's output diagonal only (as in the pool1 network of Figs. 8-9),
  and its relative standard error goes to ``info["pool_rel_se"]``.

  Args:
    spec: the Section 5 network (channel-mean output, average or no
      pooling, stride-1 convs; max pooling with ``samples``).
    x: one image, [H, W, C] (or [H, W]).
    return_diagonals: also return every layer's diagonal K(i, i).
    samples: draws per max-pool window (None: max pooling is refused).
    seed: the max pools' sampling seed (pool i uses ``seed + i``).
    info: a dict that receives ``pool_rel_se`` (a list, one per pool).

  Returns:
    The limit image, [H, W] float64 (and the diagonals).
  """
  x = np.asarray(x, np.float64)
  if x.ndim == 2:
    x = x[..., None]
  h, w, _ = x.shape
  steps = section5_steps(spec, h, w, pooling="avg",
                         sampled=samples is not None)
  need = required_offsets(steps)
  k = _input_covariance(x, need[0])
  pre = None  # the last conv's banded pre-activation kernel
  diagonals = []
  y = None
  for i, step in enumerate(steps):
    layer = step.layer
    d_next = need[i + 1] if i + 1 < len(steps) else (0, 0)
    if isinstance(layer, Conv):
      s, diag = _conv_covariance(k, step)
      if step.output_conv:
        k = y = C1 * np.sqrt(diag)
        diagonals.append(y)
        continue
      pre = _band(s, d_next)
      k = arccos_relu(pre, diag[:, :, None, None],
                      _partner_diag(diag, *d_next))
    elif isinstance(layer, Pool) and layer.pooling != "avg":
      k = _sampled_pool(pre, step, d_next, samples, seed + i, info)
    elif isinstance(layer, (Pool, Unpool)):
      k = _resample_banded(k, step, d_next)
    elif isinstance(layer, ChannelMean):
      continue
    elif isinstance(layer, Crop):
      if y is not None:
        k = y = y[:step.out_hw[0], :step.out_hw[1]]
        diagonals.append(y)
        continue
      k = _mask(_band(k[:step.out_hw[0], :step.out_hw[1]], d_next))
    cy, cx = (k.shape[2] - 1) // 2, (k.shape[3] - 1) // 2
    diagonals.append(k[:, :, cy, cx])
  if return_diagonals:
    return y, diagonals
  return y


def limit_image(spec: NetSpec, x: np.ndarray, pooling: str | None = None,
                *, samples: int | None = None, seed: int = 0,
                info: dict | None = None) -> np.ndarray:
  """The limit image of one [H, W, C] image for the spec's pooling kind.

  A spec without pools has one limit; ``pooling`` picks the recursion for
  specs that have pools (default: the pools' own kind): ``l2`` the energy
  recursion, ``avg`` the covariance recursion, ``max`` the covariance
  recursion with each max pool sampled (``samples`` draws per window,
  default :data:`randconv.kernels.WINDOW_SAMPLES`; the spec's pools must be
  max pools).
  """
  kinds = {l.pooling for l in spec.layers if isinstance(l, Pool)}
  if pooling is None:
    pooling = kinds.pop() if len(kinds) == 1 else "l2"
  if pooling == "avg":
    return covariance_limit(spec, x)
  if pooling == "l2":
    return energy_limit(spec, x)
  if pooling == "max":
    if kinds - {"max"}:
      raise TheoryError("the max-pooling limit needs a spec built with "
                        "pooling='max'")
    return covariance_limit(spec, x, samples=samples or WINDOW_SAMPLES,
                            seed=seed, info=info)
  raise TheoryError(f"unknown pooling {pooling!r} for the limit; use l2, avg "
                    "or max")


def angle(a: np.ndarray, b: np.ndarray, axis=None) -> np.ndarray:
  """The angle in radians between two images as vectors (over ``axis``,
  default all)."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  dot = np.sum(a * b, axis=axis)
  na = np.sqrt(np.sum(a * a, axis=axis))
  nb = np.sqrt(np.sum(b * b, axis=axis))
  c = dot / np.maximum(na * nb, np.finfo(np.float64).tiny)
  return np.arccos(np.clip(c, -1.0, 1.0))
