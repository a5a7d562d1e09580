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


def kill_when(cmd: list[str], ready, env=None, timeout: float = 300):
  """Runs ``cmd`` and SIGKILLs it as soon as ``ready()`` is true (polled
  every 10 ms); fails if it ends first or ``ready`` never comes."""
  import signal
  import subprocess
  import time
  proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  stop = time.time() + timeout
  try:
    while time.time() < stop and proc.poll() is None and not ready():
      time.sleep(0.01)
    if proc.poll() is not None:
      pytest.fail("the run ended before it could be killed: "
                  + proc.stderr.read()[-500:])
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait(timeout=60)
    proc.stderr.close()
  assert proc.returncode == -signal.SIGKILL


def has_lines(path, n: int = 1):
  """``ready`` for :func:`kill_when`: ``path`` holds ``n`` whole lines."""
  return lambda: path.exists() and path.read_text().count("\n") >= n
