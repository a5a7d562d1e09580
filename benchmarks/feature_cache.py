"""Decoder training on cached features: steps/s with and without the cache.

The VGG Conv2-DeConv2 step of benchmarks/train_vs_torch.py (a frozen random
VGG16 encoder to conv2_2, the mirrored decoder, Caffe's EuclideanLoss, Adam
with decay on the kernels), four ways on the same batches:

* randconv through the encoder (:func:`randconv.training.train.
  make_train_step`, what ``randconv train`` runs without the cache);
* randconv on cached features (:func:`randconv.training.features.
  make_cached_train_step`, ``randconv train --feature-cache N``);
* PyTorch through the encoder (under ``torch.no_grad``) and PyTorch on the
  same cached features (train_vs_torch.py's step, 2 threads).

Each pair must agree on the first three losses (randconv cached vs
uncached to 1e-5, PyTorch vs randconv to 1e-4) before anything is timed;
the four then alternate, the order reversed every repetition, and the
summary prints each one's median steps/s. It also times the one-off cost
of the cache (the encoder alone, crops/s).

Usage (about a minute on the 2-core dev machine when idle):
  python benchmarks/feature_cache.py [--size 64] [--batch 8] [--reps 5]
      [--steps 5] [--impl wgrad] [--no-torch]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--steps", type=int, default=5, help="steps per timing")
  p.add_argument("--size", type=int, default=64)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--threads", type=int, default=2, help="PyTorch threads")
  p.add_argument("--impl", default="wgrad",
                 choices=("direct", "auto", "winograd", "wgrad"))
  p.add_argument("--no-torch", action="store_true")
  return p.parse_args(argv)


def _sides(args, batches):
  """{name: (run(i) -> loss, sync(loss) -> float)} for the four steps."""
  import jax
  import jax.numpy as jnp
  import train_vs_torch

  from randconv.policy import ConvPolicy
  from randconv.training import features as F
  from randconv.training import train as T
  spec, enc, dec, rc_run, rc_sync = train_vs_torch.randconv_side(args,
                                                                  args.impl)
  opt = T.make_optimizer(T.TrainConfig(lr=1e-4, steps=200_000))
  cached_step = F.make_cached_train_step(spec, opt, args.impl)
  encode = F.encode_fn(spec, enc, ConvPolicy.named(args.impl))
  feats = [encode(enc.params, b) for b in batches]
  state = {"dec": jax.tree_util.tree_map(jnp.array, dec)}
  state["opt"] = jax.jit(opt.init)(state["dec"])

  def cached(i):
    state["dec"], state["opt"], loss = cached_step(
        state["dec"], state["opt"], (feats[i], jnp.asarray(batches[i])))
    return loss

  sides = {"randconv": (lambda i: rc_run(batches[i]), rc_sync),
           "randconv cached": (cached, rc_sync)}
  if not args.no_torch:
    t_run, t_sync = train_vs_torch.torch_side(args, spec, enc, dec)
    t2_run, t2_sync = train_vs_torch.torch_side(args, spec, enc, dec)
    host = [np.array(z) for z in feats]  # writable, as torch wants
    sides["torch"] = (lambda i: t_run(batches[i]), t_sync)
    sides["torch cached"] = (lambda i: t2_run(batches[i], host[i]), t2_sync)
  return sides, (encode, enc)


def _check(sides) -> None:
  """The first three losses agree (each side updates its own copy)."""
  losses = {name: [sync(run(i)) for i in range(3)]
            for name, (run, sync) in sides.items()}
  ref = np.asarray(losses["randconv"])
  for name, tol in (("randconv cached", 1e-5), ("torch", 1e-4),
                    ("torch cached", 1e-4)):
    if name in losses:
      err = np.max(np.abs(np.asarray(losses[name]) - ref) / np.abs(ref))
      if err > tol:
        raise SystemExit(f"{name}: losses {losses[name]} vs {ref.tolist()} "
                         "(randconv): not the same computation")
  print(f"first three losses {np.round(ref, 3).tolist()}: all agree "
        "(cached to 1e-5, PyTorch to 1e-4)")


def main(argv=None) -> None:
  args = _args(argv)
  import jax
  rng = np.random.default_rng(0)
  batches = [(rng.random((args.batch, args.size, args.size, 3)) * 255
              ).astype(np.uint8) for _ in range(4)]
  print(f"VGG Conv2-DeConv2 train step, batch {args.batch}, {args.size}x"
        f"{args.size}, conv path {args.impl}, jax {jax.__version__} "
        f"({jax.devices()[0].device_kind}), torch threads {args.threads}")
  sides, (encode, enc) = _sides(args, batches)
  _check(sides)
  times = {name: [] for name in sides}
  for rep in range(args.reps):
    order = list(sides.items())
    if rep % 2:
      order.reverse()
    for name, (run, sync) in order:
      start = time.perf_counter()
      for s in range(args.steps):
        loss = run(s % len(batches))
      sync(loss)
      times[name].append((time.perf_counter() - start) / args.steps)
    print(f"rep {rep}: " + ", ".join(f"{n} {times[n][-1]:.3f}"
                                     for n in sides) + " s/step",
          flush=True)
  enc_t = []
  for _ in range(args.reps):
    start = time.perf_counter()
    for b in batches:
      encode(enc.params, b).block_until_ready()
    enc_t.append((time.perf_counter() - start) / len(batches))
  print("median steps/s: " + ", ".join(
      f"{n} {1 / statistics.median(times[n]):.2f}" for n in sides))
  r, c = (statistics.median(times[n]) for n in ("randconv",
                                                 "randconv cached"))
  print(f"cache speed-up (randconv): {r / c:.2f}x; building the cache: "
        f"{args.batch / statistics.median(enc_t):.0f} crops/s (the encoder "
        "alone, once per crop)")


if __name__ == "__main__":
  main()
