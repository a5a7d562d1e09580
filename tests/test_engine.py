"""The engine for many nets: every strategy and chunking gives the same
numbers, the draws equal the modules' init, and the memory planner keeps to
its budget."""

import inspect
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import randconv as rc
from conftest import positive_images
from randconv import engine, metrics
from randconv.modules import CNNDCN
from randconv.spec import make_spec

SPEC = rc.make_spec("vgg16", "pool1", width=4)


def net_fn(key, x):
  y = engine.net_fn(SPEC, "gaussian:0.015", rescale=True,
                    policy="direct")(key, x)
  return {"out": y, **metrics.reconstruction_metrics(x, y)}


@pytest.fixture(scope="module")
def reference():
  x = positive_images(4, 16)
  keys = engine.seed_keys(0, 4)
  return keys, x, engine.run_keys(net_fn, keys, x, strategy="loop")


def rel(a, b):
  return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("strategy,plan,batch", [
    ("vmap", None, None),
    ("vmap", engine.Plan(seed_chunk=2, image_chunk=2), None),
    ("map", engine.Plan(seed_chunk=4, image_chunk=2), 2),
    ("shard", None, None),
    ("loop", engine.Plan(seed_chunk=1, image_chunk=2), None),
])
def test_strategies_agree(reference, strategy, plan, batch):
  keys, x, ref = reference
  got = engine.run_keys(net_fn, keys, x, strategy=strategy, plan=plan,
                        batch_size=batch)
  assert got["out"].shape == (4, 4, 16, 16, 3)
  assert rel(got["out"], ref["out"]) < 1e-5
  assert np.abs(got["ssim"] - ref["ssim"]).max() < 1e-5


def test_seed_keys_do_not_depend_on_count():
  a = np.asarray(engine.seed_keys(3, 6))
  b = np.asarray(engine.seed_keys(3, 2, start=4))
  np.testing.assert_array_equal(a[4:], b)
  assert len({tuple(k) for k in a}) == 6


def test_plan_respects_budget():
  spec = rc.make_spec("vgg16", "pool1", width=256)
  per_image = engine.activation_bytes(spec, 64, 64)
  budget = engine.param_bytes(spec) + 3 * per_image
  plan = engine.plan_chunks(spec, 8, 10, 64, 64, "loop", budget=budget)
  assert plan == engine.Plan(seed_chunk=1, image_chunk=3)
  plan = engine.plan_chunks(spec, 8, 10, 64, 64, "vmap", budget=10 * budget)
  assert plan.seed_chunk * (engine.param_bytes(spec) + plan.image_chunk
                            * per_image) <= 10 * budget


