"""Seed batching: every strategy and chunking gives the same numbers."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import randconv as rc
from conftest import positive_images
from randconv import metrics, seeds

SPEC = rc.make_spec("vgg16", "pool1", width=4)


def net_fn(key, x):
  y = rc.output_fn(SPEC, "gaussian:0.015")(key, x)
  return {"out": y, **metrics.reconstruction_metrics(x, y)}


@pytest.fixture(scope="module")
def reference():
  x = positive_images(4, 16)
  keys = seeds.seed_keys(0, 4)
  return keys, x, seeds.run_seeds(net_fn, keys, x, strategy="loop")


def rel(a, b):
  return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("strategy,plan,batch", [
    ("vmap", None, None),
    ("vmap", seeds.Plan(seed_chunk=2, image_chunk=2), None),
    ("map", seeds.Plan(seed_chunk=4, image_chunk=2), 2),
    ("shard", None, None),
    ("loop", seeds.Plan(seed_chunk=1, image_chunk=2), None),
])
def test_strategies_agree(reference, strategy, plan, batch):
  keys, x, ref = reference
  got = seeds.run_seeds(net_fn, keys, x, strategy=strategy, plan=plan,
                        batch_size=batch)
  assert got["out"].shape == (4, 4, 16, 16, 3)
  assert rel(got["out"], ref["out"]) < 1e-5
  assert np.abs(got["ssim"] - ref["ssim"]).max() < 1e-5


def test_seed_keys_do_not_depend_on_count():
  a = np.asarray(seeds.seed_keys(3, 6))
  b = np.asarray(seeds.seed_keys(3, 2, start=4))
  np.testing.assert_array_equal(a[4:], b)
  assert len({tuple(k) for k in a}) == 6


def test_plan_respects_budget():
  spec = rc.make_spec("vgg16", "pool1", width=256)
  per_image = seeds.activation_bytes(spec, 64, 64)
  budget = seeds.param_bytes(spec) + 3 * per_image
  plan = seeds.plan_chunks(spec, 8, 10, 64, 64, "loop", budget=budget)
  assert plan == seeds.Plan(seed_chunk=1, image_chunk=3)
  plan = seeds.plan_chunks(spec, 8, 10, 64, 64, "vmap", budget=10 * budget)
  assert plan.seed_chunk * (seeds.param_bytes(spec) + plan.image_chunk
                            * per_image) <= 10 * budget


SHARD_SCRIPT = r"""
import json, sys
import jax, numpy as np
sys.path.insert(0, sys.argv[1])
import test_seeds as t
from conftest import positive_images
from randconv import seeds
x = positive_images(3, 16)
keys = seeds.seed_keys(0, 5)   # 5 seeds over 4 devices: padding is exercised
a = seeds.run_seeds(t.net_fn, keys, x, strategy="shard")
b = seeds.run_seeds(t.net_fn, keys, x, strategy="loop")
print(json.dumps({"devices": jax.device_count(), "rel": t.rel(a["out"], b["out"]),
                  "shape": list(a["out"].shape)}))
"""


def test_shard_on_four_cpu_devices():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  here = os.path.dirname(__file__)
  proc = subprocess.run([sys.executable, "-c", SHARD_SCRIPT, here], env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  res = json.loads(proc.stdout.strip().splitlines()[-1])
  assert res["devices"] == 4
  assert res["shape"] == [5, 3, 16, 16, 3]
  assert res["rel"] < 1e-5
