"""Layer operations on NHWC arrays: conv, transposed conv, pooling, LRN,
unpooling and crop (docs/design.md §1-2)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from randconv.spec import LEAKY_SLOPE, pool_padding

_DIMS = ("NHWC", "HWIO", "NHWC")


CONV_IMPLS = ("direct", "winograd", "auto", "wgrad")


def _check_impl(impl: str) -> None:
  if impl not in CONV_IMPLS:
    raise ValueError(f"unknown conv impl {impl!r}; choose one of "
                     f"{', '.join(CONV_IMPLS)}")


def use_winograd(impl: str, kernel: int, stride: int, groups: int,
                 in_channels: int, out_channels: int) -> bool:
  """Whether ``impl`` runs this conv by Winograd (randconv.fastconv).

  ``direct`` (the default and the reference) never does; ``winograd`` does
  for every 3x3 stride-1 ungrouped conv; ``auto`` does so on a CPU when both
  channel counts are at least 8 (below that the matmuls are too thin to win;
  benchmarks/sweep_vs_torch.py). ``wgrad`` (for training) never runs a
  Winograd forward: per conv it takes the one-matmul unpool+conv
  (:func:`use_unpool_conv`), one matmul for thin convs (:func:`use_thin`),
  or the direct forward and input gradient with a Winograd kernel gradient
  (:func:`use_winograd_grad`).
  """
  _check_impl(impl)
  from randconv import fastconv
  if impl in ("direct", "wgrad") or not fastconv.supports(kernel, stride,
                                                            groups):
    return False
  if impl == "winograd":
    return True
  return (jax.default_backend() == "cpu" and in_channels >= 8
          and out_channels >= 8)


def use_winograd_grad(impl: str, kernel: int, stride: int, groups: int,
                      in_channels: int, out_channels: int,
                      out_hw: tuple[int, int]) -> bool:
  """Whether ``impl`` (``wgrad``) computes this conv directly but its kernel
  gradient by Winograd (:func:`randconv.fastconv.weight_grad3x3`): 3x3
  stride-1 ungrouped convs with at least 32 channels on one side, more than
  :data:`~randconv.fastconv.THIN` on the other, and an output of at least
  12x12 (smaller maps waste too much of the 4x4 tiles: at 5x5 the direct
  kernel gradient is 3x faster; README, Section 3, "where the time goes")."""
  from randconv import fastconv
  return (impl == "wgrad" and fastconv.supports(kernel, stride, groups)
          and max(in_channels, out_channels) >= 32
          and min(in_channels, out_channels) > fastconv.THIN
          and min(out_hw) >= 12)


def use_thin(impl: str, kernel: int, stride: int, groups: int,
             in_channels: int, out_channels: int, padding: int) -> bool:
  """Whether ``impl`` runs this conv as one matmul
  (:func:`randconv.fastconv.thin_conv3x3`): 3x3 stride-1 convs with at most
  :data:`~randconv.fastconv.THIN` channels on one side and at least 32 on
  the other, such as a VGG's first and last layers; under ``wgrad``, and
  under ``auto`` on a CPU (XLA's CPU conv runs these at 10-25 GFLOP/s).
  The matmul form has a custom VJP, so forward-mode derivatives
  (``jax.jvp``) do not pass through it: use ``direct`` for those."""
  from randconv import fastconv
  if impl == "auto":
    if jax.default_backend() != "cpu":
      return False
  elif impl != "wgrad":
    return False
  return (fastconv.supports(kernel, stride, groups) and padding in (0, 1, 2)
          and min(in_channels, out_channels) <= fastconv.THIN
          and max(in_channels, out_channels) >= 32)


def _conv3x3_fast(x: jax.Array, w: jax.Array, padding: int,
                  impl: str) -> jax.Array | None:
  """A stride-1 ungrouped conv by the fast path ``impl`` picks for it, or
  None where the direct conv runs (also for a negative padding: a
  transposed conv whose padding is over ``k - 1``)."""
  from randconv import fastconv
  if padding < 0:
    return None
  k, ci, co = w.shape[0], w.shape[2], w.shape[3]
  out_hw = (x.shape[1] + 2 * padding - k + 1,
            x.shape[2] + 2 * padding - k + 1)
  if use_winograd(impl, k, 1, 1, ci, co):
    return fastconv.winograd_conv3x3(x, w, padding)
  if use_thin(impl, k, 1, 1, ci, co, padding):
    return fastconv.thin_conv3x3(x, w, padding)
  if use_winograd_grad(impl, k, 1, 1, ci, co, out_hw):
    return conv3x3_wgrad(x, w, padding)
  return None


def _direct(x, w, stride, pads, lhs_dilation=(1, 1), groups=1):
  return lax.conv_general_dilated(
      x, w, (stride, stride), pads, lhs_dilation=lhs_dilation,
      dimension_numbers=_DIMS, feature_group_count=groups,
      precision=lax.Precision.HIGHEST)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv3x3_wgrad(x: jax.Array, w: jax.Array, padding: int) -> jax.Array:
  """A 3x3 stride-1 conv, direct forward and input gradient, kernel
  gradient by Winograd: on a CPU, XLA's kernel-gradient conv runs at a third
  of its forward's speed (benchmarks/train_vs_torch.py)."""
  pads = ((padding, padding), (padding, padding))
  return _direct(x, w, 1, pads)


def _wgrad_fwd(x, w, padding):
  return conv3x3_wgrad(x, w, padding), (x, w)


def _wgrad_bwd(padding, res, dy):
  from randconv import fastconv
  x, w = res
  pads = ((padding, padding), (padding, padding))
  _, dx_fn = jax.vjp(lambda x: _direct(x, w, 1, pads), x)
  return dx_fn(dy)[0], fastconv.weight_grad3x3(x, dy, padding).astype(w.dtype)


conv3x3_wgrad.defvjp(_wgrad_fwd, _wgrad_bwd)


def use_unpool_conv(impl: str, unpool_stride: int, in_hw: tuple[int, int],
                    out_hw: tuple[int, int], kernel: int, stride: int,
                    padding: int, groups: int) -> bool:
  """Whether an unpooling followed by this stride-1 conv runs as one
  :func:`randconv.fastconv.unpool_conv3x3` (``auto``, ``winograd`` and
  ``wgrad``):
  2x unpooling with nothing to zero-extend, then a 3x3, padding-1 conv."""
  _check_impl(impl)
  return (impl in ("winograd", "auto", "wgrad") and unpool_stride == 2
          and kernel == 3 and stride == 1 and padding == 1 and groups == 1
          and tuple(out_hw) == (2 * in_hw[0], 2 * in_hw[1]))


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1, padding: int = 0,
           groups: int = 1, impl: str = "direct") -> jax.Array:
  """Cross-correlation, NHWC input, HWIO kernel (as Caffe and PyTorch).

  ``impl`` picks the algorithm for 3x3 stride-1 convs (Winograd, the thin
  matmul or the Winograd kernel gradient: :func:`use_winograd`,
  :func:`use_thin`, :func:`use_winograd_grad`); the result is the same up
  to float rounding.
  """
  _check_impl(impl)
  if stride == 1 and groups == 1:
    y = _conv3x3_fast(x, w, padding, impl)
    if y is not None:
      return y
  return _direct(x, w, stride, ((padding, padding), (padding, padding)),
                 groups=groups)


