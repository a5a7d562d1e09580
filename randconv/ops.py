"""Layer operations on NHWC arrays: conv, transposed conv, pooling, LRN,
unpooling and crop (docs/design.md §1-2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from randconv.policy import DIRECT, ConvPolicy
from randconv.spec import LEAKY_SLOPE, pool_padding


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1, padding: int = 0,
           groups: int = 1, policy: ConvPolicy = DIRECT) -> jax.Array:
  """Cross-correlation, NHWC input, HWIO kernel (as Caffe and PyTorch), by
  the algorithm ``policy`` picks (:class:`randconv.policy.ConvPolicy`; the
  default is XLA's conv, the reference)."""
  return policy.conv2d(x, w, stride, padding, groups)


def conv_transpose2d(x: jax.Array, w: jax.Array, stride: int, padding: int,
                     out_hw: tuple[int, int], groups: int = 1,
                     policy: ConvPolicy = DIRECT) -> jax.Array:
  """Transposed convolution (:meth:`randconv.policy.ConvPolicy.conv_transpose2d`)."""
  return policy.conv_transpose2d(x, w, stride, padding, out_hw, groups)


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


def crop(x: jax.Array, hw: tuple[int, int]) -> jax.Array:
  return x[:, :hw[0], :hw[1], :]
