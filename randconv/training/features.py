"""Decoder training on cached encoder features (``TrainConfig.feature_cache``).

The encoder is frozen in every decoder training, so its features are a
function of the crop alone: computing them once and training the decoder
on them gives the same losses as running the encoder at every step, up to
float rounding (the encoder runs in its own compiled program instead of
inside the step's), and skips the encoder's forward pass at every step.

* The cached set is the first ``N`` crops of the run's own seeded stream
  (:meth:`randconv.training.data.Data.dataset`: crop ``i`` is a function of
  the seed and ``i``); batch ``t`` is crops ``[t B, (t + 1) B)`` of the set,
  wrapping around. With ``N >= steps * B`` the batches are exactly the
  uncached run's; with fewer, augmentation is a fixed set of crops and
  flips, visited in the same order every pass.
* The fixed validation and training-set crops are cached as well.
* The cache lives in memory (host memory on a data-parallel mesh, where
  every process computes it all and feeds its own rows); a resumed run
  computes it again, which gives the same numbers: the crops and the
  encoder are fixed by the config.

:func:`encode_layers` gives several layers' features from one encoder pass
(one VGG pass for Conv1..Conv5), and :func:`scale_features` turns a random
Gaussian encoder's features into those of another sigma (exact by
homogeneity, docs/design.md §4), so runs that share an encoder draw can
share its features.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from randconv import modules, progress
from randconv.distributed import Placement
from randconv.distributions import parse_distribution
from randconv.errors import RandconvError
from randconv.policy import ConvPolicy
from randconv.spec import Conv, NetSpec, make_spec
from randconv.training import weights as weights_lib
from randconv.training.objective import (
  decoder_module,
  mean_over_batches,
  pad_rows,
  per_image_loss,
)


def _to_float(x_u8):
  return x_u8.astype(jnp.float32) / 255.0


def layer_output_name(spec: NetSpec, layer: str) -> str:
  """The encoder layer whose output is the ``layer`` feature (``conv2``
  -> ``conv2_2`` in VGG16) of ``spec``'s architecture."""
  sub = make_spec(spec.arch, layer)
  return sub.encoder[-1].name


def encode_layers(spec: NetSpec, enc: weights_lib.Encoder, x: jax.Array,
                  layers, conv_impl: str | ConvPolicy = "direct"
                  ) -> dict[str, jax.Array]:
  """``{layer: feature}`` of RGB images ``x`` in [0, 1] for every name in
  ``layers`` (``conv1``..``conv5`` or layer names), from one pass of the
  encoder of ``spec`` (which must reach the deepest of them). Each equals
  the feature of the encoder truncated at that layer with the same
  params: the layers of a truncated encoder are the first ones of the
  deeper encoder's.

  Raises:
    RandconvError: a layer beyond ``spec``'s encoder.
  """
  names = {layer: layer_output_name(spec, layer) for layer in layers}
  have = {layer.name for layer in spec.encoder}
  for layer, name in names.items():
    if name not in have:
      raise RandconvError(f"{layer} ({name}) is beyond the encoder of "
                          f"{spec.arch} {spec.layer}")
  model = modules.Encoder(spec, use_bias=enc.pretrained,
                          policy=ConvPolicy.named(conv_impl))
  _, feats = modules.apply_with_features(
      model, {"params": enc.params},
      weights_lib.preprocess(x, enc.preprocessing))
  return {layer: feats[name] for layer, name in names.items()}


def sigma_factor(spec: NetSpec, dist_from: str, dist_to: str) -> float:
  """The factor that turns a random encoder's ``spec`` features drawn from
  ``dist_from`` into those of ``dist_to`` with the same key:
  ``(sigma_to / sigma_from) ** L``, ``L`` the encoder's convs. Exact
  because a Gaussian kernel is sigma times the key's normal draw and the
  encoder (no bias, ReLU, max pooling, centred input) is positively
  homogeneous in each kernel (docs/design.md §4).

  Raises:
    RandconvError: not two Gaussians, or an encoder with LRN (not
      homogeneous).
  """
  a, b = parse_distribution(dist_from), parse_distribution(dist_to)
  if a.name != "gaussian" or b.name != "gaussian":
    raise RandconvError(f"features scale with sigma between Gaussian "
                        f"encoders only, not {a} -> {b}")
  if spec.has_lrn:
    raise RandconvError(f"{spec.arch} has LRN: its features do not scale "
                        "with the weights")
  n_convs = sum(isinstance(layer, Conv) for layer in spec.encoder)
  return (b.scale / a.scale) ** n_convs


