"""Seconds per infinite-width kernel: ``randconv.kernel_fn`` against
neural-tangents' ``kernel_fn`` (issue 22, point 7).

The networks both compute, those of tests/data/make_nt_kernels.py
(``conv_relu``, ``conv_relu_avgpool``, ``vgg16_pool1_avg``), on the same
seeded normal RGB images in the same run, at each size and number of
images: the NNGP kernel over every pixel and every pair of images
(``[n, P, n, P]``; ``diagonal_spatial=False`` for neural-tangents), float64
on both sides. neural-tangents runs in its own venv (it pins jax 0.4.30 and
pulls in TensorFlow) as a subprocess that imports make_nt_kernels.py's
networks (``timed_kernel``: its ``kernel_fn`` under ``jax.jit``, as its docs
advise); randconv runs here. The two are interleaved cell by cell, so load
from other users hits both alike.

Each time is the median of ``--repeats`` calls after one warm-up call (the
compile is excluded on both sides). randconv's time is the whole
``kernel_fn(spec)(x)`` call (its per-layer XLA programs and the numpy
between them); neural-tangents' is the jitted call, without the layout
change to [n, P, n, P]. ``max diff`` is the correctness column: ``max |c k_rc
- k_nt| / max |k_nt|`` over all entries, c > 0 the least-squares scale (the
two parameterisations differ by one positive factor, randconv.kernels).

    python benchmarks/kernels.py [--nt-venv DIR] [--sizes 8 16 32]
        [--images 1 4] [--repeats 5] [--json out.json]

The neural-tangents venv: ``bash tests/data/make_nt_kernels.sh [DIR]``
(default ``$NT_VENV`` or ``.nt-venv``). Without it only randconv's column is
printed. Kernels over ``RANDCONV_GP_MAX_PIXELS`` images x pixels (4096 by
default) are skipped on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import randconv
from randconv import kernels
from randconv.spec import NetSpec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from nt_networks import nt_specs  # noqa: E402  (the peer test's specs)

NETWORKS = ("conv_relu", "conv_relu_avgpool", "vgg16_pool1_avg")
PREFIX = "NTBENCH "

# The neural-tangents side: imports make_nt_kernels.py's networks, answers
# one JSON request per line on stdin ({"name", "x", "out", "repeats"}) with
# one PREFIX line on stdout, and saves the kernel (library layout) at "out".
NT_DRIVER = r"""
import json, sys, traceback
sys.path.insert(0, sys.argv[1])
import jax, numpy as np
import neural_tangents, make_nt_kernels as m
P = sys.argv[2]
print(P + json.dumps({"jax": jax.__version__,
                      "neural_tangents": neural_tangents.__version__}),
      flush=True)
for line in sys.stdin:
  req = json.loads(line)
  try:
    times, k = m.timed_kernel(req["name"], np.load(req["x"]), req["repeats"])
    np.save(req["out"], k)
    print(P + json.dumps({"times": times}), flush=True)
  except Exception:
    print(P + json.dumps({"error": traceback.format_exc(limit=3)}),
          flush=True)
