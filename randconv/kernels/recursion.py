"""The kernel recursion over a spec and :func:`kernel_fn`
(:mod:`randconv.kernels`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from randconv.kernels.maps import (KernelError, _linear_jnp, _relu_full,
                                   axis_taps, channel_mean, image_diagonal,
                                   max_full_pixels)
from randconv.kernels.pools import POOL_SAMPLES, _key, sampled_pool
from randconv.spec import LRN, ChannelMean, Conv, Crop, NetSpec, Pool, Unpool


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
  n, h, w, c = x.shape
  if c != spec.in_channels:
    raise KernelError(f"x has {c} channels, {spec.arch} takes "
                      f"{spec.in_channels}")
  todo = steps(spec, h, w)
  names = [l.name for l, _, _ in todo]
  if layer is not None and layer not in names:
    raise KernelError(f"{spec.arch} {spec.layer} has no layer {layer!r}; "
                      f"its layers: {', '.join(names)}")
  stop = names.index(layer) if layer is not None else len(todo) - 1
  # The output conv's rescaling, over a few channels, stays random at
  # infinite width: only a conv whose maps the layers after it keep as
  # channels (a hidden conv, or the convs before a channel mean) rescales.
  last_conv = max(i for i, (l, _, _) in enumerate(todo)
                  if isinstance(l, Conv))
  random_scale = last_conv if todo[last_conv][0].activation is None else -1
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
                      rescale and i != random_scale))
      act = lay.activation if isinstance(lay, Conv) else act
    elif run:  # the run of pools sampled together from the conv before it
      k, pre = _flush(k, pending)
      if pre is None:
        raise KernelError(f"{lay.name}: a sampled pool needs the conv right "
                          "before it (start the walk at that conv)")
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
      k = _linear_jnp(k, layer, in_hw, out_hw, isinstance(layer, Pool))
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
  d = image_diagonal(xp, pre)
  r = xp.sqrt(xp.maximum(d.mean(axis=(1, 2)), np.finfo(np.float64).tiny))
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
    if x2 is not None:
      x2 = np.asarray(x2, np.float64)
      if x2.ndim != 4 or x1.ndim != 4 or x2.shape[1:] != x1.shape[1:]:
        raise KernelError(f"x1 and x2 must be [N, H, W, C] of one size, "
                          f"got {x1.shape} and {x2.shape}")
    x = x1 if x2 is None else np.concatenate([x1, x2])
    if x.ndim != 4:
      raise KernelError(f"x must be [N, H, W, C], got shape {x.shape}")
    check_size(len(x), spec, *x.shape[1:3])
    res = walk(spec, x, layer=layer, samples=samples, key=key,
               rescale=rescale)
    p = res.hw[0] * res.hw[1]
    k = res.kernel.reshape(len(x), p, len(x), p)
    return k if x2 is None else k[:len(x1), :, len(x1):, :]

  return f
