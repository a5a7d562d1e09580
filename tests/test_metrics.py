"""Metrics (docs/design.md §6) against scikit-image's SSIM and numpy's corrcoef."""

import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from randconv import images, metrics


def skimage_ssim(a, b):
  return structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False, data_range=1)


def pairs():
  """Five (input, output) pairs of different kinds and sizes."""
  r = np.random.default_rng(0)
  cat = images.load_batch(["chelsea"], 64)[0]
  coffee = images.load_batch(["coffee"], 48)[0]
  noise = r.random((40, 56, 3)).astype(np.float32)
  out = [
      (cat, np.clip(cat + 0.2 * r.standard_normal(cat.shape), 0, 1)),
      (cat, cat[::-1]),                                    # unrelated
      (coffee, 1.0 - coffee),                              # inverted
      (coffee, coffee ** 2 * 5.0 - 1.0),                   # rescaled
      (noise, np.clip(noise * 0.5 + r.random(noise.shape) * 0.5, 0, 1)),
  ]
  return [(a.astype(np.float32), b.astype(np.float32)) for a, b in out]


@pytest.mark.parametrize("i", range(5))
def test_ssim_equals_skimage(i):
  x, y = pairs()[i]
  gx = (x @ np.array(metrics.GREY_WEIGHTS)).astype(np.float64)
  gy = (y @ np.array(metrics.GREY_WEIGHTS)).astype(np.float64)
  mm = lambda a: (a - a.min()) / (a.max() - a.min())
  gx, gy = mm(gx), mm(gy)
  want = skimage_ssim(gx, gy)
  if want < 0:  # the paper's luminosity inversion
    want = skimage_ssim(gx, 1.0 - gy)
  got = float(metrics.ssim(jnp.asarray(x), jnp.asarray(y)))
  assert abs(got - want) < 1e-4, (got, want)


def test_inversion_makes_ssim_sign_free():
  x, y = pairs()[0]
  a = float(metrics.ssim(jnp.asarray(x), jnp.asarray(y)))
  b = float(metrics.ssim(jnp.asarray(x), -3.0 * jnp.asarray(y) + 7.0))
  assert abs(a - b) < 1e-5
  assert 0.0 <= a <= 1.0


@pytest.mark.parametrize("i", range(5))
def test_pearson_equals_corrcoef(i):
  x, y = pairs()[i]
  w = np.array(metrics.GREY_WEIGHTS)
  want = np.corrcoef((x @ w).ravel(), (y @ w).ravel())[0, 1]
  got = float(metrics.pearson(jnp.asarray(x), jnp.asarray(y)))
  assert abs(got - want) < 1e-5


def test_batched_matches_single_and_grey_weights():
  ps = pairs()[:2]
  xs = jnp.stack([jnp.asarray(p[0]) for p in ps])
  ys = jnp.stack([jnp.asarray(p[1]) for p in ps])
  batched = metrics.reconstruction_metrics(xs, ys)
  for i, (x, y) in enumerate(ps):
    assert abs(float(batched["ssim"][i]) - float(metrics.ssim(x, y))) < 1e-6
  rgb = jnp.asarray([[[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]])
  np.testing.assert_allclose(metrics.grey(rgb)[0, 0], [0.299, 0.587, 0.114],
                             rtol=1e-6)


def test_spearman_closed_form_with_ties():
  # Average ranks [1, 2.5, 2.5, 4] and [1, 3, 2, 4]: centred, their
  # products sum to 4.5 and their squares to 4.5 and 5, so rho = sqrt(0.9).
  assert metrics.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(
      np.sqrt(0.9), abs=1e-12)
  assert metrics.spearman([3, 1, 2], [30, 10, 20]) == pytest.approx(1.0)
  assert np.isnan(metrics.spearman([1], [2]))
  assert np.isnan(metrics.spearman([1, 1, 1], [1, 2, 3]))


@pytest.mark.parametrize("seed", range(4))
def test_spearman_equals_scipy(seed):
  stats = pytest.importorskip("scipy.stats")
  r = np.random.default_rng(seed)
  a = r.integers(0, 5, 12)          # ties
  b = r.integers(0, 4, 12) + a      # correlated, with ties
  c = r.random(9)                   # no ties
  d = c + 0.3 * r.random(9)
  for u, v in ((a, b), (c, d), (a, r.random(12))):
    want = stats.spearmanr(u, v)[0]
    assert metrics.spearman(u, v) == pytest.approx(want, abs=1e-12)
