"""One Section 3 training step, randconv vs PyTorch: VGG Conv2-DeConv2.

Same work on both sides: a frozen random VGG16 encoder truncated at conv2_2
(ReLU), the mirrored decoder (deconv2_2, deconv2_1, unpool, deconv1_2,
deconv1_1; leaky ReLU 0.2, linear output, zero-initialised biases), the
crop, Caffe's EuclideanLoss 0.5 * sum (y - x)^2 / batch, and Adam (0.9,
0.999) with weight decay 4e-4 added to the kernels' gradient; batch 32,
64x64 images. randconv runs :func:`randconv.training.train.make_train_step`
(one jit-compiled step, the encoder inside it); PyTorch runs what a good
PyTorch user would write: channels_last tensors, the encoder under
``torch.no_grad``, ``torch.optim.Adam`` with weight decay on the kernels'
parameter group, 2 threads, oneDNN convs.

Before timing, both sides start from the same weights (PyTorch gets copies)
and must agree on the loss of the first three steps to 1e-4 (relative).
Then the two alternate, the order swapped every repetition; the summary
takes each side's median step time and prints ``ratio torch/randconv`` per
conv implementation (>= 1.0: randconv is at least as fast).

Usage (under a minute on the 2-core dev machine when idle):
  python benchmarks/train_vs_torch.py [--reps 5] [--steps 3]
      [--impl direct wgrad auto] [--size 64] [--batch 32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def _args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--steps", type=int, default=3, help="steps per timing")
  p.add_argument("--size", type=int, default=64)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--impl", nargs="+", default=["direct", "wgrad"],
                 choices=("direct", "auto", "winograd", "wgrad"))
  return p.parse_args(argv)


def randconv_side(args, impl):
  import jax
  import jax.numpy as jnp

  from randconv.training import train as T
  cfg = T.TrainConfig(arch="vgg16", layer="conv2", lr=1e-4, steps=200_000,
                      conv_impl=impl)
  spec = cfg.spec()
  enc = T.build_encoder(cfg, spec)
  opt = T.make_optimizer(cfg)
  dec = T.init_decoder(jax.random.PRNGKey(2), spec)
  state = {"dec": dec, "opt": jax.jit(opt.init)(dec)}
  step = T.make_train_step(spec, enc, opt, impl)

  def run(batch_u8):
    state["dec"], state["opt"], loss = step(state["dec"], state["opt"],
                                            enc.params, batch_u8)
    return loss

  def sync(x):
    return float(jnp.asarray(x))

  return spec, enc, dec, run, sync


def torch_side(args, spec, enc, dec):
  import torch
  import torch.nn.functional as F

  from randconv.spec import Conv
  torch.set_num_threads(args.threads)
  cl = torch.channels_last

  def t(w):  # HWIO -> OIHW (stride-1 deconvs here are plain convs)
    return torch.from_numpy(np.asarray(w).transpose(3, 2, 0, 1).copy())

  enc_w = [t(enc.params[c.name]["kernel"]).to(memory_format=cl)
           for c in spec.encoder if isinstance(c, Conv)]
  names = [c.name for c in spec.decoder if isinstance(c, Conv)]
  kernels = [torch.nn.Parameter(t(dec[n]["kernel"]).to(memory_format=cl))
             for n in names]
  biases = [torch.nn.Parameter(torch.zeros(dec[n]["bias"].shape[0]))
            for n in names]
  opt = torch.optim.Adam([{"params": kernels, "weight_decay": 4e-4},
                          {"params": biases, "weight_decay": 0.0}],
                         lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
  size = args.size

  def unpool(x):
    n, c, h, w = x.shape
    y = x.new_zeros(n, c, h, 2, w, 2)
    y[:, :, :, 0, :, 0] = x
    return y.reshape(n, c, 2 * h, 2 * w)

  def run(batch_u8, z=None):
    """One step; ``z``: the batch's cached NHWC features (no encoder)."""
    x = torch.from_numpy(batch_u8).permute(0, 3, 1, 2).float() / 255.0
    x = x.contiguous(memory_format=cl)
    if z is not None:
      z = torch.from_numpy(np.asarray(z)).permute(0, 3, 1, 2)
    else:
      with torch.no_grad():
        h = x - x.mean(dim=(2, 3), keepdim=True)
        h = F.relu(F.conv2d(h, enc_w[0], padding=1))
        h = F.relu(F.conv2d(h, enc_w[1], padding=1))
        h = F.max_pool2d(h, 2, 2, ceil_mode=True)
        h = F.relu(F.conv2d(h, enc_w[2], padding=1))
        z = F.relu(F.conv2d(h, enc_w[3], padding=1))
    h = F.leaky_relu(F.conv2d(z, kernels[0], biases[0], padding=1), 0.2)
    h = F.leaky_relu(F.conv2d(h, kernels[1], biases[1], padding=1), 0.2)
    h = unpool(h)[:, :, :size, :size]
    h = F.leaky_relu(F.conv2d(h, kernels[2], biases[2], padding=1), 0.2)
    y = F.conv2d(h, kernels[3], biases[3], padding=1)[:, :, :size, :size]
    loss = 0.5 * ((y - x) ** 2).sum() / x.shape[0]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  return run, lambda loss: float(loss.detach())


def main(argv=None) -> None:
  args = _args(argv)
  os.environ.setdefault("XLA_FLAGS", "")
  import jax
  rng = np.random.default_rng(0)
  batches = [(rng.random((args.batch, args.size, args.size, 3)) * 255
              ).astype(np.uint8) for _ in range(4)]
  print(f"VGG Conv2-DeConv2 train step, batch {args.batch}, "
        f"{args.size}x{args.size}, jax {jax.__version__} "
        f"({jax.devices()[0].device_kind}), torch threads {args.threads}")
  sides = {}
  for impl in args.impl:
    spec, enc, dec, rc_run, rc_sync = randconv_side(args, impl)
    t_run, t_sync = torch_side(args, spec, enc, dec)
    # Same math: the first three losses agree (each side updates its copy).
    for i in range(3):
      a, b = rc_sync(rc_run(batches[i])), t_sync(t_run(batches[i]))
      if abs(a - b) > 1e-4 * abs(b):
        raise SystemExit(f"{impl}: step {i} loss {a} (randconv) vs {b} "
                         "(torch): not the same computation")
    print(f"[{impl}] first three losses agree with PyTorch to 1e-4")
    sides[impl] = (rc_run, rc_sync, t_run, t_sync)

  times = {impl: {"randconv": [], "torch": []} for impl in args.impl}
  for rep in range(args.reps):
    for impl, (rc_run, rc_sync, t_run, t_sync) in sides.items():
      order = [("randconv", rc_run, rc_sync), ("torch", t_run, t_sync)]
      if rep % 2:
        order.reverse()
      for name, run, sync in order:
        start = time.perf_counter()
        for s in range(args.steps):
          loss = run(batches[s % len(batches)])
        sync(loss)
        times[impl][name].append((time.perf_counter() - start) / args.steps)
      r, t = times[impl]["randconv"][-1], times[impl]["torch"][-1]
      print(f"rep {rep} [{impl}] randconv {r:.3f} s/step, torch {t:.3f} "
            f"s/step, ratio {t / r:.2f}", flush=True)
  for impl in args.impl:
    r = statistics.median(times[impl]["randconv"])
    t = statistics.median(times[impl]["torch"])
    print(f"median [{impl}]: randconv {r:.3f} s/step, torch {t:.3f} s/step, "
          f"ratio torch/randconv {t / r:.2f}")


if __name__ == "__main__":
  main()
