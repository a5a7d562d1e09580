"""The networks as Flax linen modules, built from a frozen :class:`NetSpec`.

* :class:`CNNDCN` ``(spec)``: the encoder and its mirrored decoder;
  ``model(x)`` is the reconstruction, ``model.encode(x)`` the feature,
  ``model.decode(z, image_hw)`` the decoder alone.
* :class:`Encoder` ``(spec)`` and :class:`Decoder` ``(spec)``: the halves on
  their own, with the same layer names, so an encoder's params are the
  encoder part of the pair's and a training run can freeze one and train the
  other.

Params are keyed by the paper's layer names:
``variables["params"]["conv1_1"]["kernel"]`` is an HWIO kernel;
``"bias"`` exists where ``use_bias`` (trained decoders, pre-trained
encoders). Random layers have no bias (docs/design.md §4). Every kernel is
drawn by the module's ``kernel_init``, a Flax initializer (by default the
paper's N(0, 0.015^2); another distribution's is
``parse_distribution("uniform:0.04").initializer()``, see
:mod:`randconv.distributions`), with the key Flax derives for that layer,
so ``model.init(key, x)`` is one random net and
``jax.vmap(model.init, in_axes=(0, None))(keys, x)`` is many; ``apply``
vmaps the same way. :meth:`CNNDCN.draw` gives the params without running
the forward pass (``model.init(key, method="draw")``).

Every layer's output (after its activation) is sown into the
``intermediates`` collection, under its layer name (a conv's under
``<name>/output``, inside its submodule); :func:`apply_with_features`
returns them as one dict by layer name.

``rescale`` (off by default, here and in :mod:`randconv.engine`) divides
every conv's output by its per-image RMS. A network without LRN is
positively homogeneous (docs/design.md §4), so the rescaled output equals
the exact one times a positive factor per image, and float32 stays finite
for any width, depth and weight scale. Off, the values are exact
(pre-trained encoders, training, comparisons) and a net with LRN runs.

``policy`` (:class:`randconv.policy.ConvPolicy` or its name) picks the
algorithm of each conv; the default, ``auto``, is the backend's inference
default (docs/design.md §4). Every choice is exact up to float rounding;
``direct`` is the reference, and the one forward-mode derivatives
(``jax.jvp``) pass through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from randconv import ops
from randconv.distributions import Distribution
from randconv.policy import ConvPolicy
from randconv.spec import (ChannelMean, Conv, Crop, LRN, NetSpec, Pool,
                           SpecError, Unpool)

Variables = dict[str, Any]
Initializer = Callable[..., jax.Array]  # init(key, shape, dtype) -> array
PAPER_INIT = Distribution().initializer()  # N(0, 0.015^2), docs/design.md §4


class ConvLayer(nn.Module):
  """One conv (or transposed conv) of a spec: its kernel, optional bias,
  the conv by ``policy``, the RMS rescaling and the activation. Its output
  is sown as ``intermediates/<layer name>/output``."""

  layer: Conv
  kernel_init: Initializer
  use_bias: bool = False
  rescale: bool = False

  def setup(self):
    self.kernel = self.param("kernel", self.kernel_init,
                             self.layer.weight_shape, jnp.float32)
    if self.use_bias:
      self.bias = self.param("bias", nn.initializers.zeros_init(),
                             (self.layer.out_channels,), jnp.float32)

  def __call__(self, x: jax.Array, policy: ConvPolicy,
               out_hw: tuple[int, int], pooled: jax.Array | None = None
               ) -> jax.Array:
    """``pooled``: the map before a 2x unpooling that this conv absorbs
    (:meth:`ConvPolicy.fuses_unpool`); ``x`` is then ignored."""
    c = self.layer
    w = self.kernel.astype(x.dtype)
    if pooled is not None:
      y = policy.unpool_conv3x3(pooled, w)
    elif c.transpose:
      y = policy.conv_transpose2d(x, w, c.stride, c.padding, out_hw, c.groups)
    else:
      y = policy.conv2d(x, w, c.stride, c.padding, c.groups)
    if self.use_bias:
      y = y + self.bias.astype(y.dtype)
    if self.rescale:
      y = rms_normalise(y)
    y = ops.activate(y, c.activation)
    self.sow("intermediates", "output", y)
    return y


def rms_normalise(x: jax.Array) -> jax.Array:
  """Per image, so an image's result never depends on its batch-mates."""
  rms = jnp.sqrt(jnp.mean(jnp.square(x), axis=(1, 2, 3), keepdims=True))
  return x / jnp.maximum(rms, jnp.finfo(x.dtype).tiny)


