"""Checks T1-T6 at small sizes (T7: test_theory_gp.py): the identities and
bounds against Monte Carlo, the finite-width sampler against the library's
network, and a wrong limit that the checks must reject."""

import dataclasses
import json
import math

import jax
import numpy as np
import pytest

from randconv import engine
from randconv.deadline import Deadline
from randconv.rundir import WorkdirError
from randconv.spec import make_spec
from theory_checks import (
  bounds,
  checks,
  common,
  depth,
  limits,
  routes,
  sweep,
  two_layer,
)
from theory_checks import montecarlo as mc


def positive(size, seed=0, channels=3):
  r = np.random.default_rng(seed)
  return r.uniform(0.05, 1.0, (size, size, channels)).astype(np.float32)


def smooth(size, seed=0):
  """A positive image with structure (a few sinusoids plus noise)."""
  r = np.random.default_rng(seed)
  y, x = np.mgrid[0:size, 0:size] / size
  img = np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (r.uniform(1, 3) * x +
                                                  r.uniform(1, 3) * y))
                  for _ in range(3)], -1)
  return np.clip(img + 0.05 * r.standard_normal(img.shape), 0.01,
                 1).astype(np.float32)


# --------------------------------------------------------------------------
# T3: Theorem 5.2

def two_layer_outputs(x, width, n_seeds, seed=0):
  spec = make_spec("vgg16", "conv1_1", output="mean", width=width)
  net = engine.net_fn(spec, "gaussian:1.0", policy="direct")
  return engine.run_keys(lambda k, im: net(k, im)[..., 0],
                         engine.seed_keys(seed, n_seeds), x, strategy="loop")


@pytest.mark.parametrize("width", [4, 32])
def test_t3_identity_and_markov_bound(width):
  """N E||y - y_hat||^2 / ||y_hat||^2 = pi - 1 exactly at every N; a limit
  with a wrong constant fails by many standard errors."""
  x = np.stack([positive(10, 1), smooth(10, 2)])
  n_seeds = 400
  out = two_layer_outputs(x, width, n_seeds)
  y_hat = np.stack([limits.energy_limit(make_spec(
      "vgg16", "conv1_1", output="mean"), xi) for xi in x])
  st = two_layer.two_layer_stats(out, y_hat)
  v = width * st["rel_err"].mean(axis=1)          # per net, over images
  se = v.std(ddof=1) / math.sqrt(n_seeds)
  assert abs(v.mean() - (math.pi - 1)) < 3.5 * se
  for delta in (0.1, 0.05, 0.01):
    assert np.all(np.quantile(st["sin"], 1 - delta, axis=0)
                  <= math.sqrt((math.pi - 1) / (width * delta)))
  # sqrt(m2) = 1/sqrt(2) in place of c1 = 1/sqrt(2 pi): the identity fails.
  wrong = two_layer.two_layer_stats(out, y_hat * math.sqrt(math.pi))
  w = width * wrong["rel_err"].mean(axis=1)
  assert abs(w.mean() - (math.pi - 1)) > 10 * w.std(ddof=1) / math.sqrt(
      n_seeds)


# --------------------------------------------------------------------------
# T5: Theorem 5.4

@pytest.mark.parametrize("seed", range(6))
def test_t5_bounds_on_random_positive_images(seed):
  r = np.random.default_rng(seed)
  size = int(r.integers(7, 24))
  x = r.uniform(0, 1, (size, size)) ** r.uniform(0.3, 3)  # varied contrast
  for k in (1, 3, 5, 7, 9):
    b = bounds.t5_bounds(x, k)
    assert b["cos"] >= b["middle"] - 1e-12
    assert b["middle"] >= b["lower"] - 1e-12
    if k == 1:  # y_hat = c1 x: no angle, no Delta
      assert b["cos"] == pytest.approx(1.0) and b["lower"] == \
          pytest.approx(1.0)


def test_t5_bound_is_violated_without_positivity():
  # The bound needs x >= 0 (Cauchy-Schwarz on the patch sums): a signed
  # image breaks the middle inequality, so the check can fail.
  x = np.tile([[1.0, -1.0], [-1.0, 1.0]], (6, 6))
  b = bounds.t5_bounds(x, 3)
  assert b["cos"] < b["middle"]


# --------------------------------------------------------------------------
# The finite-width sampler

def test_sampler_and_library_agree_in_distribution():
  """At width 64 on 12x12 the sampler draws conv1_2 and deconv1_2 from
  their Gram matrices; the library convolves. Their angles to the L2 limit
  agree within Monte Carlo error, for L2 and for max pooling (T6)."""
  x = np.stack([smooth(12, 0), positive(12, 1)])
  lim = np.stack([limits.energy_limit(make_spec(
      "vgg16", "pool1", output="mean", pooling="l2"), xi) for xi in x])
  for pooling in ("l2", "max"):
    spec = make_spec("vgg16", "pool1", output="mean", pooling=pooling,
                     width=64)
    a = mc.angles_to(mc.draw(mc.sampler_fn(spec, 12, 12), x, 24), lim)
    b = mc.angles_to(mc.draw(mc.library_fn(spec), x, 24, seed=1), lim)
    se = np.sqrt(a.var(0, ddof=1) / 24 + b.var(0, ddof=1) / 24)
    assert np.all(np.abs(a.mean(0) - b.mean(0)) < 4 * se), pooling