def scale_features(z, spec: NetSpec, dist_to: str,
                   dist_from: str = "gaussian:0.015"):
  """Features of a ``dist_from`` random encoder, as ``dist_to``'s
  (:func:`sigma_factor`); a float32 product, so a factor beyond float32's
  range overflows as the direct draw would."""
  return z * jnp.float32(sigma_factor(spec, dist_from, dist_to))


@dataclasses.dataclass
class FeatureCache:
  """Cached (feature, target crop) pairs of a run: ``train`` the first N
  crops of the stream, ``val`` and ``train_eval`` the fixed evaluation
  crops. Arrays are jax arrays on one device, numpy on a mesh."""

  train: tuple
  val: tuple
  train_eval: tuple

  def batches(self, batch: int, start: int = 0, threads: int = 1,
              rows: slice | None = None):
    """Batches ``start, start + 1, ...`` of (features, uint8 crops), each
    the crops ``[t B, (t + 1) B)`` of the set modulo its size; ``rows``:
    one process's share of the batch. ``threads`` is unused (no reading)."""
    del threads
    z, x = self.train
    n = len(x)
    rows = rows or slice(0, batch)
    t = start
    while True:
      lo = (t * batch) % n
      if rows == slice(0, batch) and lo + batch <= n:
        yield z[lo:lo + batch], x[lo:lo + batch]
      else:
        idx = ((lo + np.arange(batch)) % n)[rows]
        yield z[idx], x[idx]
      t += 1

  def scaled(self, factor: float) -> "FeatureCache":
    """The cache with every feature times ``factor`` (a float32 product,
    so a factor beyond float32's range overflows as a direct draw
    would)."""
    f = np.float32(factor)
    return FeatureCache(*((z * f, x) for z, x in (
        self.train, self.val, self.train_eval)))


def rms_of(chunks) -> float:
  """The root mean square of every value of ``chunks`` (arrays), in float64:
  the ``rms`` feature scale's divisor.

  Raises:
    RandconvError: all zero (nothing to scale by).
  """
  total = count = 0.0
  for z in chunks:
    z = np.asarray(z, np.float64)
    total += float(np.square(z).sum())
    count += z.size
  if not total > 0:
    raise RandconvError("the encoder's features are all zero on the "
                        "training-set crops: no RMS to scale them by")
  return math.sqrt(total / count)


def check_cache(cache: FeatureCache, cfg) -> None:
  """A cache handed to a run is the run's: its size and crop.

  Raises:
    RandconvError: another size or crop.
  """
  n, crop = len(cache.train[1]), cache.train[1].shape[1]
  if n != cfg.feature_cache or crop != cfg.data.crop:
    raise RandconvError(f"the cache holds {n} crops of {crop} px; the run "
                        f"wants {cfg.feature_cache} of {cfg.data.crop} px")


def encode_fn(spec: NetSpec, enc: weights_lib.Encoder, policy: ConvPolicy):
  """``encode(params, images_u8) -> features``, jit-compiled: what the
  uncached step computes before its decoder."""
  encoder = modules.Encoder(spec, use_bias=enc.pretrained, policy=policy)
  mode = enc.preprocessing
  return jax.jit(lambda p, x_u8: encoder.apply(
      {"params": p}, weights_lib.preprocess(_to_float(x_u8), mode)))


def check_size(n: int, batch: int) -> None:
  """A cache holds at least one batch (a batch never repeats a crop)."""
  if n < batch:
    raise RandconvError(f"--feature-cache {n} is fewer crops than one batch "
                        f"of {batch}; give at least {batch} (0: no cache)")


def build_cache(n: int, batch: int, spec: NetSpec, enc: weights_lib.Encoder,
                data, conv_impl: str | ConvPolicy = "direct",
                host: bool = False, show: bool | str = True
                ) -> FeatureCache:
  """Encodes the first ``n`` crops of ``data``'s stream (in batches of
  ``batch``, the stream's own) and its evaluation crops, with a progress
  bar. ``host``: keep numpy arrays (for a data-parallel mesh).

  Raises:
    RandconvError: ``n`` below one batch.
  """
  return build_caches(n, batch, spec, enc, data, [spec.layer], conv_impl,
                      host, show)[spec.layer]