def conv_transpose2d(x: jax.Array, w: jax.Array, stride: int, padding: int,
                     out_hw: tuple[int, int], groups: int = 1,
                     impl: str = "direct") -> jax.Array:
  """Transposed convolution: the input dilated by ``stride``, correlated
  with ``w`` (HWIO), cut or zero-extended at the bottom/right to ``out_hw``.

  Equals PyTorch's ``conv_transpose2d`` with the kernel flipped spatially
  and its in/out axes swapped. For stride 1 and ``padding = (k - 1) / 2``
  it is an ordinary "same" convolution.
  """
  k = w.shape[0]
  h, wd = x.shape[1], x.shape[2]
  lo = k - 1 - padding
  full_h = (h - 1) * stride - 2 * padding + k
  full_w = (wd - 1) * stride - 2 * padding + k
  pads = ((lo, lo + out_hw[0] - full_h), (lo, lo + out_hw[1] - full_w))
  if (stride == 1 and groups == 1 and pads[0] == (lo, lo)
      and pads[1] == (lo, lo)):
    # Stride 1: the transposed conv is a plain conv with padding k - 1 - p.
    y = _conv3x3_fast(x, w, lo, impl)
    if y is not None:
      return y
  return _direct(x, w, 1, pads, lhs_dilation=(stride, stride), groups=groups)


