"""The infinite-width maps of the library's layers on a full kernel
``[N, H, W, N, H, W]`` (:mod:`randconv.kernels`): the geometry of convs,
pools, unpools and crops per spatial axis, the linear maps, the arc-cosine
map of ReLU and the channel mean's limit."""

from __future__ import annotations

import functools
import math

import numpy as np

from randconv import settings
from randconv.errors import RandconvError
from randconv.spec import Conv, Crop, Pool, Unpool

C1 = 1.0 / math.sqrt(2.0 * math.pi)  # E[relu(w)] for w ~ N(0, 1)


class KernelError(RandconvError):
  """A network, layer or size the infinite-width kernels do not cover."""


def max_full_pixels() -> int:
  """The largest side (images x pixels) of a full kernel:
  ``RANDCONV_GP_MAX_PIXELS``, 4096 by default (a [4096, 4096] float64
  matrix is 128 MiB and the recursion holds about four)."""
  return settings.current().gp_max_pixels


# --------------------------------------------------------------------------
# Geometry: per axis, one [n_out, n_in] 0/1 matrix per tap or window.

def axis_taps(layer, n_in: int, n_out: int) -> np.ndarray:
  """``[T, n_out, n_in]``: what each output row reads on one axis.

  A conv gives one matrix per tap (a transposed conv is the correlation of
  its input dilated by the stride and padded by ``kernel - 1 - padding``); a
  pool one membership matrix (ceil-mode cells past the edge absent); an
  unpool the placement of value i at ``i * stride``; a crop the top-left
  rows.
  """
  if isinstance(layer, Conv):
    k, s, p = layer.kernel, layer.stride, layer.padding
    a = np.zeros((k, n_out, n_in))
    o = np.arange(n_out)
    for t in range(k):
      if layer.transpose:
        d = o + t - (k - 1 - p)
        ok = (d >= 0) & (d % s == 0) & (d // s < n_in)
        a[t, o[ok], d[ok] // s] = 1
      else:
        i = o * s + t - p
        ok = (i >= 0) & (i < n_in)
        a[t, o[ok], i[ok]] = 1
    return a
  a = np.zeros((1, n_out, n_in))
  if isinstance(layer, Pool):
    for o in range(n_out):
      a[0, o, o * layer.stride:min(n_in, o * layer.stride + layer.window)] = 1
  elif isinstance(layer, Unpool):
    i = np.arange(min(n_in, -(-n_out // layer.stride)))
    a[0, i * layer.stride, i] = 1
  elif isinstance(layer, Crop):
    a[0] = np.eye(n_out, n_in)
  else:
    raise KernelError(f"{layer.name}: no spatial map for "
                      f"{type(layer).__name__}")
  return a


def _map_axis(xp, k, mats: np.ndarray, axis: int):
  """``sum_t A_t k A_t^T`` on the spatial ``axis`` (1: rows, 2: columns) of
  both sides of a [N, H, W, N, H, W] kernel, by dense products (the general
  case: a transposed conv with a stride)."""
  out = 0.0
  for a in mats:
    y = xp.moveaxis(xp.tensordot(k, a, axes=([axis], [1])), -1, axis)
    y = xp.moveaxis(xp.tensordot(y, a, axes=([axis + 3], [1])), -1, axis + 3)
    out = out + y
  return out


def _shifts(xp, k, axes, n_out: int, stride: int, offsets, together: bool):
  """Sums of strided slices ``out[o] = k[o * stride + c]`` (zero outside)
  over the offsets c, on every axis in ``axes``: with ``together`` the same
  c on all of them at once (a conv's tap, shared by both sides), else each
  axis summed over c on its own (a pool's cells, independent per side)."""
  n_in = k.shape[axes[0]]
  lo = max(0, -min(offsets))
  hi = max(0, (n_out - 1) * stride + max(offsets) + 1 - n_in)
  pad = [(0, 0)] * k.ndim
  for ax in axes:
    pad[ax] = (lo, hi)
  kp = xp.pad(k, pad) if lo or hi else k

  def cut(c, axes_):
    idx = [slice(None)] * k.ndim
    for ax in axes_:
      idx[ax] = slice(c + lo, c + lo + (n_out - 1) * stride + 1, stride)
    return tuple(idx)

  if together:
    return functools.reduce(lambda s, c: s + kp[cut(c, axes)], offsets, 0.0)
  for ax in axes:
    kp = functools.reduce(lambda s, c: s + kp[cut(c, (ax,))], offsets, 0.0)
  return kp


def _linear_axis(xp, k, layer, axis: int, n_in: int, n_out: int,
                 mean: bool):
  """:func:`linear` on one spatial axis of both sides."""
  both = (axis, axis + 3)
  if isinstance(layer, Conv) and not (layer.transpose and layer.stride > 1):
    kk, p = layer.kernel, layer.padding
    if layer.transpose:
      return _shifts(xp, k, both, n_out, 1,
                     [t - (kk - 1 - p) for t in range(kk)], together=True)
    return _shifts(xp, k, both, n_out, layer.stride,
                   [t - p for t in range(kk)], together=True)
  if isinstance(layer, Pool):
    k = _shifts(xp, k, both, n_out, layer.stride, list(range(layer.window)),
                together=False)
    if mean:
      o = np.arange(n_out) * layer.stride
      w = 1.0 / (np.minimum(n_in, o + layer.window) - o)
      shape = [1] * k.ndim
      shape[axis] = n_out
      k = k * w.reshape(shape) * w.reshape(shape[3:] + shape[:3])
    return k
  if isinstance(layer, Crop):
    idx = [slice(None)] * k.ndim
    idx[axis] = idx[axis + 3] = slice(0, n_out)
    return k[tuple(idx)]
  if isinstance(layer, Unpool):  # zeros between the values: one placement
    m = min(n_in, -(-n_out // layer.stride))
    shape = list(k.shape)
    shape[axis] = shape[axis + 3] = n_out
    idx, src = [slice(None)] * k.ndim, [slice(None)] * k.ndim
    idx[axis] = idx[axis + 3] = slice(0, m * layer.stride, layer.stride)
    src[axis] = src[axis + 3] = slice(0, m)
    return xp.zeros(shape, k.dtype).at[tuple(idx)].set(k[tuple(src)])
  return _map_axis(xp, k, axis_taps(layer, n_in, n_out), axis)


def linear(k: np.ndarray, layer, in_hw, out_hw, *,
           mean: bool = False) -> np.ndarray:
  """The kernel after a linear spatial map (a conv's taps, a pool's window
  sums, an unpool, a crop) of maps whose kernel is ``k`` [N, H, W, N, H, W];
  ``mean`` divides a pool's window sums by their cells inside the map.

  Strided slices where the map reads ``o * stride + c`` (convs, transposed
  convs of stride 1, pools), a strided placement for an unpool, dense
  products (:func:`axis_taps`) otherwise; in float64 XLA, one program per
  layer and shape."""
  import jax
  with jax.enable_x64(True):
    return np.asarray(_linear_x64(layer, tuple(in_hw), tuple(out_hw), mean)(
        np.asarray(k, np.float64)))


@functools.lru_cache(maxsize=64)
def _linear_x64(layer, in_hw, out_hw, mean):
  import jax

  return jax.jit(lambda k: _linear_jnp(k, layer, in_hw, out_hw, mean))


def _linear_jnp(k, layer, in_hw, out_hw, mean: bool):
  """:func:`linear` in jax.numpy, both spatial axes (inside a jitted
  program)."""
  import jax.numpy as jnp
  for axis in (1, 2):
    k = _linear_axis(jnp, k, layer, axis, in_hw[axis - 1], out_hw[axis - 1],
                     mean)
  return k


def conv(k: np.ndarray, layer: Conv, in_hw, out_hw) -> np.ndarray:
  """A conv's pre-activation kernel S from its input's kernel k."""
  return linear(k, layer, in_hw, out_hw)


def avg_pool(k: np.ndarray, layer: Pool, in_hw, out_hw) -> np.ndarray:
  """Average pooling, exact: ``P k P^T`` (each window divided by its cells
  inside the map, as :func:`randconv.ops.pool2d`)."""
  return linear(k, layer, in_hw, out_hw, mean=True)


def unpool(k: np.ndarray, layer: Unpool, in_hw, out_hw) -> np.ndarray:
  return linear(k, layer, in_hw, out_hw)


def crop(k: np.ndarray, layer: Crop, in_hw, out_hw) -> np.ndarray:
  return linear(k, layer, in_hw, out_hw)


# --------------------------------------------------------------------------
# ReLU (Cho & Saul 2009), in numpy or jax.numpy.

def arccos_relu(s, d1, d2, xp=np):
  """``E[relu(u) relu(u')]`` for ``(u, u') ~ N(0, [[d1, s], [s, d2]])``:
  ``sqrt(d1 d2) (sin t + (pi - t) cos t) / (2 pi)``, ``cos t = s /
  sqrt(d1 d2)`` (the first-order arc-cosine kernel of Cho & Saul, 2009).
  ``xp`` is numpy or jax.numpy."""
  norm = xp.sqrt(d1 * d2)
  c = xp.clip(s / xp.where(norm > 0, norm, 1.0), -1.0, 1.0)
  k = norm * (xp.sqrt(1.0 - c * c) + (xp.pi - xp.arccos(c)) * c)
  return xp.where(norm > 0, k / (2 * xp.pi), 0.0)


def relu(s: np.ndarray) -> np.ndarray:
  """The arc-cosine map of a full kernel (any shape whose first and second
  halves index the two sides), in float64 XLA: several times numpy's speed
  on a 4096^2 kernel."""
  import jax
  with jax.enable_x64(True):
    return np.asarray(_relu_x64()(np.asarray(s, np.float64)))


def _relu_full(xp, s):
  """The arc-cosine map of a kernel whose first and second halves of axes
  index the two sides (its diagonal read from the flattened matrix)."""
  shape = s.shape
  side = int(np.prod(shape[:len(shape) // 2]))
  m = s.reshape(side, side)
  d = xp.diagonal(m)
  return arccos_relu(m, d[:, None], d[None, :], xp=xp).reshape(shape)


@functools.cache
def _relu_x64():
  import jax
  import jax.numpy as jnp
  return jax.jit(lambda s: _relu_full(jnp, s))


def channel_mean(pre: np.ndarray) -> np.ndarray:
  """The channel mean of ReLU maps with pre-activation kernel ``pre``
  [N, H, W, N, H, W] converges to the images ``C1 sqrt(S(a p, a p))``
  [N, H, W] (E relu(u) = C1 sd(u))."""
  return C1 * np.sqrt(np.clip(image_diagonal(np, pre), 0, None))


def image_diagonal(xp, k):
  """``k(a p, a p)`` as images [N, H, W] of a [N, H, W, N, H, W] kernel
  (numpy or jax.numpy)."""
  n, h, w = k.shape[:3]
  return xp.diagonal(k.reshape(n * h * w, n * h * w)).reshape(n, h, w)