def build_caches(n: int, batch: int, spec: NetSpec, enc: weights_lib.Encoder,
                 data, layers, conv_impl: str | ConvPolicy = "direct",
                 host: bool = False, show: bool | str = True
                 ) -> dict[str, FeatureCache]:
  """:func:`build_cache` for several ``layers`` of ``spec``'s encoder from
  one pass (:func:`encode_layers`): ``{layer: cache}``, each the cache of
  the run truncated at that layer with the same encoder params.

  Raises:
    RandconvError: ``n`` below one batch, a layer beyond the encoder.
  """
  check_size(n, batch)
  layers = list(dict.fromkeys(layers))
  policy = ConvPolicy.named(conv_impl)
  encode = jax.jit(lambda p, x_u8: encode_layers(
      spec, dataclasses.replace(enc, params=p), _to_float(x_u8), layers,
      policy))
  shapes = {k: _layer_shape(spec, k, data.config.crop) for k in layers}
  n_eval = len(data.val) + len(data.train_eval)
  mb = sum(4 * math.prod(v) for v in shapes.values()) * (n + n_eval) / 2**20
  label = show if isinstance(show, str) else \
      f"features {spec.arch} {', '.join(layers)}"
  if show:
    progress.note(f"[train] caching {spec.arch} {', '.join(layers)} "
                  f"features of {n} training crops and {n_eval} evaluation "
                  f"crops ({mb:.1f} MB)")
  bar = progress.bar(n + n_eval, label, "crop", enabled=bool(show))
  keep = np.asarray if host else jax.device_put
  crop = data.config.crop

  def run(total, chunks):
    # Filled in place: the peak is the cache (and one copy to the device).
    z = {k: np.empty((total, *v), np.float32) for k, v in shapes.items()}
    x = np.empty((total, crop, crop, 3), np.uint8)
    at = 0
    for x_u8, k in chunks:
      out = encode(enc.params, pad_rows(x_u8, batch))
      for layer in layers:
        z[layer][at:at + k] = np.asarray(out[layer])[:k]
      x[at:at + k] = x_u8[:k]
      at += k
      bar.update(k)
    return {layer: (keep(z[layer]), keep(x)) for layer in layers}

  stream = data.dataset(batch)
  try:
    train = run(n, ((stream[t], min(batch, n - t * batch))
                    for t in range(math.ceil(n / batch))))
    val, tr = (run(len(imgs), ((imgs[i:i + batch], len(imgs[i:i + batch]))
                               for i in range(0, len(imgs), batch)))
               for imgs in (data.val, data.train_eval))
  finally:
    bar.close()
  return {k: FeatureCache(train[k], val[k], tr[k]) for k in layers}


def _layer_shape(spec: NetSpec, layer: str, crop: int) -> tuple[int, ...]:
  """The (h, w, c) feature shape of ``layer`` of ``spec``'s encoder."""
  name = layer_output_name(spec, layer)
  shape = next(s for s in spec.shapes(crop, crop)[0] if s.name == name)
  return shape.height, shape.width, shape.channels


def make_cached_train_step(spec: NetSpec, optimizer, conv_impl="direct",
                           placement: Placement | None = None):
  """``step(dec, opt_state, (z, batch_u8)) -> (dec, opt_state, loss)``:
  :func:`randconv.training.train.make_train_step` on cached features
  ``z`` of the crops ``batch_u8`` (no encoder)."""
  decoder = decoder_module(spec, ConvPolicy.named(conv_impl))

  def loss_fn(dec, z, x):
    return jnp.mean(per_image_loss(decoder.apply({"params": dec}, z,
                                                 x.shape[1:3]), x))

  def step(dec, opt_state, pair):
    z, x_u8 = pair
    x = _to_float(x_u8)
    loss, grads = jax.value_and_grad(loss_fn)(dec, z, x)
    updates, opt_state = optimizer.update(grads, opt_state, dec)
    return optax.apply_updates(dec, updates), opt_state, loss

  return (placement or Placement.one()).jit(
      step, 2, donate_argnums=(0, 1), out_replicated=3)


def make_cached_eval(spec: NetSpec, batch: int, conv_impl="direct",
                     placement: Placement | None = None):
  """``evaluate(dec, (z, images_u8)) -> mean per-image loss``, as
  :func:`randconv.training.train.make_eval` on cached features."""
  decoder = decoder_module(spec, ConvPolicy.named(conv_impl))
  place = placement or Placement.one()

  def per_image(dec, pair):
    z, x_u8 = pair
    x = _to_float(x_u8)
    return per_image_loss(decoder.apply({"params": dec}, z, x.shape[1:3]), x)

  losses = place.jit(per_image, 1)
  return lambda dec, pair: mean_over_batches(
      lambda b: losses(dec, b), pair, batch, place)


__all__ = ["FeatureCache", "build_cache", "build_caches", "check_cache",
           "check_size", "rms_of", "encode_fn",
           "encode_layers", "layer_output_name", "make_cached_eval",
           "make_cached_train_step", "scale_features",
           "sigma_factor"]