def activate(x: jax.Array, activation: str | None) -> jax.Array:
  if activation is None:
    return x
  if activation == "relu":
    return jax.nn.relu(x)
  if activation == "leaky_relu":
    return jax.nn.leaky_relu(x, LEAKY_SLOPE)
  raise ValueError(f"unknown activation {activation!r}")


def pool2d(x: jax.Array, pooling: str, window: int, stride: int,
           ceil_mode: bool) -> jax.Array:
  """Max, L2-norm or average pooling; ceil mode pads the bottom/right.

  Average pooling divides by the number of cells inside the input (Caffe's
  and PyTorch's rule without explicit padding).
  """
  ph = pool_padding(x.shape[1], window, stride, ceil_mode)
  pw = pool_padding(x.shape[2], window, stride, ceil_mode)
  dims = (1, window, window, 1)
  strides = (1, stride, stride, 1)
  pads = ((0, 0), (0, ph), (0, pw), (0, 0))
  if pooling == "max":
    return lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, pads)
  if pooling == "l2":
    return jnp.sqrt(lax.reduce_window(x * x, 0.0, lax.add, dims, strides,
                                      pads))
  if pooling == "avg":
    total = lax.reduce_window(x, 0.0, lax.add, dims, strides, pads)
    ones = np.ones((1, x.shape[1], x.shape[2], 1), np.float32)
    count = lax.reduce_window(ones, 0.0, lax.add, dims, strides, pads)
    return total / count
  raise ValueError(f"unknown pooling {pooling!r}")


def lrn(x: jax.Array, size: int, alpha: float, beta: float,
        k: float) -> jax.Array:
  """Caffe's ACROSS_CHANNELS LRN: x / (k + alpha/size * window sum x^2)^beta."""
  half = size // 2
  sq = lax.reduce_window(x * x, 0.0, lax.add, (1, 1, 1, size), (1, 1, 1, 1),
                         ((0, 0), (0, 0), (0, 0), (half, size - 1 - half)))
  return x / (k + alpha / size * sq) ** beta


def unpool2d(x: jax.Array, stride: int, out_hw: tuple[int, int]) -> jax.Array:
  """Each value to the top-left of its ``stride x stride`` block (docs/design.md §2),
  then zeros at the bottom/right up to ``out_hw``."""
  n, h, w, c = x.shape
  y = jnp.zeros((n, h, stride, w, stride, c), x.dtype)
  y = y.at[:, :, 0, :, 0, :].set(x).reshape(n, h * stride, w * stride, c)
  return jnp.pad(y, ((0, 0), (0, out_hw[0] - h * stride),
                     (0, out_hw[1] - w * stride), (0, 0)))


def unpool_conv(p: jax.Array, w: jax.Array, impl: str = "auto") -> jax.Array:
  """``conv2d(unpool2d(p, 2, 2x size), w, 1, 1)`` without the zeros
  (:func:`randconv.fastconv.unpool_conv3x3`); a stride-1 transposed conv
  with padding 1 is this same conv. ``wgrad`` (training) takes the one-matmul
  form, whose backward pass is faster; the others the phase form."""
  from randconv import fastconv
  return fastconv.unpool_conv3x3(p, w,
                                 "matmul" if impl == "wgrad" else "phases")


def crop(x: jax.Array, hw: tuple[int, int]) -> jax.Array:
  return x[:, :hw[0], :hw[1], :]
