"""Float32 range check (docs/design.md §4): every arch without LRN, every ConvK, width
2048, sigma 1e-3 and 1, with ``rescale=True``: every layer's output finite
and not all zero. Prints one line per net and ``all finite: True/False``.

    python benchmarks/float_range.py [--width 2048] [--size 16]
"""

import argparse
import time

import jax
import numpy as np

import randconv as rc
from randconv.images import load_batch


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--width", type=int, default=2048)
  ap.add_argument("--size", type=int, default=32)
  ap.add_argument("--sigmas", type=float, nargs="+", default=[1e-3, 1.0])
  a = ap.parse_args()
  ok_all = True
  for arch in ("vgg16", "alexnet_torchvision"):
    for k in range(1, 6):
      spec = rc.make_spec(arch, f"conv{k}", width=a.width)
      size = max(a.size, spec.min_size())
      x = load_batch(["chelsea"], size)

      @jax.jit
      def f(key, x, spec=spec):
        unit = rc.init(key, spec, "gaussian:1")
        return [rc.apply(jax.tree_util.tree_map(lambda w: s * w, unit), spec,
                         x, rescale=True)[1] for s in a.sigmas]

      t = time.time()
      outs = jax.device_get(f(jax.random.PRNGKey(0), x))
      for sigma, feats in zip(a.sigmas, outs):
        ok = all(np.all(np.isfinite(v)) and np.abs(v).max() > 0
                 for v in feats.values())
        ok_all &= ok
        print(f"{arch:<20} conv{k} width {a.width} sigma {sigma:g} "
              f"size {size}: {len(feats)} layers finite and nonzero: {ok} "
              f"({time.time() - t:.1f} s)", flush=True)
  print(f"all finite: {ok_all}")


if __name__ == "__main__":
  main()
