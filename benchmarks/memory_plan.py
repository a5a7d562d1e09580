"""Does the Section 4 width sweep fit its memory budget? Prints, per width,
the chunk plan of the paper's Conv1 width sweep (``vgg16`` up to ``pool1``,
both output variants) as the estimate gives it and as XLA's memory analysis
of the compiled chunk corrects it (:func:`randconv.engine.fit_chunks`), then
runs one net on all the images at ``--run-widths`` through
:func:`randconv.engine.run_nets` with the fit on (the backend's default
strategy: ``vmap`` of the one net on a GPU, where Section 4's one-net groups
use ``loop``) and reports the device's peak memory.

  python benchmarks/memory_plan.py                      # paper sizes (GPU)
  python benchmarks/memory_plan.py --size 64 --widths 64 256 --nets 4 \\
      --images 8 --run-widths 256 --budget-gb 1         # a CPU smoke run

The budget is ``$RANDCONV_MEMORY_BUDGET_GB`` or ``--budget-gb`` (default: the
backend's, 40 GiB on a GPU, i.e. half of an 80 GB card).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from randconv import engine
from randconv.spec import make_spec


def gib(n) -> str:
  return "-" if n is None else f"{n / 2**30:.2f}"


def peak_bytes() -> int | None:
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--size", type=int, default=227)
  ap.add_argument("--widths", type=int, nargs="+",
                  default=[256, 512, 1024, 2048])
  ap.add_argument("--nets", type=int, default=30)
  ap.add_argument("--images", type=int, default=50)
  ap.add_argument("--run-widths", type=int, nargs="*", default=[2048])
  ap.add_argument("--budget-gb", type=float, default=None)
  a = ap.parse_args()
  budget = int(a.budget_gb * 2**30) if a.budget_gb else engine.default_budget()
  backend = jax.default_backend()
  print(f"device {jax.devices()[0].device_kind}, backend {backend}, "
        f"budget {gib(budget)} GiB, {a.size}x{a.size}, {a.nets} nets x "
        f"{a.images} images")
  print("width variant strategy  estimate(seeds x images)  XLA GiB  "
        "fitted(seeds x images)  XLA GiB  compile s")
  shape = (a.size, a.size, 3)
  for w in a.widths:
    for variant in ("conv", "mean"):
      spec = make_spec("vgg16", "pool1", width=w, output=variant)
      strategy = engine.pick_strategy(spec, a.size, a.size)
      guess = engine.plan(spec, a.nets, a.images, a.size, a.size, strategy,
                         budget=budget)
      measured = []  # every try's bytes: the first is the estimate's

      def measure(*args):
        measured.append(engine.program_bytes(*args))
        return measured[-1]

      t0 = time.perf_counter()
      try:
        fitted, need = engine.fit_chunks(spec, None, "auto", True, strategy,
                                         shape, guess, budget, measure)
        fit = f"{fitted.seed_chunk:>4} x {fitted.image_chunk:<4}"
      except MemoryError as e:
        need, fit = None, f"none: {e}"
      first = measured[0]
      print(f"{w:5d} {variant:7s} {strategy:8s} {guess.seed_chunk:>6} x "
            f"{guess.image_chunk:<4}          {gib(first):>8}  {fit:>22}  "
            f"{gib(need):>7}  {time.perf_counter() - t0:8.1f}", flush=True)

  rng = np.random.default_rng(0)
  x = rng.uniform(size=(a.images,) + shape).astype(np.float32)
  for w in a.run_widths:
    spec = make_spec("vgg16", "pool1", width=w, output="conv")
    keys = np.asarray(engine.seed_keys(0, 1))
    t0 = time.perf_counter()
    out = engine.run_nets(spec, "gaussian:0.015", keys, x, budget=budget,
                          check_memory=True, rescale=True)
    dt = time.perf_counter() - t0
    flop = sum(2.0 * np.prod(c.weight_shape) for c in spec.convs) * \
        a.size * a.size * a.images
    print(f"ran width {w}: 1 net x {a.images} images in {dt:.1f} s "
          f"(compile included, ~{flop / dt / 1e12:.1f} TFLOP/s), output "
          f"{out.shape}, finite {bool(np.isfinite(out).all())}, device peak "
          f"{gib(peak_bytes())} GiB of budget {gib(budget)} GiB", flush=True)


if __name__ == "__main__":
  main()
