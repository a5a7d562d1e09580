"""Seed-batching benchmark: images x nets per second of each strategy on
rrVGG Conv1-DeConv1 (VGG16 truncated at pool1, docs/design.md §1) at 64x64, widths
16, 64 and 256, 8 seeds x 8 images. The fastest strategy per backend is
randconv.seeds.DEFAULT_STRATEGY; the README records the figures.

    python benchmarks/seeds.py [--widths 16 64 256] [--repeats 3] [--json F]

Each figure is the best of ``--repeats`` timed runs after one warm-up run
(which compiles). The GFLOP/s column counts the convs' multiply-adds x 2.
"""

import argparse
import json
import platform
import time

import jax
import numpy as np

import randconv as rc
from randconv import seeds
from randconv.images import load_batch, photo_names
from randconv.spec import conv_flops


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--widths", type=int, nargs="+", default=[16, 64, 256])
  ap.add_argument("--strategies", nargs="+",
                  default=["loop", "vmap", "map", "map2", "shard"])
  ap.add_argument("--seeds", type=int, default=8)
  ap.add_argument("--images", type=int, default=8)
  ap.add_argument("--size", type=int, default=64)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--json", default=None, help="also write results here")
  a = ap.parse_args()

  names = (photo_names() * 2)[:a.images]
  x = load_batch(names, a.size)
  keys = seeds.seed_keys(0, a.seeds)
  backend = jax.default_backend()
  print(f"backend {backend} ({jax.devices()[0].device_kind}, "
        f"{jax.device_count()} device(s)), {platform.processor() or platform.machine()}, "
        f"jax {jax.__version__}; {a.seeds} nets x {a.images} images at "
        f"{a.size}x{a.size}")
  rows = []
  for width in a.widths:
    spec = rc.make_spec("vgg16", "pool1", width=width)
    fn = rc.output_fn(spec, "gaussian:0.015")
    flop = conv_flops(spec, a.size, a.size) * a.seeds * a.images
    ref = None
    for strategy in a.strategies:
      name, batch = (("map", 2) if strategy == "map2" else (strategy, None))
      run = lambda: seeds.run_seeds(fn, keys, x, strategy=name,
                                    batch_size=batch)
      out = run()
      if ref is None:
        ref = out
      err = float(np.abs(out - ref).max() / np.abs(ref).max())
      best = float("inf")
      for _ in range(a.repeats):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
      rate = a.seeds * a.images / best
      rows.append({"width": width, "strategy": strategy, "seconds": best,
                   "images_x_nets_per_s": rate, "gflops": flop / best / 1e9,
                   "rel_err_vs_first": err})
      print(f"width {width:>5}  {strategy:<6} {best:8.3f} s  "
            f"{rate:9.1f} images x nets/s  {flop / best / 1e9:7.1f} GFLOP/s  "
            f"(rel. diff {err:.1e})", flush=True)
    fastest = min((r for r in rows if r["width"] == width),
                  key=lambda r: r["seconds"])
    print(f"width {width:>5}  fastest: {fastest['strategy']}", flush=True)
  print(f"default strategy on {backend}: {seeds.default_strategy(backend)}")
  if a.json:
    with open(a.json, "w") as f:
      json.dump({"backend": backend, "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