def test_sampler_exact_scale():
  """With L2 pooling E[q_l] equals the limit energy at every layer, so
  E||y||^2 = (1 + (pi - 1) / N) ||y_hat||^2 exactly, at any depth."""
  x = smooth(12, 3)[None]
  width, n = 64, 40
  spec = make_spec("vgg16", "conv2", output="mean", pooling="l2",
                   width=width)
  lim = limits.energy_limit(make_spec("vgg16", "conv2", output="mean",
                                      pooling="l2"), x[0])
  out = mc.draw(mc.sampler_fn(spec, 12, 12), x, n)[:, 0]
  r = np.sum(out ** 2, axis=(1, 2)) / np.sum(lim ** 2)
  assert abs(r.mean() - (1 + (math.pi - 1) / width)) < 3.5 * r.std(
      ddof=1) / math.sqrt(n)


def test_every_depth_outputs_are_the_shallow_networks():
  """Output l of the depth-D stack sampler is the depth-(l + 2) network:
  same draws, same values."""
  x = smooth(10, 4)[None]
  deep = mc.sampler_fn(depth.stack_spec(5, 48), 10, 10, every_depth=True)
  key = engine.seed_keys(0, 1)[0]
  all_depths = np.asarray(jax.jit(deep)(key, x))[0]        # [4, H, W]
  for d in (2, 5):
    shallow = mc.sampler_fn(depth.stack_spec(d, 48), 10, 10)
    y = np.asarray(jax.jit(shallow)(key, x))[0]
    np.testing.assert_allclose(all_depths[d - 2], y, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# A wrong limit fails the checks

def no_route_count_limit(spec, x):
  """The limit with every route count n_ij replaced by 1 inside the
  receptive field: the mistake the route counts exist to prevent."""
  q0 = limits.input_energy(x)
  n, c = routes.route_counts(spec, *q0.shape)
  return c * np.sqrt((n > 0).astype(float) @ q0.ravel()).reshape(q0.shape)


def test_dropping_route_counts_fails_the_convergence_check():
  x = smooth(12, 5)[None]
  spec0 = make_spec("vgg16", "pool1", output="mean", pooling="l2")
  right = limits.energy_limit(spec0, x[0])[None]
  wrong = no_route_count_limit(spec0, x[0])[None]
  assert limits.angle(right, wrong) > 0.05
  outs = {n: mc.draw(mc.sampler_fn(make_spec(
      "vgg16", "pool1", output="mean", pooling="l2", width=n), 12, 12), x, 8)
      for n in (64, 256, 1024)}
  good = common.fit_slopes({n: mc.angles_to(o, right)
                            for n, o in outs.items()}, 64)
  bad = common.fit_slopes({n: mc.angles_to(o, wrong)
                           for n, o in outs.items()}, 64)
  assert common.convergence_holds(good)
  assert not common.convergence_holds(bad)


# --------------------------------------------------------------------------
# Plumbing: resuming, the registry, the CLI

def test_width_sweep_resumes_and_stops_at_the_deadline(tmp_path):
  calls = []

  def make(n):
    calls.append(n)
    return lambda key, im: im[..., 0] * (1 + 0.1 * jax.random.normal(
        key, im.shape[:-1]))

  x = positive(6)[None]
  lim = x[..., 0]
  log = mc.open_log(tmp_path, {"a": 1})
  first = mc.width_sweep(log, make, lim, x, [2, 4], lambda n: 3)
  log = mc.open_log(tmp_path, {"a": 1}, Deadline.after(0))
  with pytest.raises(mc.OutOfTime, match="width 8"):
    mc.width_sweep(log, make, lim, x, [2, 4, 8], lambda n: 3)
  log = mc.open_log(tmp_path, {"a": 1})
  again = mc.width_sweep(log, make, lim, x, [2, 4, 8], lambda n: 3)
  assert calls == [2, 4, 8]
  np.testing.assert_array_equal(first[4], again[4])
  # Another configuration is refused, naming the field; nothing is lost.
  with pytest.raises(WorkdirError, match=r"\(a differ\)"):
    mc.open_log(tmp_path, {"a": 2})
  assert len(mc.open_log(tmp_path, {"a": 1}).records) == 3


def test_a_check_out_of_time_is_partial(tmp_path):
  from randconv.repro.registry import experiments
  exp = experiments()["theory_t3"]
  cfg = exp.configure("quick", None)
  assert cfg == checks.config_for("T3", "quick") and cfg.preset == "quick"
  [r] = exp.run(cfg, tmp_path, Deadline.after(0))
  assert r.status == "partial" and r.holds is None
  assert "time budget" in r.reason


def test_presets_are_overrides_of_one_config():
  assert checks.config_for("T1", "cpu") == sweep.Preset()
  quick = checks.config_for("T4", "quick")
  assert quick.t4_widths == (64, 256, 512, 1024, 2048)
  assert quick.t4_depth == sweep.Preset().t4_depth
  assert checks.config_for("T1", "paper").seeds_for(4) == 50
  with pytest.raises(ValueError, match="unknown preset 'tiny'"):
    checks.config_for("T1", "tiny")


def test_limit_command(tmp_path, capsys):
  from randconv.plotting import save_png
  from randconv.repro.cli import main
  img = tmp_path / "img.png"
  save_png(img, smooth(40, 6))
  assert main(["limit", str(img), "--layer", "conv2", "--size", "32",
               "--out", str(tmp_path / "o"), "--json"]) == 0
  payload = json.loads(capsys.readouterr().out)
  y = np.load(tmp_path / "o" / "limit.npy")
  assert y.shape == (32, 32) and y.dtype == np.float32
  assert 0 < payload["angle_to_grey_input"] < math.pi / 2
  # limit.png is a figure: the input, its grey version and the limit side
  # by side (a bare limit image would be square), with its caption.
  from PIL import Image

  from randconv.plotting import caption_of
  with Image.open(tmp_path / "o" / "limit.png") as im:
    w, h = im.size
  assert w >= 2 * h and h > 32, (w, h)
  caption = caption_of(tmp_path / "o" / "limit.png")
  assert caption.startswith(f"The input {img}, its grey version and the "
                            "infinite-width limit image")
  assert f"{payload['angle_to_grey_input']:.3f} rad" in caption
  # AlexNet has no channel-mean net (its output deconv has stride 4).
  assert main(["limit", str(img), "--arch", "alexnet", "--size", "67",
               "--out", str(tmp_path / "p")]) == 2
  assert "randconv: error" in capsys.readouterr().err


def test_sampler_threefry_is_exact_under_vmap():
  """Off-CPU the seeds are vmapped; the threefry sampler then gives the
  loop's numbers (the rbg one, used in CPU loops, would not)."""
  x = np.stack([smooth(10, 8), positive(10, 9)])
  spec = make_spec("vgg16", "pool1", output="mean", pooling="avg", width=16)
  fn = mc.sampler_fn(spec, 10, 10, prng="threefry")
  a = mc.draw(fn, x, 3, strategy="loop")
  b = mc.draw(fn, x, 3, strategy="vmap", spec=spec)
  np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(a).max())


