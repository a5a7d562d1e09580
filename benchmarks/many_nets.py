"""Many-nets benchmark: images x nets per second of each strategy of
:func:`randconv.engine.run_nets` on rrVGG Conv1-DeConv1 (VGG16 truncated at
pool1, docs/design.md §1) at 64x64, 8 nets x 8 images, the backend's conv
policy. For each width it prints the fastest strategy and the one the
engine's table picks (:data:`randconv.engine.NET_STRATEGY`), and whether
they agree; docs/performance.md records the figures.

    python benchmarks/many_nets.py [--widths 4 16 64 256] [--repeats 5]
        [--strategies loop map vmap] [--json F]

Each figure is the best of ``--repeats`` timed runs after one warm-up run
(which compiles). The GFLOP/s column counts the direct convs' multiply-adds
x 2. Weights are drawn inside every timed run, as in the experiments.
"""

import argparse
import json
import platform
import time

import jax
import numpy as np

from randconv import engine
from randconv.images import load_batch, photo_names
from randconv.spec import conv_flops, make_spec


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--widths", type=int, nargs="+", default=[4, 16, 64, 256])
  ap.add_argument("--strategies", nargs="+", default=[
      s for s in engine.NET_STRATEGIES if s != "shard"],
                  choices=engine.NET_STRATEGIES,
                  help="shard: the nets split over the devices "
                       "(benchmarks/scaling.py measures it)")
  ap.add_argument("--nets", type=int, default=8)
  ap.add_argument("--images", type=int, default=8)
  ap.add_argument("--size", type=int, default=64)
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--json", default=None, help="also write results here")
  a = ap.parse_args()

  engine.keep_freed_memory()
  names = photo_names()
  x = load_batch([names[i % len(names)] for i in range(a.images)], a.size)
  keys = engine.seed_keys(0, a.nets)
  backend = jax.default_backend()
  print(f"backend {backend} ({jax.devices()[0].device_kind}, "
        f"{jax.device_count()} device(s)), "
        f"{platform.processor() or platform.machine()}, jax {jax.__version__};"
        f" {a.nets} nets x {a.images} images at {a.size}x{a.size}")
  rows, agree = [], []
  for width in a.widths:
    spec = make_spec("vgg16", "pool1", width=width)
    flop = conv_flops(spec, a.size, a.size) * a.nets * a.images
    ref = None
    for strategy in a.strategies:
      def run(strategy=strategy):
        return engine.run_nets(spec, "gaussian:0.015", keys, x,
                               strategy=strategy, rescale=True)
      out = run()
      ref = out if ref is None else ref
      err = float(np.abs(out - ref).max() / np.abs(ref).max())
      best = float("inf")
      for _ in range(a.repeats):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
      rate = a.nets * a.images / best
      rows.append({"width": width, "strategy": strategy, "seconds": best,
                   "images_x_nets_per_s": rate, "gflops": flop / best / 1e9,
                   "rel_err_vs_first": err})
      print(f"width {width:>5}  {strategy:<6} {best:8.4f} s  "
            f"{rate:9.1f} images x nets/s  {flop / best / 1e9:7.1f} GFLOP/s  "
            f"(rel. diff {err:.1e})", flush=True)
    mine = [r for r in rows if r["width"] == width]
    fastest = min(mine, key=lambda r: r["seconds"])
    picked = engine.pick_strategy(spec, a.size, a.size, backend)
    agree.append(picked == fastest["strategy"])
    print(f"width {width:>5}  fastest: {fastest['strategy']}, the engine "
          f"picks: {picked}", flush=True)
  print(f"the default is the fastest at {sum(agree)} of {len(agree)} widths")
  if a.json:
    with open(a.json, "w") as f:
      json.dump({"backend": backend, "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
