"""Section 3's pilot: how many steps a decoder needs to reach its plateau.

Run once, before any Section 3 verdict of the new protocol was looked at,
to choose the cpu preset's per-layer step budgets (docs/section3.md records
the output). It trains, at the cpu preset's settings (64 px crops, batch 8,
Adam at 1e-3 held constant: no decay, so that one run shows every budget),
seed 0 only, on cached features with the ``rms`` feature scale, the
decoders of a few (encoder, layer) pairs, and prints their validation loss
every ``--every`` steps. For a budget ``S`` the convergence rule of
experiments/section3/runs.py compares the validation loss at 0.8 S with
the one at 0.4 S (rate still constant at both); the table gives that ratio for
each candidate budget, so a budget is chosen where the ratio is at least
0.95 with some margin.

It compares no encoders: the verdicts are not computed here.

Usage (about 8 minutes on the 2-core dev machine when idle):
  python benchmarks/section3_pilot.py [--steps 500] [--every 25]
      [--out /tmp/pilot]
  python benchmarks/section3_pilot.py --deep --lr 1e-4 --steps 250
      # the second stage: the Conv5 decoders at the paper's rate
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

PAIRS = (("vgg16", "random", ("conv1", "conv2", "conv5")),
         ("vgg16", "hed", ("conv2", "conv5")),
         ("alexnet_torchvision", "random", ("conv3",)))


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--steps", type=int, default=500)
  p.add_argument("--every", type=int, default=25)
  p.add_argument("--cache", type=int, default=1024)
  p.add_argument("--out", default=None)
  p.add_argument("--lr", type=float, default=1e-3)
  p.add_argument("--deep", action="store_true",
                 help="only the Conv5 decoders (VGG random and HED): the "
                 "second stage, at another --lr")
  a = p.parse_args(argv)
  from randconv.training import data as D
  from randconv.training import features as F
  from randconv.training import train as T
  T.enable_compilation_cache()
  out = Path(a.out or tempfile.mkdtemp(prefix="s3pilot-"))
  data_cfg = D.DataConfig(crop=64, short_side=96, val_samples=128)
  curves = {}
  pairs = PAIRS if not a.deep else (("vgg16", "random", ("conv5",)),
                                    ("vgg16", "hed", ("conv5",)))
  for arch, encoder, layers in pairs:
    pre = "caffe" if arch == "vgg16" else "torchvision"
    base = T.TrainConfig(
        arch=arch, layer=layers[-1], encoder=encoder, steps=a.steps, batch=8,
        lr=a.lr, milestones=(), eval_every=a.every, checkpoint_every=a.steps,
        data=data_cfg, feature_cache=a.cache, feature_scale="rms",
        preprocessing=pre)
    deep = base.spec()
    data = D.load(data_cfg, base.batch)
    caches = F.build_caches(a.cache, base.batch, deep,
                            T.build_encoder(base, deep), data, layers,
                            base.impl)
    for layer in layers:
      cfg = dataclasses.replace(base, layer=layer)
      res = T.train_and_evaluate(cfg, out / f"{arch}-{encoder}-{layer}",
                                 progress=f"{arch} {encoder} {layer}",
                                 cache=caches[layer])
      steps, val = T.eval_curve(res.metrics)
      curves[f"{arch} {encoder} {layer}"] = (
          dict(zip(steps.tolist(), val.tolist(), strict=True)),
          res.summary.get("baseline_val_loss"))
    del caches
  budgets = [s for s in range(2 * a.every, a.steps + 1, a.every)
             if (4 * s) % (10 * a.every) == 0 and (8 * s) % (10 * a.every)
             == 0]
  print("\nvalidation loss every", a.every, "steps (rms scale, lr constant)")
  for name, (val, base_loss) in curves.items():
    print(f"{name}: best constant image {base_loss:.4g}; " + ", ".join(
        f"{s}:{v:.4g}" for s, v in val.items()))
  print("\nval(0.8 S) / val(0.4 S) per budget S (the rule wants >= 0.95)")
  print("run".ljust(34) + "".join(f"{s:>8}" for s in budgets))
  for name, (val, _) in curves.items():
    print(name.ljust(34) + "".join(
        f"{val[int(0.8 * s)] / val[int(0.4 * s)]:8.3f}" for s in budgets))
  print(f"\nruns in {out}")


if __name__ == "__main__":
  np.set_printoptions(precision=4)
  main()