KILLED_T3 = """
import dataclasses, sys
from theory_checks import checks, two_layer
cfg = dataclasses.replace(checks.config_for("T3", "quick"), **{fields!r})
two_layer.t3(cfg, sys.argv[1])
"""


def test_killed_check_resumes_to_the_same_numbers(tmp_path):
  """A real SIGKILL of T3 after its first width; the rerun keeps what was
  written, drops a half-written line and ends with the uninterrupted run's
  records and verdict."""
  import sys

  from conftest import has_lines, kill_when
  fields = {"t3_widths": (4, 16, 64, 128), "t3_seeds": 40}
  cfg = dataclasses.replace(checks.config_for("T3", "quick"), **fields)
  want = two_layer.t3(cfg, tmp_path / "full")
  cut = tmp_path / "cut"
  metrics = cut / "metrics.jsonl"
  kill_when([sys.executable, "-c", KILLED_T3.format(fields=fields), str(cut)],
            has_lines(metrics))
  kept = metrics.read_text().count("\n")
  assert 0 < kept < len(fields["t3_widths"])
  with open(metrics, "a") as f:
    f.write('{"width": 128, "rel_err": [[0.')  # cut in the middle
  got = two_layer.t3(cfg, cut)
  strip = lambda p: [{k: v for k, v in json.loads(line).items()  # noqa: E731
                      if k != "seconds"} for line in p.read_text().splitlines()]
  assert strip(metrics) == strip(tmp_path / "full" / "metrics.jsonl")
  assert json.dumps(got.measured, sort_keys=True) == json.dumps(
      want.measured, sort_keys=True)
  assert got.holds == want.holds


def test_theory_command_stops_at_the_time_budget(tmp_path, capsys,
                                                 monkeypatch):
  from randconv.repro.cli import main
  monkeypatch.setenv("RANDCONV_TIME_BUDGET_S", "0")
  assert main(["theory", "--preset", "quick", "--only", "T1", "--out",
               str(tmp_path), "--json"]) == 0
  payload = json.loads(capsys.readouterr().out)
  assert payload["stopped"].startswith("T1: stopped by the time budget")
  assert payload["checks"] == [] and payload["holds"] is False
