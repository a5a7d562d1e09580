"""Random weights and the forward pass: ``init`` and ``apply`` for a spec.

Params are a dict ``{layer_name: {"w": HWIO array[, "b": bias]}}``. Random
layers have zero biases (docs/design.md §4), so no ``"b"`` is stored for them;
pre-trained and trained layers carry one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import chex
import jax
import jax.numpy as jnp

from randconv import ops
from randconv.errors import RandconvError
from randconv.spec import (ChannelMean, Conv, Crop, LRN, NetSpec, Pool,
                           SpecError, Unpool)

Params = dict[str, dict[str, jax.Array]]


@dataclass(frozen=True)
class Distribution:
  """A weight distribution of docs/design.md §4.

  ``name`` is gaussian (``scale`` = sigma), uniform (``scale`` = a, on
  [-a, a)), logistic (``scale`` = s), laplace (``scale`` = b) or msra
  (N(0, 2 / fan_in), no scale).
  """

  name: str = "gaussian"
  scale: float | None = 0.015

  def __str__(self) -> str:
    return self.name if self.scale is None else f"{self.name}:{self.scale:g}"

  def std(self, fan_in: int) -> float:
    """The standard deviation of one weight."""
    s = self.scale
    return {"gaussian": lambda: s, "uniform": lambda: s / math.sqrt(3),
            "logistic": lambda: s * math.pi / math.sqrt(3),
            "laplace": lambda: s * math.sqrt(2),
            "msra": lambda: math.sqrt(2 / fan_in)}[self.name]()

  def sample(self, key: jax.Array, shape: tuple[int, ...],
             fan_in: int) -> jax.Array:
    s = self.scale
    if self.name == "gaussian":
      return s * jax.random.normal(key, shape)
    if self.name == "uniform":
      return jax.random.uniform(key, shape, minval=-s, maxval=s)
    if self.name == "logistic":
      return s * jax.random.logistic(key, shape)
    if self.name == "laplace":
      return s * jax.random.laplace(key, shape)
    return math.sqrt(2 / fan_in) * jax.random.normal(key, shape)


class DistributionError(RandconvError):
  """An unknown weight distribution or a bad scale."""


DEFAULT_SCALES = {"gaussian": 0.015, "uniform": 0.04, "logistic": 0.015,
                  "laplace": 0.015 / math.sqrt(2), "msra": None}


def parse_distribution(text: str | Distribution) -> Distribution:
  """Parses ``name[:scale]``, e.g. ``gaussian:0.015``, ``uniform``, ``msra``.

  Raises:
    DistributionError: unknown name, or a scale that is not a positive
      number.
  """
  if isinstance(text, Distribution):
    return text
  name, _, scale = text.partition(":")
  name = name.strip().lower()
  if name not in DEFAULT_SCALES:
    raise DistributionError(f"unknown distribution {text!r}; choose one of "
                     f"{', '.join(DEFAULT_SCALES)} (e.g. gaussian:0.015)")
  if name == "msra":
    if scale:
      raise DistributionError("msra takes no scale: it is N(0, 2 / fan_in)")
    return Distribution("msra", None)
  if not scale:
    return Distribution(name, DEFAULT_SCALES[name])
  try:
    value = float(scale)
  except ValueError:
    raise DistributionError(f"distribution scale {scale!r} is not a number") from None
  if not value > 0 or not math.isfinite(value):
    raise DistributionError(f"distribution scale must be positive, got {scale}")
  return Distribution(name, value)


def init(key: jax.Array, spec: NetSpec,
         distribution: str | Distribution = "gaussian:0.015") -> Params:
  """Draws every conv's weights i.i.d. from ``distribution``.

  Layer ``i`` of the spec uses ``fold_in(key, i)``, so a layer's weights do
  not depend on how many seeds are drawn together.
  """
  dist = parse_distribution(distribution)
  params = {}
  for i, layer in enumerate(spec.layers):
    if isinstance(layer, Conv):
      params[layer.name] = {"w": dist.sample(
          jax.random.fold_in(key, i), layer.weight_shape, layer.fan_in)}
  return params


def _rms_normalise(x: jax.Array) -> jax.Array:
  # Per image, so an image's result never depends on its batch-mates.
  rms = jnp.sqrt(jnp.mean(jnp.square(x), axis=(1, 2, 3), keepdims=True))
  return x / jnp.maximum(rms, jnp.finfo(x.dtype).tiny)


def _run(params: Params, spec: NetSpec, layers, x: jax.Array,
         image_hw: tuple[int, int], rescale: bool, features: dict,
         conv_impl: str = "direct"):
  enc, dec = spec.shapes(*image_hw)
  sizes = {s.name: (s.height, s.width) for s in enc + dec}
  pooled = None  # the map before an unpooling that the next conv absorbs
  for i, layer in enumerate(layers):
    if isinstance(layer, Conv):
      p = params[layer.name]
      w = p["w"].astype(x.dtype)
      if pooled is not None:
        x = ops.unpool_conv(pooled, w, conv_impl)
        pooled = None
      elif layer.transpose:
        x = ops.conv_transpose2d(x, w, layer.stride, layer.padding,
                                 sizes[layer.name], layer.groups,
                                 impl=conv_impl)
      else:
        x = ops.conv2d(x, w, layer.stride, layer.padding, layer.groups,
                       impl=conv_impl)
      if "b" in p:
        x = x + p["b"].astype(x.dtype)
      if rescale:
        x = _rms_normalise(x)
      x = ops.activate(x, layer.activation)
    elif isinstance(layer, Pool):
      x = ops.pool2d(x, layer.pooling, layer.window, layer.stride,
                     layer.ceil_mode)
    elif isinstance(layer, LRN):
      x = ops.lrn(x, layer.size, layer.alpha, layer.beta, layer.k)
    elif isinstance(layer, Unpool):
      nxt = layers[i + 1] if i + 1 < len(layers) else None
      if (isinstance(nxt, Conv) and nxt.transpose and ops.use_unpool_conv(
          conv_impl, layer.stride, x.shape[1:3], sizes[layer.name],
          nxt.kernel, nxt.stride, nxt.padding, nxt.groups)):
        pooled = x  # the unpooled map below is only kept as a feature
      x = ops.unpool2d(x, layer.stride, sizes[layer.name])
    elif isinstance(layer, ChannelMean):
      x = jnp.mean(x, axis=-1, keepdims=True)
    elif isinstance(layer, Crop):
      x = ops.crop(x, image_hw)
    features[layer.name] = x
  return x


def _check_input(spec: NetSpec, x: jax.Array, rescale: bool) -> None:
  if x.ndim != 4:
    raise ValueError(f"input must be [batch, H, W, C], got shape {x.shape}")
  if rescale and spec.has_lrn:
    raise SpecError(
        f"{spec.arch} has LRN, which is not positively homogeneous: its "
        "output cannot be rescaled; run it with rescale=False")


def encode(params: Params, spec: NetSpec, x: jax.Array, *,
           rescale: bool = False, conv_impl: str = "direct"
           ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Runs the encoder. ``x``: [B, H, W, C]. Returns (feature, features)."""
  _check_input(spec, x, rescale)
  chex.assert_axis_dimension(x, 3, spec.in_channels)
  features: dict[str, jax.Array] = {}
  out = _run(params, spec, spec.encoder, x, x.shape[1:3], rescale, features,
             conv_impl)
  return out, features