class CNNDCN(nn.Module):
  """A CNN-DCN pair from ``spec`` (module docstring).

  Attributes:
    spec: the network (frozen data).
    kernel_init: every kernel's initializer, ``init(key, shape, dtype)``
      (a :class:`Distribution`'s :meth:`~Distribution.initializer`).
    use_bias: give every conv a bias (zeros at init).
    rescale: RMS-normalise after every conv.
    policy: the conv algorithms, a :class:`ConvPolicy` or its name
      (:meth:`ConvPolicy.named`); ``auto`` (or None): the backend's
      inference default.
  """

  spec: NetSpec
  kernel_init: Initializer = PAPER_INIT
  use_bias: bool = False
  rescale: bool = False
  policy: ConvPolicy | str | None = "auto"
  part: ClassVar[str] = "both"

  def _parts(self) -> list:
    return {"both": list(self.spec.layers), "encoder": list(self.spec.encoder),
            "decoder": list(self.spec.decoder)}[self.part]

  def setup(self):
    if not callable(self.kernel_init):
      raise TypeError(
          f"kernel_init takes an initializer, not {self.kernel_init!r}: "
          "give parse_distribution(text).initializer()")
    for layer in self._parts():
      if isinstance(layer, Conv):
        setattr(self, layer.name,
                ConvLayer(layer, self.kernel_init, self.use_bias,
                          self.rescale))

  def draw(self) -> None:
    """Creates every param without a forward pass:
    ``model.init(key, method="draw")``."""
    for layer in self._parts():
      if isinstance(layer, Conv):
        getattr(self, layer.name).kernel  # noqa: B018 (runs its setup)

  def _policy(self) -> ConvPolicy:
    return ConvPolicy.named("auto" if self.policy is None else self.policy)

  def _check(self, x: jax.Array) -> None:
    if x.ndim != 4:
      raise ValueError(f"input must be [batch, H, W, C], got shape {x.shape}")
    if self.rescale and self.spec.has_lrn:
      raise SpecError(
          f"{self.spec.arch} has LRN, which is not positively homogeneous: "
          "its output cannot be rescaled; run it with rescale=False")

  def _run(self, layers, x: jax.Array, image_hw: tuple[int, int]
           ) -> jax.Array:
    policy = self._policy()
    enc, dec = self.spec.shapes(*image_hw)
    sizes = {s.name: (s.height, s.width) for s in enc + dec}
    pooled = None  # the map before an unpooling that the next conv absorbs
    for i, layer in enumerate(layers):
      if isinstance(layer, Conv):
        x = getattr(self, layer.name)(x, policy, sizes[layer.name], pooled)
        pooled = None
        continue  # sown by the layer
      elif isinstance(layer, Pool):
        x = ops.pool2d(x, layer.pooling, layer.window, layer.stride,
                       layer.ceil_mode)
      elif isinstance(layer, LRN):
        x = ops.lrn(x, layer.size, layer.alpha, layer.beta, layer.k)
      elif isinstance(layer, Unpool):
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if (isinstance(nxt, Conv) and nxt.transpose and policy.fuses_unpool(
            layer.stride, x.shape[1:3], sizes[layer.name], nxt.kernel,
            nxt.stride, nxt.padding, nxt.groups)):
          pooled = x  # the unpooled map below is only kept as a feature
        x = ops.unpool2d(x, layer.stride, sizes[layer.name])
      elif isinstance(layer, ChannelMean):
        x = jnp.mean(x, axis=-1, keepdims=True)
      elif isinstance(layer, Crop):
        x = ops.crop(x, image_hw)
      self.sow("intermediates", layer.name, x)
    return x

  def encode(self, x: jax.Array) -> jax.Array:
    """The encoder's feature of images ``x`` [B, H, W, C]."""
    self._check(x)
    if x.shape[3] != self.spec.in_channels:
      raise ValueError(f"input has {x.shape[3]} channels, {self.spec.arch} "
                       f"takes {self.spec.in_channels}")
    return self._run(self.spec.encoder, x, x.shape[1:3])

  def decode(self, z: jax.Array, image_hw: tuple[int, int]) -> jax.Array:
    """The decoder's output for a feature ``z`` of an ``image_hw`` input."""
    self._check(z)
    expected = self.spec.feature_shape(*image_hw)
    if tuple(z.shape[1:]) != expected:
      raise ValueError(f"feature shape {tuple(z.shape[1:])} does not match "
                       f"{expected} of a {tuple(image_hw)} input")
    return self._run(self.spec.decoder, z, tuple(image_hw))

  def __call__(self, x: jax.Array) -> jax.Array:
    """The reconstruction of ``x``: [B, H, W, 3] (or 1 channel with the
    channel-mean output)."""
    return self.decode(self.encode(x), x.shape[1:3])


class Encoder(CNNDCN):
  """The encoder half: ``Encoder(spec).apply(variables, x)`` is the
  feature."""

  part: ClassVar[str] = "encoder"

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.encode(x)


class Decoder(CNNDCN):
  """The decoder half: ``Decoder(spec).apply(variables, z, image_hw)``."""

  part: ClassVar[str] = "decoder"

  def __call__(self, z: jax.Array, image_hw: tuple[int, int]) -> jax.Array:
    return self.decode(z, image_hw)


def apply_with_features(model: nn.Module, variables: Variables, *args,
                        method=None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """``(out, features)``: the module's output and every layer's output
  (after its activation) by layer name, from the sown ``intermediates``."""
  out, state = model.apply(variables, *args, method=method,
                           mutable=["intermediates"])
  feats = state.get("intermediates", {})
  return out, {name: (v["output"] if isinstance(v, dict) else v)[-1]
               for name, v in feats.items()}


__all__ = ["CNNDCN", "Encoder", "Decoder", "ConvLayer", "Initializer",
           "PAPER_INIT", "apply_with_features", "rms_normalise"]
