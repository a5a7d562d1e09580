"""The decoder's objective, shared by training through the frozen encoder
(:mod:`randconv.training.train`) and training on its cached features
(:mod:`randconv.training.features`): the decoder module, Caffe's
EuclideanLoss per image, and its mean over a fixed set of crops in padded
batches. It sits below both modules so that neither imports the other.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from randconv import modules
from randconv.distributed import Placement
from randconv.policy import ConvPolicy
from randconv.spec import NetSpec


def decoder_module(spec: NetSpec, policy: ConvPolicy) -> modules.Decoder:
  """The trained decoder: :class:`randconv.modules.Decoder` with biases."""
  return modules.Decoder(spec, use_bias=True, policy=policy)


def per_image_loss(y: jax.Array, x: jax.Array) -> jax.Array:
  """Caffe's EuclideanLoss per image: 0.5 * sum (y - x)^2.

  ``y``, ``x``: [B, H, W, C] -> [B].
  """
  return 0.5 * jnp.sum(jnp.square(y - x), axis=(1, 2, 3))


def pad_rows(chunk: np.ndarray, size: int) -> np.ndarray:
  """``chunk`` with zero rows added up to ``size`` rows (a last batch)."""
  pad = size - len(chunk)
  if not pad:
    return chunk
  return np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]),
                                         chunk.dtype)])


def mean_over_batches(losses, arrays, batch: int, place: Placement) -> float:
  """The mean of ``losses(global_batch)`` (per-image values) over the rows
  of ``arrays`` (an array, or a tuple of arrays of the same length), in
  batches of ``batch``, the last one padded with zeros and masked; each
  process passes all the rows and supplies its own (:meth:`Placement.rows`)."""
  rows = place.rows(batch)
  parts = arrays if isinstance(arrays, tuple) else (arrays,)
  total, n = 0.0, len(parts[0])
  for i in range(0, n, batch):
    pad = batch - len(parts[0][i:i + batch])
    chunk = tuple(pad_rows(np.asarray(a[i:i + batch]), batch)[rows]
                  for a in parts)
    chunk = chunk if isinstance(arrays, tuple) else chunk[0]
    vals = np.asarray(losses(place_batch(place, chunk, batch)))
    total += float(vals[:batch - pad].astype(np.float64).sum())
  return total / n


def place_batch(place: Placement, local, batch: int):
  """:meth:`Placement.batch` of an array or of each array of a tuple
  (cached features and their crops)."""
  if isinstance(local, tuple):
    return tuple(place.batch(a, batch) for a in local)
  return place.batch(local, batch)


__all__ = ["decoder_module", "mean_over_batches", "pad_rows",
           "per_image_loss", "place_batch"]