def test_map_chunk_grows_only_with_params_drawn_before_the_call():
  # run_nets passes a chunk's params in: one net runs at a time, so the
  # params fill what the images leave. run_keys' fn draws each net itself:
  # a map chunk is batch_size nets.
  spec = rc.make_spec("vgg16", "pool1", width=4)
  act, par = engine.activation_bytes(spec, 16, 16), engine.param_bytes(spec)
  budget = 100 * act
  drawn = engine.plan_chunks(spec, 10**6, 2, 16, 16, "map", budget=budget,
                             params_drawn=True)
  assert drawn == engine.Plan((budget - 2 * act) // par, 2)
  inside = engine.plan_chunks(spec, 10**6, 2, 16, 16, "map", budget=budget,
                              batch_size=3)
  assert inside == engine.Plan(3, 2)


SHARD_SCRIPT = r"""
import json, sys
import jax, numpy as np
sys.path.insert(0, sys.argv[1])
import test_engine as t
from conftest import positive_images
from randconv import engine
x = positive_images(3, 16)
keys = engine.seed_keys(0, 5)   # 5 seeds over 4 devices: padding is exercised
a = engine.run_keys(t.net_fn, keys, x, strategy="shard", devices=jax.devices())
b = engine.run_keys(t.net_fn, keys, x, strategy="loop")
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


@pytest.mark.parametrize("strategy", ["loop", "map", "vmap"])
def test_run_nets_strategies_agree_with_run_keys(reference, strategy):
  keys, x, ref = reference
  got = engine.run_nets(SPEC, "gaussian:0.015", keys, x, strategy=strategy,
                        policy="direct", rescale=True,
                        chunks=engine.Plan(3, 3))
  assert got.shape == (4, 4, 16, 16, 3)
  assert rel(got, ref["out"]) < 1e-5


def test_one_default_for_rescale_and_policy():
  # CNNDCN, net_fn and run_nets: no rescaling and the backend's policy
  # unless asked, so with no arguments the module and the engine give the
  # same net's output.
  for fn in (engine.net_fn, engine.run_nets):
    params = inspect.signature(fn).parameters
    assert params["rescale"].default is False, fn
    assert params["policy"].default == "auto", fn
  fields = CNNDCN.__dataclass_fields__
  assert fields["rescale"].default is False
  assert fields["policy"].default == "auto"
  x = positive_images(1, 16)
  keys = engine.seed_keys(0, 1)
  model = CNNDCN(SPEC)
  want = model.apply(model.init(keys[0], method="draw"), x)
  got = engine.run_nets(SPEC, "gaussian:0.015", keys, x, strategy="loop")
  assert rel(got[0], want) < 1e-5  # the jitted sampler fuses the scale


def test_unknown_strategy_is_a_value_error():
  with pytest.raises(ValueError, match="net strategy"):
    engine.run_nets(SPEC, "gaussian", engine.seed_keys(0, 1),
                    np.zeros((1, 16, 16, 3), np.float32), strategy="fast")


def test_memory_check_shrinks_chunks_and_keeps_the_numbers(rng):
  # The compiled program must hold at least its own input and output.
  spec = make_spec("vgg16", "pool1", width=8, output="conv")
  x = rng.uniform(size=(6, 16, 16, 3)).astype(np.float32)
  keys = engine.seed_keys(3, 4)
  fn = engine.compiled(spec, None, "direct", True, "vmap")
  floor = 2 * 4 * 6 * 16 * 16 * 3 * 4  # images in + 4 nets' outputs out
  whole = engine.program_bytes(fn, engine.param_shapes(spec, 4),
                              jax.ShapeDtypeStruct(x.shape, np.float32))
  assert whole > floor
  budget = whole // 3
  fitted, need = engine.fit_chunks(spec, None, "direct", True, "vmap",
                                  x.shape[1:], engine.Plan(4, 6), budget)
  assert need <= budget
  assert fitted.seed_chunk * fitted.image_chunk < 4 * 6
  ref = engine.run_nets(spec, "gaussian:0.015", keys, x,
                            strategy="vmap", policy="direct", rescale=True,
                            chunks=engine.Plan(4, 6))
  got = engine.run_nets(spec, "gaussian:0.015", keys, x,
                            strategy="vmap", policy="direct", rescale=True,
                            budget=budget, check_memory=True)
  assert rel(got, ref) < 2e-5
  with pytest.raises(MemoryError, match="memory budget"):
    engine.fit_chunks(spec, None, "direct", True, "vmap", x.shape[1:],
                     engine.Plan(4, 6), floor // 100)
  # A cost that never fits within the tries is an error, not a plan.
  def stubborn(fn, params, images):
    return 96 + images.shape[0]
  with pytest.raises(MemoryError, match="nets on"):
    engine.fit_chunks(spec, None, "direct", True, "vmap", x.shape[1:],
                     engine.Plan(100, 100), 96, stubborn)


def test_memory_budget_from_the_environment(monkeypatch):
  monkeypatch.setenv(engine.BUDGET_ENV, "1.5")
  assert engine.default_budget() == 3 << 29
  monkeypatch.setenv(engine.BUDGET_ENV, "lots")
  with pytest.raises(ValueError, match=engine.BUDGET_ENV):
    engine.default_budget()


def test_pick_strategy_follows_the_table():
  small = make_spec("vgg16", "pool1", width=4)
  big = make_spec("vgg16", "pool1", width=1024)
  cheap = engine.NET_STRATEGY["cpu"][0][1]
  assert engine.pick_strategy(small, 64, 64, backend="cpu") == cheap
  assert engine.pick_strategy(big, 64, 64, backend="cpu") == "loop"
  assert engine.pick_strategy(big, 64, 64, backend="gpu") == "vmap"


def test_draw_equals_the_modules_init():
  # jit fuses the scale into the sampler: equal up to float rounding. MSRA
  # (a fan-in initializer): every layer's scale is its own.
  dist = "msra"
  spec = make_spec("vgg16", "pool1", width=4)
  keys = engine.seed_keys(2, 3)
  many = engine.draw(spec, dist, keys, many=True)
  init = rc.parse_distribution(dist).initializer()
  for i in range(3):
    ref = CNNDCN(spec, init).init(keys[i], method="draw")["params"]
    one = engine.draw(spec, dist, keys[i:i + 1])
    assert set(one) == set(ref) == {c.name for c in spec.convs}
    for name in ref:
      np.testing.assert_allclose(one[name]["kernel"], ref[name]["kernel"],
                                 rtol=1e-6)
      np.testing.assert_allclose(many[name]["kernel"][i],
                                 ref[name]["kernel"], rtol=1e-6)
