"""The Conv1-DeConv1 width sweep (Section 4.2) in randconv vs PyTorch.

Same work on both sides: rrVGG truncated at pool1 (conv1_1, conv1_2, pool1,
unpool1, deconv1_2, deconv1_1, crop), 64x64 images, 8 nets x 8 images per
width, widths 4, 16, 64, 256, 1024, the same Gaussian(0, 0.015) weights
(randconv draws them; PyTorch gets copies). randconv runs its experiment path
(:func:`randconv.engine.run_nets`: the CPU's conv policy, the engine's
strategy per width, RMS rescaling after each conv); PyTorch runs what a
good PyTorch user would write: a loop over nets, channels_last tensors,
``torch.inference_mode``, 2 threads, oneDNN convs, no rescaling.

The two alternate (order swapped every repetition); each line prints both
times, the ratio torch/randconv, and randconv's GFLOP/s against a float32
4096x4096 matmul measured in this run (``jnp.dot``). The summary takes each
side's best time per width; the last line is ``total ratio torch/randconv``
over the whole sweep. Outputs are checked against each other first (after
scaling each to unit RMS, since randconv rescales).

Usage (about 4 minutes on the 2-core dev machine when idle):
  python benchmarks/sweep_vs_torch.py [--reps 3] [--impl auto|direct|winograd]
      [--strategy auto|loop|map|vmap] [--widths 4 16 64 256 1024]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def _args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--widths", type=int, nargs="+",
                 default=[4, 16, 64, 256, 1024])
  p.add_argument("--nets", type=int, default=8)
  p.add_argument("--images", type=int, default=8)
  p.add_argument("--size", type=int, default=64)
  p.add_argument("--reps", type=int, default=3)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--impl", default="auto",
                 choices=("auto", "direct", "winograd"))
  p.add_argument("--strategy", default="auto",
                 choices=("auto", "loop", "map", "vmap"))
  p.add_argument("--no-keep-heap", action="store_true",
                 help="leave glibc's malloc defaults (mmap per big buffer)")
  return p.parse_args(argv)


def torch_sweep(torch, weights, x, image_hw):
  """One width: every net in turn on the batch ``x`` (NCHW channels_last)."""
  F = torch.nn.functional
  h, w = image_hw
  outs = []
  with torch.inference_mode():
    for w11, w12, d12, d11 in weights:
      a = F.relu(F.conv2d(x, w11, padding=1))
      a = F.relu(F.conv2d(a, w12, padding=1))
      p = F.max_pool2d(a, 2, 2, ceil_mode=True)
      n, c, ph, pw = p.shape
      # NHWC storage seen as NCHW: a channels_last zero map.
      up = torch.zeros((n, 2 * ph, 2 * pw, c), dtype=p.dtype).permute(
          0, 3, 1, 2)
      up[:, :, ::2, ::2] = p
      up = up[:, :, :h, :w]
      a = F.relu(F.conv2d(up, d12, padding=1))
      outs.append(F.conv2d(a, d11, padding=1)[:, :, :h, :w])
  return outs


def main(argv=None) -> None:
  a = _args(argv)
  import jax
  import jax.numpy as jnp
  import torch

  from randconv import engine, images
  from randconv.distributions import parse_distribution
  from randconv.spec import make_spec, conv_flops

  if not a.no_keep_heap:
    engine.keep_freed_memory()  # for both sides: they share the process
  torch.set_num_threads(a.threads)
  names = images.photo_names()
  x = images.load_batch([names[i % len(names)] for i in range(a.images)],
                        a.size)
  xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).contiguous(
      memory_format=torch.channels_last)
  keys = engine.seed_keys(0, a.nets)
  dist = parse_distribution("gaussian:0.015")

  def best(f, reps=3):
    f()
    ts = []
    for _ in range(reps):
      t = time.perf_counter()
      f()
      ts.append(time.perf_counter() - t)
    return min(ts)

  m = jnp.asarray(np.random.default_rng(0).standard_normal((4096, 4096),
                                                           np.float32))
  mm = jax.jit(lambda u: jnp.dot(u, u))
  peak = 2 * 4096 ** 3 / best(lambda: mm(m).block_until_ready()) / 1e9
  mt = torch.from_numpy(np.array(m))
  with torch.inference_mode():
    peak_t = 2 * 4096 ** 3 / best(lambda: mt @ mt) / 1e9
  print(f"# {jax.devices()[0].device_kind}, {os.cpu_count()} cpus, jax "
        f"{jax.__version__}, torch {torch.__version__} ({a.threads} threads)"
        f"; float32 4096 matmul: jax {peak:.0f} GFLOP/s, torch "
        f"{peak_t:.0f} GFLOP/s; impl {a.impl}, strategy {a.strategy}")
  sys.stdout.flush()

  setups = {}
  for width in a.widths:
    spec = make_spec("vgg16", "pool1", width=width)
    conv_names = [c.name for c in spec.convs]
    tw = []
    for i in range(a.nets):
      p = engine.draw(spec, dist, keys[i:i + 1])
      tw.append([torch.from_numpy(
          np.asarray(p[n]["kernel"]).transpose(3, 2, 0, 1).copy()).contiguous(
              memory_format=torch.channels_last) for n in conv_names])
    strategy = (engine.pick_strategy(spec, a.size, a.size)
                if a.strategy == "auto" else a.strategy)

    def run_rc(spec=spec, strategy=strategy):
      return engine.run_nets(spec, dist, keys, x, policy=a.impl,
                             strategy=strategy, rescale=True)

    def run_torch(tw=tw):
      return torch_sweep(torch, tw, xt, (a.size, a.size))

    # Check: the same nets give the same pictures (up to the RMS scale).
    rc = run_rc()
    tr = np.stack([o.permute(0, 2, 3, 1).numpy() for o in run_torch()])

    def unit(v):
      return v / np.sqrt(np.mean(v ** 2, axis=(2, 3, 4), keepdims=True))

    err = np.max(np.abs(unit(rc) - unit(tr)))
    flops = conv_flops(spec, a.size, a.size) * a.nets * a.images
    setups[width] = (run_rc, run_torch, flops, strategy)
    print(f"# width {width:>5}: {flops / 1e9:8.1f} GFLOP per sweep, "
          f"strategy {strategy}, max |randconv - torch| {err:.1e} (unit RMS)")
    if not err < 1e-3:
      raise SystemExit(f"width {width}: outputs differ ({err:.2e})")
  sys.stdout.flush()

  best_t = {w: np.inf for w in a.widths}
  best_r = {w: np.inf for w in a.widths}
  for rep in range(a.reps):
    for width in a.widths:
      run_rc, run_torch, flops, _ = setups[width]
      order = [("torch", run_torch), ("randconv", run_rc)]
      if rep % 2:
        order.reverse()
      t = {}
      for name, f in order:
        start = time.perf_counter()
        f()
        t[name] = time.perf_counter() - start
      best_t[width] = min(best_t[width], t["torch"])
      best_r[width] = min(best_r[width], t["randconv"])
      gf = flops / t["randconv"] / 1e9
      print(f"rep {rep} width {width:>5}: torch {t['torch']:8.3f} s  "
            f"randconv {t['randconv']:8.3f} s  ratio "
            f"{t['torch'] / t['randconv']:5.2f}  randconv {gf:6.1f} GFLOP/s "
            f"({100 * gf / peak:.0f}% of matmul)", flush=True)
  print("# best of reps:")
  for width in a.widths:
    flops = setups[width][2]
    print(f"width {width:>5}: torch {best_t[width]:8.3f} s ("
          f"{flops / best_t[width] / 1e9:6.1f} GFLOP/s)  randconv "
          f"{best_r[width]:8.3f} s ({flops / best_r[width] / 1e9:6.1f} "
          f"GFLOP/s)  ratio {best_t[width] / best_r[width]:5.2f}")
  total = sum(best_t.values()) / sum(best_r.values())
  print(f"total ratio torch/randconv = {total:.2f}")


if __name__ == "__main__":
  main()
