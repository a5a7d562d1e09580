import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def torch():
  return pytest.importorskip(
      "torch", reason="PyTorch is the independent reference for these tests; "
      "install torch (CPU) to run them")


@pytest.fixture(scope="session")
def rng():
  return np.random.default_rng(0)


def positive_images(n, size, seed=0):
  """Smooth positive images: a random low-frequency field plus noise."""
  r = np.random.default_rng(seed)
  y, x = np.mgrid[0:size, 0:size] / size
  out = []
  for _ in range(n):
    img = np.zeros((size, size, 3))
    for c in range(3):
      f = r.uniform(1, 4, 2)
      img[..., c] = 0.5 + 0.3 * np.sin(2 * np.pi * (f[0] * x + f[1] * y)
                                        + r.uniform(0, 6))
    out.append(np.clip(img + 0.05 * r.standard_normal(img.shape), 0, 1))
  return np.stack(out).astype(np.float32)
