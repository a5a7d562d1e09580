import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))


def _shared_compile_cache() -> None:
  """One persistent XLA compile cache for a whole test run: both xdist
  workers and the subprocesses the tests start (``RANDCONV_JAX_CACHE``,
  unless a test module sets its own) compile a program once. A size limit
  turns on JAX's file lock, so the processes never read half an entry. The
  folder stays in the temporary directory."""
  import tempfile

  import jax
  run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
  path = os.path.join(tempfile.gettempdir(), f"randconv-tests-jax-{run}") \
      if run else tempfile.mkdtemp(prefix="randconv-tests-jax-")
  os.makedirs(path, exist_ok=True)
  os.environ["RANDCONV_JAX_CACHE"] = path
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  jax.config.update("jax_compilation_cache_max_size", 4 << 30)


_shared_compile_cache()


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


def signal_when(cmd: list[str], ready, sig, env=None,
                timeout: float = 300) -> tuple[int, str]:
  """Runs ``cmd`` and sends it ``sig`` as soon as ``ready()`` is true
  (polled every 10 ms); fails if it ends first or ``ready`` never comes.
  Returns (its exit status, its stderr)."""
  import subprocess
  import time
  proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  stop = time.time() + timeout
  try:
    while time.time() < stop and proc.poll() is None and not ready():
      time.sleep(0.01)
    if proc.poll() is not None:
      pytest.fail("the run ended before the signal: "
                  + proc.stderr.read()[-500:])
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.communicate()
  return proc.returncode, err


def kill_when(cmd: list[str], ready, env=None, timeout: float = 300):
  """:func:`signal_when` with SIGKILL."""
  import signal
  code, _ = signal_when(cmd, ready, signal.SIGKILL, env, timeout)
  assert code == -signal.SIGKILL


def training_records(workdir):
  """A training run's (step, batch loss) and (step, validation loss,
  training-set loss) records."""
  from randconv.training.train import read_metrics
  recs = read_metrics(workdir)
  losses = [(r["step"], r["loss"]) for r in recs if "loss" in r]
  evals = [(r["step"], r["val_loss"], r["train_eval_loss"]) for r in recs
           if "val_loss" in r]
  return losses, evals


def has_lines(path, n: int = 1):
  """``ready`` for :func:`kill_when`: ``path`` holds ``n`` whole lines."""
  return lambda: path.exists() and path.read_text().count("\n") >= n


def free_port() -> int:
  """A TCP port on 127.0.0.1 that nothing listens on now."""
  import socket
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Job:
  """``n`` processes of one JAX job on 127.0.0.1, each with ``devices``
  forced CPU devices: ``argv(i, port)`` is process ``i``'s command. Used as
  a context manager, every process still running at the end is killed."""

  def __init__(self, argv, n: int = 2, devices: int = 2, env=None):
    import subprocess
    self.port = free_port()
    env = dict(env or os.environ, JAX_NUM_CPU_DEVICES=str(devices),
               PYTHONUNBUFFERED="1")
    self.procs = [subprocess.Popen(argv(i, self.port), env=env,
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
                  for i in range(n)]

  def wait(self, timeout: float = 120) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of every process."""
    outs = [p.communicate(timeout=timeout) for p in self.procs]
    return [(p.returncode, *o) for p, o in zip(self.procs, outs,
                                               strict=True)]

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    for p in self.procs:
      if p.poll() is None:
        p.kill()
      p.communicate()


def job_flags(i: int, port: int, n: int = 2) -> list[str]:
  """The launch flags of process ``i`` of a job of ``n`` (5 s heartbeats,
  so that a lost process is seen quickly)."""
  return ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n),
          "--process-id", str(i), "--heartbeat-timeout", "5"]
