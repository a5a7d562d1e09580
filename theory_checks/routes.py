"""The limit image the slow, explicit way: route counts n_ij and the full
spatial covariance (Theorem 5.1 / A.1 and Theorem A.7 for small images).

Every layer becomes explicit operators on flattened maps, built here by
enumerating each output pixel's 2-D window (independently of the per-axis
code in :mod:`theory_checks.limits`):

* a conv: one 0/1 selection matrix ``G_t`` per kernel tap t, [HW_out, HW_in];
* a pool: the window-membership matrix (sum for L2, mean for average);
* an unpool or a crop: a 0/1 placement matrix.

With L2 pooling the energy recursion is linear, so the limit is
``y_hat(j) = C sqrt(sum_i n_ij q_0(i))``: ``n`` [HW_out, HW_in] is the
product of the layers' route-count matrices (``sum_t G_t`` for a conv, the
0/1 window matrix for an L2 pool), i.e. ``n_ij`` counts the routes from
input pixel i to output pixel j through the windows, and
``C^2 = c1^2 m2^(L - 1)`` for L convs (sigma = 1). With average pooling the
full covariance K [HW, HW] goes through ``S = sum_t G_t K G_t^T``, the
arc-cosine kernel, ``P K P^T`` for a pool and ``U K U^T`` for an unpool.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from randconv.spec import ChannelMean, Conv, Crop, NetSpec, Pool, Unpool
from randconv.kernels import arccos_relu, max_full_pixels
from theory_checks.limits import (C1, M2, TheoryError, input_energy,
                                  section5_steps)


def _flat(y, x, w):
  return y * w + x


def conv_taps(layer: Conv, in_hw, out_hw) -> list[sp.csr_matrix]:
  """One [HW_out, HW_in] 0/1 matrix per kernel tap (ty, tx)."""
  (hi, wi), (ho, wo) = in_hw, out_hw
  oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
  oy, ox = oy.ravel(), ox.ravel()
  k, s, p = layer.kernel, layer.stride, layer.padding
  taps = []
  for ty in range(k):
    for tx in range(k):
      if layer.transpose:
        # Output o reads the dilated, (k-1-p)-padded input at o + t.
        dy, dx = oy + ty - (k - 1 - p), ox + tx - (k - 1 - p)
        ok = (dy >= 0) & (dx >= 0) & (dy % s == 0) & (dx % s == 0)
        iy, ix = dy // s, dx // s
      else:
        iy, ix = oy * s + ty - p, ox * s + tx - p
        ok = np.ones_like(iy, bool)
      ok &= (iy >= 0) & (iy < hi) & (ix >= 0) & (ix < wi)
      rows = _flat(oy[ok], ox[ok], wo)
      cols = _flat(iy[ok], ix[ok], wi)
      taps.append(sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                                shape=(ho * wo, hi * wi)))
  return taps


def tap_indices(layer: Conv, in_hw, out_hw) -> np.ndarray:
  """[taps, HW_out] input index read by each output pixel per tap; HW_in
  where it reads padding."""
  n_in = in_hw[0] * in_hw[1]
  out = []
  for g in conv_taps(layer, in_hw, out_hw):
    idx = np.full(g.shape[0], n_in, np.int32)
    rows = np.repeat(np.arange(g.shape[0]), np.diff(g.indptr))
    idx[rows] = g.indices
    out.append(idx)
  return np.stack(out)


def pool_matrix(layer: Pool, in_hw, out_hw, mean: bool) -> sp.csr_matrix:
  """Window membership [HW_out, HW_in]; rows sum to 1 when ``mean``."""
  (hi, wi), (ho, wo) = in_hw, out_hw
  rows, cols = [], []
  for a in range(ho):
    for b in range(wo):
      for u in range(layer.window):
        for v in range(layer.window):
          y, x = a * layer.stride + u, b * layer.stride + v
          if y < hi and x < wi:  # ceil mode: cells past the edge are absent
            rows.append(_flat(a, b, wo))
            cols.append(_flat(y, x, wi))
  m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                    shape=(ho * wo, hi * wi))
  if mean:
    m = sp.diags(1.0 / np.asarray(m.sum(axis=1)).ravel()) @ m
  return sp.csr_matrix(m)


def placement(in_hw, out_hw, stride: int = 1) -> sp.csr_matrix:
  """Unpooling (value i to i * stride) or, with stride 1, a crop/identity."""
  (hi, wi), (ho, wo) = in_hw, out_hw
  rows, cols = [], []
  for y in range(hi):
    for x in range(wi):
      if y * stride < ho and x * stride < wo:
        rows.append(_flat(y * stride, x * stride, wo))
        cols.append(_flat(y, x, wi))
  return sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                       shape=(ho * wo, hi * wi))


def route_counts(spec: NetSpec, height: int, width: int
                 ) -> tuple[sp.csr_matrix, float]:
  """The route counts n [HW_out, HW_in] and the constant C of Theorem 5.1.

  ``y_hat = C * sqrt(n @ q_0)`` for the sigma = 1 network with L2 pooling.
  """
  steps = section5_steps(spec, height, width, pooling="l2")
  n = sp.identity(height * width, dtype=np.int64, format="csr")
  convs = 0
  for step in steps:
    layer = step.layer
    if isinstance(layer, Conv):
      m = sum(conv_taps(layer, step.in_hw, step.out_hw))
      convs += 1
    elif isinstance(layer, Pool):
      m = pool_matrix(layer, step.in_hw, step.out_hw, mean=False)
    elif isinstance(layer, Unpool):
      m = placement(step.in_hw, step.out_hw, layer.stride)
    elif isinstance(layer, Crop):
      m = placement(step.in_hw, step.out_hw)
    else:  # ChannelMean
      continue
    n = sp.csr_matrix(m.astype(np.int64) @ n)
  return n, C1 * M2 ** ((convs - 1) / 2)


def route_limit(spec: NetSpec, x: np.ndarray) -> np.ndarray:
  """The L2 limit image via explicit route counts, [H, W] float64."""
  q0 = input_energy(x)
  h, w = q0.shape
  n, c = route_counts(spec, h, w)
  return c * np.sqrt(n @ q0.ravel()).reshape(h, w)


def full_covariance_limit(spec: NetSpec, x: np.ndarray) -> np.ndarray:
  """The average-pooling limit with the full covariance K [HW, HW].

  Raises:
    TheoryError: a map larger than :func:`randconv.kernels.max_full_pixels`.
  """
  x = np.asarray(x, np.float64)
  if x.ndim == 2:
    x = x[..., None]
  h, w, c = x.shape
  steps = section5_steps(spec, h, w, pooling="avg")
  biggest = max(s.out_hw[0] * s.out_hw[1] for s in steps)
  cap = max_full_pixels()
  if max(biggest, h * w) > cap:
    raise TheoryError(f"the full covariance needs maps of at most "
                      f"{cap} pixels, this one has {biggest}")
  flat = x.reshape(h * w, c)
  k = flat @ flat.T
  y = None
  for step in steps:
    layer = step.layer
    if isinstance(layer, Conv):
      s = np.zeros((step.out_hw[0] * step.out_hw[1],) * 2)
      for g in conv_taps(layer, step.in_hw, step.out_hw):
        s += g @ (g @ k).T
      d = np.diag(s)
      if step.output_conv:
        y = C1 * np.sqrt(d)
        continue
      k = arccos_relu(s, d[:, None], d[None, :])
    elif isinstance(layer, Pool):
      p = pool_matrix(layer, step.in_hw, step.out_hw, mean=True)
      k = p @ (p @ k).T
    elif isinstance(layer, (Unpool, Crop)):
      stride = layer.stride if isinstance(layer, Unpool) else 1
      u = placement(step.in_hw, step.out_hw, stride)
      if y is not None:
        y = u @ y
      else:
        k = u @ (u @ k).T
    elif isinstance(layer, ChannelMean):
      continue
  return y.reshape(h, w)