def decode(params: Params, spec: NetSpec, z: jax.Array,
           image_hw: tuple[int, int], *, rescale: bool = False,
           conv_impl: str = "direct"
           ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Runs the decoder on a feature ``z`` of an ``image_hw`` input."""
  _check_input(spec, z, rescale)
  expected = spec.feature_shape(*image_hw)
  if tuple(z.shape[1:]) != expected:
    raise ValueError(f"feature shape {tuple(z.shape[1:])} does not match "
                     f"{expected} of a {image_hw} input")
  features: dict[str, jax.Array] = {}
  out = _run(params, spec, spec.decoder, z, tuple(image_hw), rescale, features,
             conv_impl)
  return out, features


def apply(params: Params, spec: NetSpec, x: jax.Array, *,
          rescale: bool = False, conv_impl: str = "direct"
          ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The CNN-DCN forward pass.

  Args:
    params: from :func:`init` (or a loader).
    spec: the network.
    x: images, [B, H, W, C].
    rescale: divide every conv's output by its per-image RMS. A network
      without LRN is positively homogeneous (docs/design.md §4), so the rescaled output
      equals the exact one times a positive factor per image, and float32
      stays finite for any width, depth and weight scale. Leave it off to get
      the exact values (pre-trained encoders, comparisons).

  Returns:
    ``(out, features)``: out [B, H, W, 3] (or 1 with the channel-mean output);
    features maps every layer name to its output (after the activation).
  """
  z, features = encode(params, spec, x, rescale=rescale, conv_impl=conv_impl)
  out, dec = decode(params, spec, z, x.shape[1:3], rescale=rescale,
                    conv_impl=conv_impl)
  features.update(dec)
  return out, features


def output_fn(spec: NetSpec, distribution: str | Distribution,
              rescale: bool = True, conv_impl: str = "direct"):
  """``f(key, images) -> outputs`` drawing a fresh random net per key."""
  dist = parse_distribution(distribution)

  def f(key, images):
    return apply(init(key, spec, dist), spec, images, rescale=rescale,
                 conv_impl=conv_impl)[0]

  return f


def check_finite(x, what: str = "output") -> None:
  """Raises FloatingPointError with a clear sentence when ``x`` is not finite."""
  if not bool(jnp.all(jnp.isfinite(x))):
    raise FloatingPointError(
        f"the {what} is not finite in {x.dtype}: the weight scale is out of "
        "float range for this network (LRN is not homogeneous, so it cannot "
        "be rescaled); try a weight scale nearer 0.015")


def with_dtype(params: Params, dtype) -> Params:
  return jax.tree_util.tree_map(lambda a: a.astype(dtype), params)


__all__ = ["Distribution", "parse_distribution", "init", "apply", "encode",
           "decode", "output_fn", "check_finite", "with_dtype"]
