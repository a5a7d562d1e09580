"""Infinite-width kernels of the library's networks (the NNGP view).

As the number of channels of every hidden layer grows, a random network of
this library becomes a Gaussian process over its inputs (Neal 1996; for
convolutional networks Novak et al. 2019, arXiv 1810.05148, and
Garriga-Alonso et al. 2019, arXiv 1808.05587). Its law is carried by one
deterministic kernel per layer, ``k(a p, b q) = lim (1/N) sum_n f_n(a, p)
f_n(b, q)`` over images a, b and pixels p, q, which each layer maps to the
next one's:

* a conv (or transposed conv): ``S(a o, b o') = sum_t k(a i_t(o), b
  i_t(o'))``, the same tap t on both sides since different taps have
  independent weights (:func:`conv`); given the layer below, every channel
  of the pre-activation is GP(0, S);
* ReLU: the arc-cosine map of Cho & Saul (2009), :func:`arccos_relu`;
* average pooling, unpooling and cropping are linear: ``A k A^T``
  (:func:`avg_pool`, :func:`unpool`, :func:`crop`);
* max and L2 pooling of ReLU maps have no closed form: the kernel after
  them is ``E[pool(relu(z)) pool(relu(z))^T]`` for z ~ GP(0, S), estimated
  from joint samples of z over every image and pixel, with its standard
  error (:func:`sampled_pool`);
* the channel mean of ReLU maps converges to the deterministic image
  ``C1 sqrt(S(p, p))`` (:func:`channel_mean`);
* a conv without activation at the output is exactly GP(0, S).

Every linear map here acts on each spatial axis separately, one [n_out,
n_in] matrix per axis and tap (:func:`axis_taps`), on a kernel held as
``[N, H, W, N, H, W]`` float64 over all the images at once, so the blocks
between images are as exact as the ones within an image.

Scale (**choice**): a conv's weights are taken with variance one over its
input channels (not over channels times taps), so the kernel is that of the
network as written up to one positive factor for all images together, the
same for any weight scale and width (the networks are positively
homogeneous). neural-tangents' standard parameterisation differs from it by
that factor (it divides by the taps too).

:func:`kernel_fn` is the entry point:
``randconv.kernel_fn(spec)(x1, x2=None, layer=None)``.

References:
  Y. Cho and L. K. Saul. Kernel methods for deep learning. NIPS 2009.
  R. Novak et al. Bayesian deep convolutional networks with many channels
  are Gaussian processes. ICLR 2019, arXiv 1810.05148.
  A. Garriga-Alonso, C. E. Rasmussen and L. Aitchison. Deep convolutional
  networks as shallow Gaussian processes. ICLR 2019, arXiv 1808.05587.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from randconv import settings
from randconv.errors import RandconvError
from randconv.spec import ChannelMean, Conv, Crop, LRN, NetSpec, Pool, Unpool

C1 = 1.0 / math.sqrt(2.0 * math.pi)  # E[relu(w)] for w ~ N(0, 1)
POOL_SAMPLES = 1 << 16    # joint samples of a whole pre-pool map
WINDOW_SAMPLES = 1 << 16  # samples of each pool window (diagonal only)
CHUNK = 1024              # samples per batch (the standard error's unit)


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
    if xp is np:
      out = np.zeros(shape)
      out[tuple(idx)] = k[tuple(src)]
      return out
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
  import jax.numpy as jnp

  def f(k):
    for axis in (1, 2):
      k = _linear_axis(jnp, k, layer, axis, in_hw[axis - 1],
                       out_hw[axis - 1], mean)
    return k

  return jax.jit(f)


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


# --------------------------------------------------------------------------
# Max and L2 pooling: sampled.

def psd_root(s: np.ndarray) -> np.ndarray:
  """A square root R with ``R R^T = s`` (s positive semi-definite): Cholesky
  with a jitter of 1e-10 of the mean diagonal, raised until it succeeds."""
  scale = float(np.mean(np.diag(s))) or 1.0
  for jitter in (1e-10, 1e-8, 1e-6):
    try:
      return np.linalg.cholesky(s + jitter * scale * np.eye(len(s)))
    except np.linalg.LinAlgError:
      continue
  w, v = np.linalg.eigh(s)
  return v * np.sqrt(np.clip(w, 0, None))


def _key(key, i: int):
  """Pool i's sampling key: ``PRNGKey(key + i)`` for an int seed, else
  ``fold_in(key, i)``."""
  import jax
  if isinstance(key, (int, np.integer)):
    return jax.random.PRNGKey(int(key) + i)
  return jax.random.fold_in(key, i)


def sampled_pool(pre: np.ndarray, layer, in_hw, out_hw, *,
                 activation: str | None = "relu",
                 samples: int = POOL_SAMPLES, key=0,
                 chunk: int = CHUNK) -> tuple[np.ndarray, float]:
  """``E[pool(act(z)) pool(act(z))^T]`` for z ~ N(0, pre), drawn jointly
  over every image and pixel of ``pre`` [N, H, W, N, H, W].

  ``layer`` is a pool or a sequence of pools applied in turn (a pool's
  output is not Gaussian, so pools in a row are sampled together). The
  pools are the library's own op (:func:`randconv.ops.pool2d`), so ceil
  mode and the window match the network. Samples are drawn in float32
  batches of ``chunk``; the batch means give the standard error.

  Returns:
    (the kernel [N, H', W', N, H', W'] float64 at ``out_hw``, its relative
    standard error: the Frobenius norm of the entries' errors over the
    norm).
  """
  import jax
  import jax.numpy as jnp
  n_img = pre.shape[0]
  side = n_img * in_hw[0] * in_hw[1]
  root = jnp.asarray(psd_root(pre.reshape(side, side)), jnp.float32)
  p_out = n_img * out_hw[0] * out_hw[1]
  pools = tuple((l.pooling, l.window, l.stride, l.ceil_mode)
                for l in (layer if isinstance(layer, (list, tuple))
                          else [layer]))
  key = jax.random.PRNGKey(key) if isinstance(key, (int, np.integer)) \
      else key
  n = max(2, -(-samples // chunk))
  total = np.zeros((p_out, p_out))
  sq = np.zeros((p_out, p_out))
  for i in range(n):
    est = np.asarray(_pool_batch()(
        root, jax.random.fold_in(key, i), chunk=chunk,
        shape=(n_img,) + tuple(in_hw), pools=pools, activation=activation),
        np.float64)
    total += est
    sq += est * est
  mean = total / n
  var = np.clip(sq / n - mean * mean, 0, None) * n / (n - 1)
  rel_se = math.sqrt(float(np.sum(var)) / n) / float(np.linalg.norm(mean))
  return mean.reshape((n_img,) + tuple(out_hw) + (n_img,) +
                      tuple(out_hw)), rel_se


@functools.cache
def _pool_batch():
  """One batch's kernel estimate, compiled once per shape (the root is an
  argument, not a constant baked into the program)."""
  import jax
  import jax.numpy as jnp

  from randconv import ops

  def batch(root, key, *, chunk, shape, pools, activation):
    z = jnp.dot(root, jax.random.normal(key, (root.shape[1], chunk)),
                precision=jax.lax.Precision.HIGHEST)
    v = ops.activate(z.T.reshape(chunk * shape[0], *shape[1:], 1),
                     activation)
    for pool in pools:
      v = ops.pool2d(v, *pool)
    v = v.reshape(chunk, -1)
    return jnp.dot(v.T, v, precision=jax.lax.Precision.HIGHEST) / chunk

  return jax.jit(batch, static_argnames=("chunk", "shape", "pools",
                                         "activation"))


def window_pool_diag(pre_band: np.ndarray, layer: Pool, out_hw, *,
                     samples: int = WINDOW_SAMPLES, seed: int = 0,
                     chunk: int = 4096) -> tuple[np.ndarray, float]:
  """``E[pool(relu(z))(a)^2]`` per pool window a, z ~ N(0, S) on one map:
  the diagonal of :func:`sampled_pool`'s kernel, at any size.

  Only the window's own cells enter, so this needs the banded pre-activation
  kernel ``pre_band[i, j, dy, dx] = S((i, j), (i + dy, j + dx))`` with
  offsets up to ``window - 1``. Cells of a ceil-mode window past the edge
  are absent; a ReLU output is at least 0, so a zero stands in for them.
  Each batch uses the draws g and -g (antithetic pairs, unbiased, less
  variance).

  Returns:
    (the diagonal [H', W'], its relative standard error over the map).
  """
  h, w, by, bx = pre_band.shape
  cy, cx = (by - 1) // 2, (bx - 1) // 2
  win, st = layer.window, layer.stride
  if cy < win - 1 or cx < win - 1:
    raise KernelError(f"{layer.name}: the band must reach offset {win - 1}")
  ho, wo = out_hw
  cells = [(u, v) for u in range(win) for v in range(win)]
  a_y = np.arange(ho)[:, None] * st
  a_x = np.arange(wo)[None, :] * st
  m = len(cells)
  cov = np.zeros((ho, wo, m, m))
  inside = np.zeros((ho, wo, m), bool)
  for i, (u1, v1) in enumerate(cells):
    y1, x1 = a_y + u1, a_x + v1
    ok1 = (y1 < h) & (x1 < w)
    inside[..., i] = ok1
    for j, (u2, v2) in enumerate(cells):
      ok = ok1 & (a_y + u2 < h) & (a_x + v2 < w)
      val = pre_band[np.minimum(y1, h - 1), np.minimum(x1, w - 1),
                     cy + u2 - u1, cx + v2 - v1]
      cov[..., i, j] = np.where(ok, val, 0.0)
  diag = np.diagonal(cov, axis1=-2, axis2=-1)
  scale = max(float(diag[inside].mean()), 1e-300)
  absent = ~inside[..., None, :] & ~inside[..., :, None]
  cov = (cov + scale * np.eye(m) * absent) / scale  # absent: unit, masked
  root = np.linalg.cholesky(cov + 1e-10 * np.eye(m))
  # A batch holds [H', W', m, chunk] float32 draws: at most 2^24 of them.
  chunk = max(256, min(chunk, (1 << 24) // (ho * wo * m)))
  n = max(2, -(-samples // (2 * chunk)))
  est = np.stack([np.asarray(b, np.float64) for b in _window_batches(
      root.astype(np.float32), inside, layer.pooling, chunk, n, seed)])
  est *= scale
  mean = est.mean(0)
  se = est.std(0, ddof=1) / math.sqrt(len(est))
  return mean, float(np.linalg.norm(se) / np.linalg.norm(mean))


def _window_batches(root, inside, pooling: str, chunk: int, n: int,
                    seed: int):
  """``n`` batch estimates [H', W'] of E[pool(relu(z))^2], each over
  ``chunk`` antithetic pairs (z = root g and -root g)."""
  import jax
  import jax.numpy as jnp
  inside = jnp.asarray(inside, jnp.float32)[..., None]    # [H', W', m, 1]
  key = jax.random.PRNGKey(seed)
  return [_window_batch()(root, inside, jax.random.fold_in(key, i),
                          chunk=chunk, pooling=pooling) for i in range(n)]


@functools.cache
def _window_batch():
  import jax
  import jax.numpy as jnp

  def batch(root, inside, key, *, chunk, pooling):
    count = jnp.maximum(inside.sum(-2), 1.0)                # [H', W', 1]
    reduce = {"max": lambda a: a.max(-2),
              "avg": lambda a: a.sum(-2) / count,
              "l2": lambda a: jnp.sqrt((a * a).sum(-2))}[pooling]
    g = jax.random.normal(key, root.shape[:-1] + (chunk,))
    z = jnp.einsum("abij,abjc->abic", root, g,
                   precision=jax.lax.Precision.HIGHEST)
    sq = [reduce(jnp.maximum(sign * z, 0.0) * inside) ** 2
          for sign in (1.0, -1.0)]
    return 0.5 * (sq[0] + sq[1]).mean(-1)

  return jax.jit(batch, static_argnames=("chunk", "pooling"))


def channel_mean(pre: np.ndarray) -> np.ndarray:
  """The channel mean of ReLU maps with pre-activation kernel ``pre``
  [N, H, W, N, H, W] converges to the images ``C1 sqrt(S(a p, a p))``
  [N, H, W] (E relu(u) = C1 sd(u))."""
  n, h, w = pre.shape[:3]
  d = np.diagonal(pre.reshape(n * h * w, n * h * w)).reshape(n, h, w)
  return C1 * np.sqrt(np.clip(d, 0, None))


# --------------------------------------------------------------------------
# The recursion over a spec.

def check_layers(spec: NetSpec) -> None:
  """Refuses a network the kernels do not cover.

  Raises:
    KernelError: LRN, grouped convs, an activation other than ReLU (or none),
      max or L2 pools whose run of pools does not follow a conv (what they
      pool must be Gaussian given the layers below), a channel mean of maps
      without ReLU.
  """
  layers = spec.layers
  for i, layer in enumerate(layers):
    last = layers[i - 1] if i else None
    if isinstance(layer, LRN):
      raise KernelError(f"{layer.name}: LRN is not covered (not homogeneous)")
    if isinstance(layer, Conv):
      if layer.groups != 1:
        raise KernelError(f"{layer.name}: grouped convs are not covered")
      if layer.activation not in ("relu", None):
        raise KernelError(f"{layer.name}: the kernels need ReLU or no "
                          f"activation, not {layer.activation}")
    if isinstance(layer, Pool) and layer.pooling != "avg":
      j = i
      while j > 0 and isinstance(layers[j - 1], Pool):
        j -= 1
      if j == 0 or not isinstance(layers[j - 1], Conv):
        raise KernelError(f"{layer.name}: a {layer.pooling} pool must follow "
                          "a conv, or pools right after one (what it pools "
                          "must be Gaussian given the layers below)")
    if isinstance(layer, ChannelMean) and not (
        isinstance(last, Conv) and last.activation == "relu"):
      raise KernelError("the channel mean must average a ReLU conv's maps")


def steps(spec: NetSpec, height: int, width: int):
  """``[(layer, in_hw, out_hw)]`` of a network the kernels cover
  (:func:`check_layers`)."""
  check_layers(spec)
  enc, dec = spec.shapes(height, width)
  out, prev = [], (height, width)
  for layer, s in zip(spec.layers, enc + dec):
    out.append((layer, prev, (s.height, s.width)))
    prev = out[-1][2]
  return out


@dataclass
class Walk:
  """What :func:`walk` computed, at the layer it stopped at.

  ``kernel`` [N, H, W, N, H, W]: the kernel of that layer's output (after
  its activation; for a channel mean, the product of its limit images).
  ``limit`` [N, H, W]: the channel mean's limit images, once reached.
  ``pool_rel_se``: per sampled pool, its relative standard error.
  """

  hw: tuple[int, int]
  kernel: np.ndarray | None = None
  limit: np.ndarray | None = None
  pool_rel_se: list[float] = field(default_factory=list)


def check_size(n_images: int, spec: NetSpec, height: int, width: int,
               max_pixels: int | None = None) -> None:
  """Refuses a full kernel bigger than ``max_pixels`` (images x pixels of
  the largest map) with the memory it would need."""
  cap = max_full_pixels() if max_pixels is None else max_pixels
  enc, dec = spec.shapes(height, width)
  biggest = max([height * width] + [s.height * s.width for s in enc + dec])
  side = n_images * biggest
  if side > cap:
    gb = side ** 2 * 8 / 1e9
    raise KernelError(
        f"the full kernel of {n_images} image(s) x {biggest} pixels is "
        f"{gb:.1f} GB of float64 (about 4 of them at once); the limit is "
        f"{cap} images x pixels (RANDCONV_GP_MAX_PIXELS raises it on a "
        "larger machine; fewer images or a smaller size lower the need)")


def walk(spec: NetSpec, x: np.ndarray, *, layer: str | None = None,
         samples: int = POOL_SAMPLES, key=0, rescale: bool = False,
         sample_avg: bool = False, start: np.ndarray | None = None,
         from_layer: int = 0) -> Walk:
  """Runs the kernel recursion of ``spec`` over images ``x`` [N, H, W, C]
  up to ``layer`` (default: the output).

  Args:
    spec: a network :func:`steps` accepts.
    x: the input as the network takes it.
    layer: stop after this layer.
    samples: joint samples per max or L2 pool.
    key: the pools' sampling key (an int seed: pool at step i uses
      ``PRNGKey(seed + i)``; a PRNG key: ``fold_in(key, i)``).
    rescale: the deterministic limit of the library's per-image RMS
      rescaling after every hidden conv (``CNNDCN(rescale=True)``).
    sample_avg: sample average pools too (tests the sampler).
    start, from_layer: begin at step ``from_layer`` with kernel ``start``
      [N, H, W, N, H, W] of its input instead of ``x``'s.
  """
  x = np.asarray(x, np.float64)
  if x.ndim != 4:
    raise KernelError(f"x must be [N, H, W, C], got shape {x.shape}")
  n, h, w, _ = x.shape
  todo = steps(spec, h, w)
  names = [l.name for l, _, _ in todo]
  if layer is not None and layer not in names:
    raise KernelError(f"{spec.arch} {spec.layer} has no layer {layer!r}; "
                      f"its layers: {', '.join(names)}")
  stop = names.index(layer) if layer is not None else len(todo) - 1
  last_conv = max(i for i, (l, _, _) in enumerate(todo)
                  if isinstance(l, Conv))
  res = Walk((h, w))
  k = start if start is not None else x
  pending = [] if start is not None else [("input",)]
  pre, act = None, None
  i = from_layer
  while i <= stop:
    lay, in_hw, out_hw = todo[i]
    run = _pool_run(todo, i, stop) if isinstance(lay, Pool) else []
    exact = all(p.pooling == "avg" for p, _, _ in run) and not sample_avg
    if isinstance(lay, Conv) or (run and exact) or (
        isinstance(lay, (Unpool, Crop)) and res.limit is None):
      pending.append((lay, tuple(in_hw), tuple(out_hw),
                      rescale and i != last_conv))
      act = lay.activation if isinstance(lay, Conv) else act
    elif run:  # the run of pools sampled together from the conv before it
      k, pre = _flush(k, pending)
      k, se = sampled_pool(pre, [p for p, _, _ in run], in_hw, run[-1][2],
                           activation=act, samples=samples, key=_key(key, i))
      res.pool_rel_se.append(se)
      i += len(run) - 1
    elif isinstance(lay, ChannelMean):
      k, pre = _flush(k, pending)
      res.limit, k = channel_mean(pre), None
    elif isinstance(lay, Crop):
      res.limit = res.limit[:, :out_hw[0], :out_hw[1]]
    elif isinstance(lay, Unpool):
      res.limit = _unpool_images(res.limit, lay, in_hw, out_hw)
    i += 1
  k, _ = _flush(k, pending)
  res.hw = todo[stop][2]
  res.kernel = k if res.limit is None else np.einsum(
      "aij,bkl->aijbkl", res.limit, res.limit)
  return res


def _flush(k, pending: list) -> tuple[np.ndarray, np.ndarray | None]:
  """Runs the deterministic steps ``pending`` (emptied) on ``k`` as one
  float64 XLA program: ``(kernel, pre-activation kernel of the last step
  when it is a conv, else None)``."""
  if not pending:
    return k, None
  import jax
  ops = tuple(pending)
  pending.clear()
  with jax.enable_x64(True):
    k, pre = _segment_x64(ops)(np.asarray(k, np.float64))
    return np.asarray(k), (None if pre is None else np.asarray(pre))


@functools.lru_cache(maxsize=64)
def _segment_x64(ops: tuple):
  """One jitted program for a run of deterministic steps: the input's
  kernel, convs (taps, rescaling, ReLU), average pools, unpools, crops."""
  import jax
  import jax.numpy as jnp

  def f(k):
    pre = None
    for op in ops:
      if op[0] == "input":
        k = jnp.einsum("aijc,bklc->aijbkl", k, k,
                       precision=jax.lax.Precision.HIGHEST)
        continue
      layer, in_hw, out_hw, rescale = op
      for axis in (1, 2):
        k = _linear_axis(jnp, k, layer, axis, in_hw[axis - 1],
                         out_hw[axis - 1], isinstance(layer, Pool))
      pre = None
      if isinstance(layer, Conv):
        pre = _rescaled(jnp, k) if rescale else k
        k = _relu_full(jnp, pre) if layer.activation == "relu" else pre
    return k, pre

  return jax.jit(f)


def _pool_run(todo, i: int, stop: int) -> list:
  """The pools in a row from step ``i`` (up to ``stop``)."""
  j = i
  while j + 1 <= stop and isinstance(todo[j + 1][0], Pool):
    j += 1
  return todo[i:j + 1]


def _rescaled(xp, pre):
  """Each image's rows and columns divided by its RMS ``sqrt(mean_p S(a p,
  a p))``: what the per-image RMS over pixels and (infinitely many)
  channels converges to."""
  n, h, w = pre.shape[:3]
  d = xp.diagonal(pre.reshape(n * h * w, n * h * w)).reshape(n, h * w)
  r = xp.sqrt(xp.maximum(d.mean(axis=1), np.finfo(np.float64).tiny))
  return pre / (r[:, None, None, None, None, None] *
                r[None, None, None, :, None, None])


def _unpool_images(y: np.ndarray, lay: Unpool, in_hw, out_hw) -> np.ndarray:
  ay, ax = (axis_taps(lay, i, o)[0] for i, o in zip(in_hw, out_hw))
  return np.einsum("oi,aij,pj->aop", ay, y, ax)


def kernel_fn(spec: NetSpec, *, samples: int = POOL_SAMPLES, key=0,
              rescale: bool = False) -> Callable[..., np.ndarray]:
  """The infinite-width kernel of ``spec``'s networks, as a function
  ``f(x1, x2=None, layer=None)``.

  ``f`` gives the kernel of the output (or of the named ``layer``, after its
  activation) over every pixel of the images ``x1`` [n1, H, W, C] and ``x2``
  [n2, H, W, C] (default ``x1``), as an array ``[n1, P, n2, P]``, P the
  pixels of that layer's map; the blocks between images are the
  cross-image covariances that Gaussian-process inference needs. A conv
  output (no activation) is GP(0, this kernel), each channel independently;
  a channel-mean output converges to fixed images, and its kernel is their
  products. The inputs are taken exactly as :class:`randconv.CNNDCN` takes
  them.

  Args:
    spec: conv/transposed-conv layers with ReLU (or none), max, L2 or
      average pools, unpools, crops, a conv or channel-mean output; no LRN,
      no grouped convs.
    samples: joint samples of each max or L2 pool's input, drawn over all
      images together so the cross-image blocks are right too; the estimate
      carries a relative standard error of about ``samples ** -0.5``.
      Average pooling is exact.
    key: the pools' sampling seed or PRNG key.
    rescale: False (default): the kernel of the network as written, with
      no per-image rescaling, defined up to one positive factor for all
      images together (module docstring). True: the deterministic limit of
      the library's per-image RMS rescaling after every hidden conv
      (``CNNDCN(rescale=True)``), each image's block scaled by its own
      factor. The output conv's own rescaling, over a few channels, stays
      random at infinite width and is left out.

  Raises:
    KernelError: (when called) a layer or network not covered, an unknown
      ``layer``, or a kernel over the memory cap, the message giving the
      memory it would need.

  Example::

    f = randconv.kernel_fn(randconv.make_spec("vgg16", "pool1",
                                              pooling="avg"))
    k = f(x)                      # [n, H*W, n, H*W], float64
    k12 = f(x1, x2, layer="pool1")
  """
  check_layers(spec)  # refuse early, not at the first call

  def f(x1, x2=None, layer: str | None = None) -> np.ndarray:
    x1 = np.asarray(x1, np.float64)
    x = x1 if x2 is None else np.concatenate(
        [x1, np.asarray(x2, np.float64)])
    if x.ndim != 4:
      raise KernelError(f"x must be [N, H, W, C], got shape {x.shape}")
    check_size(len(x), spec, *x.shape[1:3])
    res = walk(spec, x, layer=layer, samples=samples, key=key,
               rescale=rescale)
    p = res.hw[0] * res.hw[1]
    k = res.kernel.reshape(len(x), p, len(x), p)
    return k if x2 is None else k[:len(x1), :, len(x1):, :]

  return f


__all__ = ["C1", "KernelError", "POOL_SAMPLES", "WINDOW_SAMPLES", "Walk",
           "arccos_relu", "avg_pool", "axis_taps", "channel_mean",
           "check_layers", "check_size", "conv", "crop", "kernel_fn",
           "linear", "max_full_pixels", "psd_root", "relu", "sampled_pool",
           "steps", "unpool", "walk", "window_pool_diag"]
