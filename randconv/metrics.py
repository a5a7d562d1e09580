"""Reconstruction metrics of docs/design.md §6: grey, min-max, SSIM with the
luminosity inversion, Pearson r. All batched over leading axes and jit-able;
and :func:`spearman`, Spearman's rank correlation of two sequences (numpy,
for the summaries of the experiments and checks).

SSIM is dm-pix's (``pix.ssim``, DeepMind) with the settings of Wang et al.
2004 (Gaussian 11x11 window, sigma 1.5, K1 0.01, K2 0.03, data range 1); its
mean over the valid window positions equals scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)``, which crops the same border.
"""

from __future__ import annotations

import math

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

GREY_WEIGHTS = (0.299, 0.587, 0.114)
# SSIM's Gaussian window side: an image smaller than this has no window
# position, so the CLI refuses such sizes
# (randconv.repro.preflight.check_size).
SSIM_WINDOW = 11


def grey(x: jax.Array) -> jax.Array:
  """[..., H, W, 3] RGB (or [..., H, W, 1]) -> [..., H, W] luma."""
  if x.shape[-1] == 1:
    return x[..., 0]
  if x.shape[-1] != 3:
    raise ValueError(f"expected 1 or 3 channels, got shape {x.shape}")
  return x @ jnp.asarray(GREY_WEIGHTS, x.dtype)


def minmax(x: jax.Array) -> jax.Array:
  """Scales each [..., H, W] image to [0, 1]; a constant image becomes 0."""
  lo = jnp.min(x, axis=(-2, -1), keepdims=True)
  hi = jnp.max(x, axis=(-2, -1), keepdims=True)
  span = hi - lo
  return jnp.where(span > 0, (x - lo) / jnp.where(span > 0, span, 1), 0.0)


def _ssim_raw(a: jax.Array, b: jax.Array) -> jax.Array:
  return pix.ssim(a[..., None], b[..., None], max_val=1.0,
                  filter_size=SSIM_WINDOW,
                  filter_sigma=1.5, k1=0.01, k2=0.03)


def ssim_grey(x: jax.Array, y: jax.Array) -> jax.Array:
  """SSIM of two [..., H, W] grey images in [0, 1], no inversion."""
  return _ssim_raw(x, y)


def ssim(x: jax.Array, y: jax.Array) -> jax.Array:
  """The paper's SSIM between input ``x`` and output ``y``.

  Both go to grey and are min-max scaled to [0, 1]; when SSIM(x, y) < 0 the
  output's luminosity is inverted, SSIM(x, 1 - y), since the random output
  layer's sign is arbitrary. ``x``, ``y``: [..., H, W, C] with C 1 or 3.
  Returns [...] in [0, 1] (up to the rare case where both are negative).
  """
  a, b = minmax(grey(x)), minmax(grey(y))
  s = _ssim_raw(a, b)
  return jnp.where(s < 0, _ssim_raw(a, 1.0 - b), s)


def pearson(x: jax.Array, y: jax.Array) -> jax.Array:
  """Pearson r between the grey images over all pixels: [...]."""
  a = grey(x).reshape(*x.shape[:-3], -1)
  b = grey(y).reshape(*y.shape[:-3], -1)
  a = a - a.mean(-1, keepdims=True)
  b = b - b.mean(-1, keepdims=True)
  den = jnp.sqrt(jnp.sum(a * a, -1) * jnp.sum(b * b, -1))
  return jnp.where(den > 0, jnp.sum(a * b, -1) / jnp.where(den > 0, den, 1),
                   0.0)


def reconstruction_metrics(x: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
  """``{"ssim", "pearson"}`` for inputs ``x`` and outputs ``y``, [...]."""
  return {"ssim": ssim(x, y), "pearson": pearson(x, y)}


def display(x: jax.Array, y: jax.Array) -> jax.Array:
  """The output ``y`` as a picture: min-max scaled to [0, 1] over all its
  channels, and with its luminosity inverted where :func:`ssim` inverts it
  (the random output's sign is arbitrary). [..., H, W, C] -> same shape."""
  lo = jnp.min(y, axis=(-3, -2, -1), keepdims=True)
  hi = jnp.max(y, axis=(-3, -2, -1), keepdims=True)
  span = hi - lo
  z = jnp.where(span > 0, (y - lo) / jnp.where(span > 0, span, 1), 0.0)
  flip = _ssim_raw(minmax(grey(x)), minmax(grey(y))) < 0
  return jnp.where(flip[..., None, None, None], 1.0 - z, z)


def spearman(a, b) -> float:
  """Spearman's rank correlation (average ranks for ties); NaN for fewer
  than two points or a constant sequence."""
  def rank(v):
    v = np.asarray(v, float)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(len(v), dtype=float)
    for val in np.unique(v):  # ties share their mean rank
      r[v == val] = r[v == val].mean()
    return r
  if len(a) < 2:
    return float("nan")
  ra, rb = rank(a), rank(b)
  ra, rb = ra - ra.mean(), rb - rb.mean()
  den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
  return float((ra * rb).sum() / den) if den > 0 else float("nan")