"""


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
  """``max |c a - b| / max |b|``, c the least-squares positive scale."""
  a, b = np.ravel(a), np.ravel(b)
  c = float(a @ b) / float(a @ a)
  if c <= 0:
    return float("inf")
  return float(np.max(np.abs(c * a - b)) / np.max(np.abs(b)))


class NT:
  """The neural-tangents subprocess (None of it when the venv is missing)."""

  def __init__(self, venv: Path, tmp: Path):
    self.tmp = tmp
    py = venv / "bin" / "python"
    self.proc = None
    self.versions = None
    if not py.is_file():
      print(f"no neural-tangents venv at {venv}: build it with `bash "
            f"tests/data/make_nt_kernels.sh {venv}` (or pass --nt-venv / set "
            "NT_VENV); printing randconv's column only", file=sys.stderr)
      return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")
    self.proc = subprocess.Popen(
        [str(py), "-c", NT_DRIVER, str(ROOT / "tests" / "data"), PREFIX],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=open(tmp / "nt_stderr.txt", "w"), text=True, env=env,
        cwd=ROOT)
    self.versions = self._answer()
    if self.versions is None:
      print("the neural-tangents subprocess did not start; randconv's "
            "column only", file=sys.stderr)

  def _answer(self):
    for line in self.proc.stdout:
      if line.startswith(PREFIX):
        return json.loads(line[len(PREFIX):])
    self.proc = None  # it exited: show why
    err = (self.tmp / "nt_stderr.txt").read_text().splitlines()
    print("\n".join(["neural-tangents subprocess:"] + err[-20:]),
          file=sys.stderr)
    return None

  def kernel(self, name: str, x: np.ndarray, repeats: int):
    """(seconds of each call, kernel [n, P, n, P]) or (error text, None)."""
    if self.proc is None:
      return None, None
    tag = f"{name}_{x.shape[0]}_{x.shape[1]}"
    xp, out = self.tmp / f"x_{tag}.npy", self.tmp / f"k_{tag}.npy"
    np.save(xp, x)
    self.proc.stdin.write(json.dumps({"name": name, "x": str(xp),
                                      "out": str(out),
                                      "repeats": repeats}) + "\n")
    self.proc.stdin.flush()
    ans = self._answer()
    if ans is None:
      return "neural-tangents subprocess exited", None
    if "error" in ans:
      return ans["error"], None
    k = np.load(out)
    out.unlink()
    return ans["times"], k

  def close(self):
    if self.proc is not None:
      self.proc.stdin.close()
      self.proc.wait()


def rc_kernel(spec: NetSpec, x: np.ndarray, repeats: int):
  f = randconv.kernel_fn(spec)
  f(x)  # warm-up: compiles each layer's program for this shape
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    k = f(x)
    times.append(time.perf_counter() - t0)
  return times, k


def fmt(t) -> str:
  return "-" if t is None else f"{t:.3g}"


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--nt-venv", type=Path,
                  default=Path(os.environ.get("NT_VENV") or
                               ROOT / ".nt-venv"))
  ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
  ap.add_argument("--images", type=int, nargs="+", default=[1, 4])
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--networks", nargs="+", default=list(NETWORKS),
                  choices=NETWORKS)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--json", type=Path, help="also write the rows here")
  a = ap.parse_args()

  import jax
  load0 = os.getloadavg()
  rows = []
  with tempfile.TemporaryDirectory(prefix="kbench-") as tmp:
    nt = NT(a.nt_venv, Path(tmp))
    print(f"# randconv: jax {jax.__version__}; neural-tangents: "
          f"{nt.versions or 'absent'}; {os.cpu_count()} CPUs, load "
          f"{load0[0]:.2f}; {platform.processor() or ''}")
    print(f"# seconds per kernel, median of {a.repeats} calls after a "
          "warm-up call (compile excluded); max diff: max |c k_rc - k_nt| "
          "/ max |k_nt|, c the best positive scale")
    head = (f"{'network':<18} {'px':>3} {'imgs':>4} {'P':>5} "
            f"{'randconv s':>10} {'NT s':>10} {'NT/rc':>6} {'max diff':>9}")
    print(head)
    print("-" * len(head))
    rng = np.random.default_rng(a.seed)
    for size in a.sizes:
      for n in a.images:
        x = rng.standard_normal((n, size, size, 3))
        for name in a.networks:
          spec = nt_specs()[name]
          row = {"network": name, "size": size, "images": n}
          try:
            kernels.check_size(n, spec, size, size)
          except kernels.KernelError as e:
            row["skipped"] = str(e)
            print(f"{name:<18} {size:>3} {n:>4} skipped: over "
                  f"RANDCONV_GP_MAX_PIXELS ({kernels.max_full_pixels()})")
            rows.append(row)
            continue
          nt_times, k_nt = nt.kernel(name, x, a.repeats)
          rc_times, k_rc = rc_kernel(spec, x, a.repeats)
          row["pixels"] = k_rc.shape[1]
          row["randconv_s"] = rc_times
          t_rc = statistics.median(rc_times)
          t_nt = diff = None
          if k_nt is not None:
            row["nt_s"] = nt_times
            t_nt = statistics.median(nt_times)
            diff = row["max_diff"] = max_diff(k_rc, k_nt)
          elif isinstance(nt_times, str):
            row["nt_error"] = nt_times
            print(f"neural-tangents failed on {name} {size} px {n} "
                  f"images:\n{nt_times}", file=sys.stderr)
          ratio = "-" if t_nt is None else f"{t_nt / t_rc:.1f}"
          print(f"{name:<18} {size:>3} {n:>4} {k_rc.shape[1]:>5} "
                f"{fmt(t_rc):>10} {fmt(t_nt):>10} {ratio:>6} "
                f"{'-' if diff is None else f'{diff:.1e}':>9}", flush=True)
          rows.append(row)
    nt.close()
  print(f"# load at the end {os.getloadavg()[0]:.2f}")
  if a.json:
    a.json.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M"), "jax": jax.__version__,
        "neural_tangents": nt.versions, "repeats": a.repeats,
        "load_start": load0, "load_end": os.getloadavg(), "rows": rows}, indent=1))
    print(f"wrote {a.json}")


if __name__ == "__main__":
  main()
