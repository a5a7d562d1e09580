"""Architecture specs: a network is a tuple of layer records (docs/design.md §1-3).

A :class:`NetSpec` holds an encoder (the CNN truncated at some layer) and its
mirrored decoder (the DCN). Specs are plain frozen data; :mod:`randconv.modules`
turns them into Flax modules. Builders here make the
paper's networks:

* ``vgg16``: Simonyan & Zisserman, 3x3 convs, 2x2 max pooling in ceil mode
  (Caffe), which gives the paper's Table 1 at 227x227.
* ``alexnet``: Caffe's bvlc_alexnet (groups, LRN, ceil-mode 3x3/2 pooling).
* ``alexnet_torchvision``: torchvision's AlexNet (64/192/384/256/256, floor
  mode pooling, no LRN, no groups), the one whose ImageNet weights users have.

Variants: the width override, the channel-mean output, the simplified ConvK
net of Fig. 7 (second row), the pooling kind, the activation, and the
Conv1_1-DeConv1_1 kernel-size net of Section 4.3.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from randconv.errors import RandconvError

Activation = Literal["relu", "leaky_relu"] | None
PoolKind = Literal["max", "l2", "avg"]

ARCHS = ("vgg16", "alexnet", "alexnet_torchvision")
POOL_KINDS = ("max", "l2", "avg")
ACTIVATIONS = ("relu", "leaky_relu")
OUTPUTS = ("conv", "mean")
LEAKY_SLOPE = 0.2


class SpecError(RandconvError):
  """A spec was asked for that does not exist (unknown arch, layer, width...)."""


@dataclass(frozen=True)
class Conv:
  """A convolution (or, with ``transpose``, a transposed convolution).

  Weights are HWIO: ``[kernel, kernel, in_channels // groups, out_channels]``.
  A transposed conv (a decoder "deconv") is the correlation of the input,
  dilated by ``stride``, with its HWIO kernel; it mirrors the encoder conv
  named ``mirror`` and its output takes that conv's input size.
  """

  name: str
  in_channels: int
  out_channels: int
  kernel: int
  stride: int = 1
  padding: int = 0
  groups: int = 1
  activation: Activation = "relu"
  transpose: bool = False
  mirror: str | None = None
  kind: str = dataclasses.field(default="conv", init=False)

  @property
  def fan_in(self) -> int:
    return self.kernel * self.kernel * self.in_channels // self.groups

  @property
  def weight_shape(self) -> tuple[int, int, int, int]:
    return (self.kernel, self.kernel, self.in_channels // self.groups,
            self.out_channels)


@dataclass(frozen=True)
class Pool:
  """Pooling of kind ``pooling``: max, l2 (sqrt of the sum of squares) or avg."""

  name: str
  pooling: PoolKind = "max"
  window: int = 2
  stride: int = 2
  ceil_mode: bool = True
  kind: str = dataclasses.field(default="pool", init=False)


@dataclass(frozen=True)
class LRN:
  """Caffe's across-channel local response normalisation.

  ``x / (k + alpha / size * sum_{window} x^2) ** beta``. Not homogeneous.
  """

  name: str
  size: int = 5
  alpha: float = 1e-4
  beta: float = 0.75
  k: float = 1.0
  kind: str = dataclasses.field(default="lrn", init=False)


@dataclass(frozen=True)
class Unpool:
  """Unpooling by ``stride``: each value to the top-left of its block.

  The output is ``stride`` times the input, zero-padded at the bottom and
  right up to the input size of the mirrored pool ``mirror`` when smaller.
  """

  name: str
  stride: int
  mirror: str
  kind: str = dataclasses.field(default="unpool", init=False)


@dataclass(frozen=True)
class ChannelMean:
  """The paper's channel-mean output: the mean over the channels."""

  name: str = "mean"
  kind: str = dataclasses.field(default="mean", init=False)


@dataclass(frozen=True)
class Crop:
  """Keeps the top-left ``H x W`` of the map, ``H x W`` the input's size."""

  name: str = "crop"
  kind: str = dataclasses.field(default="crop", init=False)


Layer = Conv | Pool | LRN | Unpool | ChannelMean | Crop


@dataclass(frozen=True)
class LayerShape:
  name: str
  kind: str
  channels: int
  height: int
  width: int

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclass(frozen=True)
class NetSpec:
  """An encoder truncated at ``layer`` and its mirrored decoder.

  ``encoder`` and ``decoder`` are tuples of layer records; either can be used
  alone (:class:`randconv.modules.Encoder`, :class:`randconv.modules.Decoder`).
  """

  arch: str
  layer: str
  encoder: tuple[Layer, ...]
  decoder: tuple[Layer, ...]
  in_channels: int = 3

  @property
  def layers(self) -> tuple[Layer, ...]:
    return self.encoder + self.decoder

  @property
  def convs(self) -> tuple[Conv, ...]:
    return tuple(l for l in self.layers if isinstance(l, Conv))

  @property
  def has_lrn(self) -> bool:
    return any(isinstance(l, LRN) for l in self.layers)

  @property
  def out_channels(self) -> int:
    last = [l for l in self.decoder if isinstance(l, (Conv, ChannelMean))]
    if not last:
      return self.in_channels
    return 1 if isinstance(last[-1], ChannelMean) else last[-1].out_channels

  def shapes(self, height: int, width: int) -> tuple[list[LayerShape],
                                                     list[LayerShape]]:
    """Every layer's output shape for a ``height x width`` input.

    Raises:
      SpecError: the input is too small for some layer.
    """
    result = self._shapes(height, width)
    if isinstance(result, str):
      m = self.min_size()
      raise SpecError(f"{self.arch} at {self.layer} needs an input of at least "
                      f"{m}x{m}, got {height}x{width} ({result})")
    return result

  def _shapes(self, height: int, width: int):
    if height < 1 or width < 1:
      return "the size must be positive"
    inputs: dict[str, tuple[int, int]] = {}
    h, w, c = height, width, self.in_channels
    out = []
    for part in (self.encoder, self.decoder):
      shapes = []
      for layer in part:
        inputs[layer.name] = (h, w)
        h, w, c = _out_shape(layer, h, w, c, inputs, (height, width))
        if h < 1 or w < 1:
          return f"layer {layer.name} would be {h}x{w}"
        shapes.append(LayerShape(layer.name, layer.kind, c, h, w))
      out.append(shapes)
    return out[0], out[1]

  def layer_inputs(self, height: int, width: int) -> dict[str, tuple[int, int]]:
    """Each layer's input size (used by mirrors and the crop)."""
    enc, dec = self.shapes(height, width)
    sizes = {}
    prev = (height, width)
    for s in enc + dec:
      sizes[s.name] = prev
      prev = (s.height, s.width)
    return sizes

  def map_layers(self, fn) -> NetSpec:
    """The same net with every layer replaced by ``fn(index, layer)``
    (the index into :attr:`layers`), encoder and decoder kept apart."""
    layers = [fn(i, l) for i, l in enumerate(self.layers)]
    cut = len(self.encoder)
    return dataclasses.replace(self, encoder=tuple(layers[:cut]),
                               decoder=tuple(layers[cut:]))

  def feature_shape(self, height: int, width: int) -> tuple[int, int, int]:
    enc, _ = self.shapes(height, width)
    last = enc[-1]
    return (last.height, last.width, last.channels)

  def min_size(self) -> int:
    """The smallest square input for which every layer is at least 1x1."""
    for size in range(1, 4097):
      if not isinstance(self._shapes(size, size), str):
        return size
    raise SpecError(f"{self.arch} at {self.layer}: no input size up to 4096 works")


def _pool_out(n: int, window: int, stride: int, ceil_mode: bool) -> int:
  if n < window:
    return 0 if not ceil_mode or n < 1 else 1
  if ceil_mode:
    out = -(-(n - window) // stride) + 1
    # Caffe and PyTorch: the last window must start inside the input.
    if (out - 1) * stride >= n:
      out -= 1
    return out
  return (n - window) // stride + 1


def pool_padding(n: int, window: int, stride: int, ceil_mode: bool) -> int:
  """Extra cells at the bottom/right that ceil mode needs."""
  out = _pool_out(n, window, stride, ceil_mode)
  return max(0, (out - 1) * stride + window - n)


def _out_shape(layer, h, w, c, inputs, image_hw):
  if isinstance(layer, Conv):
    if c != layer.in_channels:
      raise SpecError(f"layer {layer.name} expects {layer.in_channels} "
                      f"channels, gets {c}")
    if layer.transpose:
      th, tw = inputs[layer.mirror]
      k, s, p = layer.kernel, layer.stride, layer.padding
      nh, nw = (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k
      # Like PyTorch's ConvTranspose2d(output_size=...): reach the mirrored
      # conv's input size when that is within one stride.
      if 0 <= th - nh < s:
        nh = th
      if 0 <= tw - nw < s:
        nw = tw
      return nh, nw, layer.out_channels
    k, s, p = layer.kernel, layer.stride, layer.padding
    return ((h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1,
            layer.out_channels)
  if isinstance(layer, Pool):
    return (_pool_out(h, layer.window, layer.stride, layer.ceil_mode),
            _pool_out(w, layer.window, layer.stride, layer.ceil_mode), c)
  if isinstance(layer, Unpool):
    th, tw = inputs[layer.mirror]
    return max(h * layer.stride, th), max(w * layer.stride, tw), c
  if isinstance(layer, ChannelMean):
    return h, w, 1
  if isinstance(layer, Crop):
    if h < image_hw[0] or w < image_hw[1]:
      return 0, 0, c  # the decoder fell short of the input size
    return image_hw[0], image_hw[1], c
  return h, w, c  # LRN


# --------------------------------------------------------------------------
# Encoders as data: (name, out_channels, kernel, stride, padding, groups) for
# convs, ("pool", name, window, stride) for pools, ("lrn", name) for LRN.

_VGG16 = []
for _block, (_n, _ch) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512),
                                     (3, 512)], start=1):
  for _i in range(1, _n + 1):
    _VGG16.append(("conv", f"conv{_block}_{_i}", _ch, 3, 1, 1, 1))
  _VGG16.append(("pool", f"pool{_block}", 2, 2))

_ALEXNET = [
    ("conv", "conv1", 96, 11, 4, 0, 1), ("lrn", "norm1"), ("pool", "pool1", 3, 2),
    ("conv", "conv2", 256, 5, 1, 2, 2), ("lrn", "norm2"), ("pool", "pool2", 3, 2),
    ("conv", "conv3", 384, 3, 1, 1, 1),
    ("conv", "conv4", 384, 3, 1, 1, 2),
    ("conv", "conv5", 256, 3, 1, 1, 2), ("pool", "pool5", 3, 2),
]

_ALEXNET_TV = [
    ("conv", "conv1", 64, 11, 4, 2, 1), ("pool", "pool1", 3, 2),
    ("conv", "conv2", 192, 5, 1, 2, 1), ("pool", "pool2", 3, 2),
    ("conv", "conv3", 384, 3, 1, 1, 1),
    ("conv", "conv4", 256, 3, 1, 1, 1),
    ("conv", "conv5", 256, 3, 1, 1, 1), ("pool", "pool5", 3, 2),
]

_TABLES = {"vgg16": _VGG16, "alexnet": _ALEXNET,
           "alexnet_torchvision": _ALEXNET_TV}
_CEIL = {"vgg16": True, "alexnet": True, "alexnet_torchvision": False}


def layer_names(arch: str) -> list[str]:
  _check_arch(arch)
  return [row[1] for row in _TABLES[arch]]


def conv_k_name(arch: str, k: int) -> str:
  """The paper's "ConvK": the last conv of block K, after its activation."""
  _check_arch(arch)
  if not 1 <= k <= 5:
    raise SpecError(f"ConvK needs K in 1..5, got {k}")
  convs = [r[1] for r in _TABLES[arch] if r[0] == "conv"
           and r[1].startswith(f"conv{k}")]
  return convs[-1]


def _check_arch(arch: str) -> None:
  if arch not in ARCHS:
    raise SpecError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")


def resolve_layer(arch: str, layer: str) -> str:
  """Maps ``convK``/``ConvK`` to its last conv; checks other layer names."""
  _check_arch(arch)
  low = layer.lower()
  names = layer_names(arch)
  if low in names:
    return low
  if low.startswith("conv") and low[4:].isdigit() and len(low) == 5:
    return conv_k_name(arch, int(low[4:]))
  raise SpecError(f"unknown layer {layer!r} for {arch}; use conv1..conv5 or "
                  f"one of {', '.join(names)}")


def _decoder_for(encoder: list[Layer], output: str,
                 decoder_activation: str) -> list[Layer]:
  """Walks the encoder backwards (docs/design.md §2)."""
  decoder: list[Layer] = []
  for layer in reversed(encoder):
    if isinstance(layer, Conv):
      decoder.append(Conv(
          "de" + layer.name, layer.out_channels, layer.in_channels,
          layer.kernel, layer.stride, layer.padding, groups=1,
          activation=decoder_activation, transpose=True, mirror=layer.name))
    elif isinstance(layer, Pool):
      decoder.append(Unpool("un" + layer.name, layer.stride, layer.name))
  last = decoder[-1]
  if output == "mean":
    if last.stride != 1:
      raise SpecError(
          f"the channel-mean output replaces the output deconv, which must "
          f"have stride 1; {last.name} has stride {last.stride}")
    decoder[-1] = ChannelMean()
    # The mean replaces the output conv; what it averages is the previous
    # layer's activated maps. A one-conv net averages its encoder output.
  else:
    decoder[-1] = dataclasses.replace(last, activation=None)
  decoder.append(Crop())
  return decoder


def make_spec(arch: str = "vgg16", layer: str = "conv1", *,
              width: int | None = None, output: str = "conv",
              pooling: str | None = None, simplified: bool = False,
              kernel_size: int | None = None, activation: str = "relu",
              decoder_activation: str | None = None) -> NetSpec:
  """Builds the CNN-DCN pair for ``arch`` truncated at ``layer``.

  Args:
    arch: ``vgg16``, ``alexnet`` or ``alexnet_torchvision``.
    layer: ``conv1``..``conv5`` (the paper's ConvK) or any layer name of the
      encoder (``conv1_1``, ``pool1``, ``norm2``...).
    width: replaces every hidden channel count, encoder and decoder.
    output: ``conv`` (a 3-channel output conv) or ``mean`` (the channel mean,
      one grey channel; docs/design.md §2).
    pooling: ``max``, ``l2`` or ``avg`` for every pool (default: the arch's).
    simplified: Fig. 7's second row: one conv 3 -> C_K, K-1 pools, K-1
      unpools and one deconv (only for ``convK`` layers).
    kernel_size: overrides every conv's kernel (padding k // 2 keeps the size
      at stride 1); Section 4.3 uses it with ``conv1_1``.
    activation: encoder activation, ``relu`` or ``leaky_relu`` (slope 0.2).
    decoder_activation: decoder activation (default: ``activation``).

  Raises:
    SpecError: for an unknown arch, layer, pooling, output, or a width or
      kernel that does not fit.
  """
  _check_arch(arch)
  name = resolve_layer(arch, layer)
  if output not in OUTPUTS:
    raise SpecError(f"unknown output {output!r}; choose conv or mean")
  if pooling is not None and pooling not in POOL_KINDS:
    raise SpecError(f"unknown pooling {pooling!r}; choose max, l2 or avg")
  decoder_activation = decoder_activation or activation
  for act in (activation, decoder_activation):
    if act not in ACTIVATIONS:
      raise SpecError(f"unknown activation {act!r}; choose relu or leaky_relu")
  if width is not None and width <= 0:
    raise SpecError(f"width must be positive, got {width}")
  if kernel_size is not None and (kernel_size <= 0 or kernel_size % 2 == 0):
    raise SpecError(f"kernel size must be a positive odd number, got "
                    f"{kernel_size}")

  rows = _TABLES[arch]
  stop = [r[1] for r in rows].index(name)
  rows = rows[:stop + 1]
  if simplified:
    if not (layer.lower().startswith("conv") and len(layer) == 5):
      raise SpecError("the simplified net is defined for conv1..conv5 only")
    k = int(layer[4:])
    last_conv = [r for r in rows if r[0] == "conv"][-1]
    pools = [r for r in rows if r[0] == "pool"][:k - 1]
    rows = [("conv", f"conv{k}", last_conv[2], 3, 1, 1, 1)] + pools
    if arch != "vgg16":
      raise SpecError("the simplified net is defined for vgg16 only")

  encoder: list[Layer] = []
  channels = 3
  for row in rows:
    if row[0] == "conv":
      _, lname, out, k, s, p, g = row
      if width is not None:
        out = width
        if g > 1 and width % g:
          raise SpecError(f"{arch} layer {lname} has {g} groups; width "
                          f"{width} must be a multiple of {g}")
      if kernel_size is not None:
        k, p = kernel_size, kernel_size // 2
      encoder.append(Conv(lname, channels, out, k, s, p,
                          groups=g,
                          activation=activation))
      channels = out
    elif row[0] == "pool":
      _, lname, window, stride = row
      encoder.append(Pool(lname, pooling or "max", window, stride,
                          ceil_mode=_CEIL[arch]))
    else:
      encoder.append(LRN(row[1]))
  decoder = _decoder_for(encoder, output, decoder_activation)
  label = name + ("-simplified" if simplified else "")
  return NetSpec(arch, label, tuple(encoder), tuple(decoder))


def parameter_count(spec: NetSpec) -> int:
  return sum(math.prod(c.weight_shape) for c in spec.convs)


def conv_flops(spec: NetSpec, height: int, width: int) -> int:
  """Multiply-adds x 2 of every conv for one image (the benchmarks' FLOP)."""
  enc, dec = spec.shapes(height, width)
  inputs = spec.layer_inputs(height, width)
  total = 0
  for s, layer in zip(enc + dec, spec.layers):
    if isinstance(layer, Conv):
      if layer.transpose:
        ih, iw = inputs[layer.name]
        positions = ih * iw
      else:
        positions = s.height * s.width
      total += 2 * positions * layer.fan_in * layer.out_channels
  return total
