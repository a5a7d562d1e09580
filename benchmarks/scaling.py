"""Scaling over devices: data-parallel training steps per second and sweep
images x nets per second on 1, 2 and 4 devices of one process.

    python benchmarks/scaling.py [--devices 1 2 4] [--repeats 3] [--json F]

Each device count runs in a fresh process. On a CPU the devices are forced
(``JAX_NUM_CPU_DEVICES``) and share the machine's cores, so no speed-up is
to be expected there: the figures show what splitting costs. On a GPU
machine each count takes that many of its GPUs (a count above the GPUs
there is skipped). docs/distributed.md records the figures.

* training: :func:`randconv.training.train.make_train_step` on the
  :class:`randconv.distributed.Placement` of the devices (the batch split
  over them, params replicated): VGG16 Conv2-DeConv2 at width ``--width``,
  crops of ``--size``, global batch ``--batch``, random uint8 batches
  already on the host (no data loading); steps per second over
  ``--steps`` steps after two warm-up steps;
* sweep: :func:`randconv.engine.run_sharded`, rrVGG Conv1-DeConv1 (pool1,
  docs/design.md §1) at width ``--sweep-width``, ``--nets`` nets x
  ``--images`` images of ``--sweep-size`` px, the nets split over the
  devices; the best of ``--repeats`` timed runs after one warm-up run.
"""

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time


def measure(a) -> dict:
  """The figures of one device count (in this process)."""
  import jax
  import numpy as np

  from randconv import engine
  from randconv.distributed import Placement
  from randconv.spec import make_spec
  from randconv.training import train as T

  devices = jax.devices()[:a.count]
  if len(devices) < a.count:
    return {"devices": a.count, "skipped": f"only {len(devices)} devices"}
  place = Placement(devices)
  place.check_batch(a.batch)
  cfg = T.TrainConfig(layer="conv2", width=a.width or None, batch=a.batch,
                      steps=a.steps)
  spec = cfg.spec()
  enc = T.build_encoder(cfg, spec)
  enc = dataclasses.replace(enc, params=place.replicate(enc.params))
  opt = T.make_optimizer(cfg)
  dec = T.init_decoder(jax.random.PRNGKey(0), spec)
  state = place.replicate(jax.jit(opt.init)(dec))
  dec = place.replicate(dec)
  step = T.make_train_step(spec, enc, opt, cfg.impl, place)
  rng = np.random.default_rng(0)
  batches = [place.batch(rng.integers(0, 256, (a.batch, a.size, a.size, 3),
                                      np.uint8), a.batch) for _ in range(4)]
  for i in range(2):  # compile and warm up
    dec, state, loss = step(dec, state, enc.params, batches[i % 4])
  jax.block_until_ready(loss)
  t0 = time.perf_counter()
  for i in range(a.steps):
    dec, state, loss = step(dec, state, enc.params, batches[i % 4])
  jax.block_until_ready(loss)
  train_sps = a.steps / (time.perf_counter() - t0)

  sweep = make_spec("vgg16", "pool1", width=a.sweep_width)
  keys = engine.seed_keys(0, a.nets)
  x = np.random.default_rng(1).random((a.images, a.sweep_size, a.sweep_size,
                                       3), np.float32)
  times = []
  for _ in range(a.repeats + 1):
    t0 = time.perf_counter()
    engine.run_sharded(sweep, "gaussian:0.015", keys, x, devices=devices,
                       rescale=True)
    times.append(time.perf_counter() - t0)
  best = min(times[1:])
  return {"devices": a.count, "backend": jax.default_backend(),
          "device_kind": devices[0].device_kind,
          "train_steps_per_s": round(train_sps, 3),
          "train_images_per_s": round(train_sps * a.batch, 1),
          "sweep_net_images_per_s": round(a.nets * a.images / best, 1),
          "sweep_seconds": round(best, 3)}


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
  ap.add_argument("--width", type=int, default=32,
                  help="training net's hidden width (0: the paper's)")
  ap.add_argument("--size", type=int, default=32, help="training crop")
  ap.add_argument("--batch", type=int, default=32)
  ap.add_argument("--steps", type=int, default=20)
  ap.add_argument("--sweep-width", type=int, default=64)
  ap.add_argument("--sweep-size", type=int, default=64)
  ap.add_argument("--nets", type=int, default=8)
  ap.add_argument("--images", type=int, default=8)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--json", default=None, help="also write results here")
  ap.add_argument("--count", type=int, default=None,
                  help=argparse.SUPPRESS)  # one device count, in-process
  a = ap.parse_args()
  if a.count is not None:
    print(json.dumps(measure(a)))
    return
  passed = [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items()
            if k not in ("devices", "json", "count")]
  rows = []
  for n in a.devices:
    argv = [sys.executable, __file__, "--count", str(n), *passed]
    env = dict(os.environ, JAX_NUM_CPU_DEVICES=str(n))
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode:
      sys.exit(f"{n} devices failed:\n{done.stderr[-2000:]}")
    rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
  base = next((r for r in rows if "skipped" not in r), None)
  print(f"# {platform.node()}, {os.cpu_count()} cores; training: VGG16 "
        f"Conv2 width {a.width}, {a.size} px, batch {a.batch}; sweep: pool1 "
        f"width {a.sweep_width}, {a.nets} nets x {a.images} images of "
        f"{a.sweep_size} px")
  print(f"{'devices':>7}  {'train steps/s':>13}  {'speed-up':>8}  "
        f"{'sweep img*nets/s':>16}  {'speed-up':>8}")
  for r in rows:
    if "skipped" in r:
      print(f"{r['devices']:>7}  skipped: {r['skipped']}")
      continue
    print(f"{r['devices']:>7}  {r['train_steps_per_s']:>13.2f}  "
          f"{r['train_steps_per_s'] / base['train_steps_per_s']:>8.2f}  "
          f"{r['sweep_net_images_per_s']:>16.1f}  "
          f"{r['sweep_net_images_per_s'] / base['sweep_net_images_per_s']:>8.2f}")
  if base:
    print(f"backend {base['backend']} ({base['device_kind']})")
  if a.json:
    with open(a.json, "w") as f:
      json.dump({"args": {k: v for k, v in vars(a).items() if k != "json"},
                 "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
