"""Check T7's infinite-width law at small sizes: the recursion against the
exact average-pooling limit, the sampled max pool against a wide library
network, GP samples against their kernel, and deliberately wrong kernels
that the check must catch."""

import json
import math

import numpy as np
import pytest

from randconv.deadline import Deadline
from randconv.spec import make_spec
from theory_checks import common, gp, limits, t7
from theory_checks import montecarlo as mc


def photo(size):
  x, _ = common.inputs((("chelsea", "colour"),), size)
  return x[0]


@pytest.mark.parametrize("layer,size", [("pool1", 12), ("conv2", 10)])
def test_average_pooling_recursion_equals_covariance_limit(layer, size):
  """With average pooling the full recursion is exact: it must equal the
  banded Theorem A.7 recursion to round-off."""
  spec = make_spec("vgg16", layer, output="mean", pooling="avg")
  x = photo(size)
  a = gp.full_law(spec, x).limit
  b = limits.covariance_limit(spec, x)
  np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12 * np.abs(b).max())


def test_sampled_average_pool_agrees_with_exact_within_its_error():
  spec = make_spec("vgg16", "pool1", output="mean", pooling="avg")
  x = photo(12)
  exact = limits.covariance_limit(spec, x)
  law = gp.full_law(spec, x, sample_avg=True, samples=1 << 14)
  rel = np.linalg.norm(law.limit - exact) / np.linalg.norm(exact)
  (se,) = law.pool_rel_se
  # The limit is a square root of (a map of) the kernel: half its error.
  assert rel < 4 * se and se < 0.05


def test_ceil_mode_windows_at_an_odd_size():
  """15x15 gives pool1 a last row and column of half windows (ceil mode, as
  at 227): the banded and the full max-pool limits agree, and the sampled
  average pool agrees with the exact one."""
  x = photo(15)
  spec = make_spec("vgg16", "pool1", output="mean", pooling="max")
  info = {}
  banded = limits.limit_image(spec, x, "max", info=info)
  full = gp.full_law(spec, x)
  rel = np.linalg.norm(banded - full.limit) / np.linalg.norm(full.limit)
  assert rel < 4 * (info["pool_rel_se"][0] + full.pool_rel_se[0])
  avg = make_spec("vgg16", "pool1", output="mean", pooling="avg")
  exact = limits.covariance_limit(avg, x)
  law = gp.full_law(avg, x, sample_avg=True, samples=1 << 14)
  rel = np.linalg.norm(law.limit - exact) / np.linalg.norm(exact)
  assert rel < 4 * law.pool_rel_se[0]


def test_banded_max_pool_limit_matches_full_recursion():
  spec = make_spec("vgg16", "pool1", output="mean", pooling="max")
  x = photo(16)
  info = {}
  banded = limits.limit_image(spec, x, "max", info=info)
  full = gp.full_law(spec, x)
  rel = np.linalg.norm(banded - full.limit) / np.linalg.norm(full.limit)
  assert rel < 4 * (info["pool_rel_se"][0] + full.pool_rel_se[0])
  # Max pooling's limit is not average pooling's.
  avg = limits.covariance_limit(make_spec("vgg16", "pool1", output="mean",
                                          pooling="avg"), x)
  assert limits.angle(banded, avg) > 20 * limits.angle(banded, full.limit)


def test_gp_samples_have_the_kernel_as_covariance():
  rng = np.random.default_rng(0)
  a = rng.standard_normal((36, 5))
  k = a @ a.T + 0.1 * np.eye(36)
  n = 20000
  draws = gp.gp_samples(k, (6, 6), n, seed=1).reshape(n, 36)
  emp = draws.T.astype(np.float64) @ draws / n
  d = np.diag(k)
  se = np.sqrt((np.outer(d, d) + k * k) / n)
  assert np.max(np.abs(emp - k) / se) < 5.5


def test_best_scale_error_ignores_the_scale():
  k = np.array([[2.0, 1.0], [1.0, 3.0]])
  assert gp.best_scale_error(7.5 * k, k) < 1e-15
  assert gp.best_scale_error(np.eye(2), k) > 0.3


@pytest.fixture(scope="module")
def empirical():
  """Output kernels Sigma of library nets at 12x12, two inputs."""
  x, _ = common.inputs(common.TWO_PHOTOS, 12)
  widths = (32, 128, 512, 2048)
  return x, {n: t7.empirical_kernels(n, x, 3, seed=5) for n in widths}


def _slopes(empirical, wrong=None):
  x, sig = empirical
  spec = t7.specs()["conv"]
  ks = [gp.full_law(spec, xb, wrong=wrong, seed=2).kernel for xb in x]
  errs = {n: np.array([[gp.best_scale_error(s[i, b], ks[b])
                        for b in range(len(x))] for i in range(len(s))])
          for n, s in sig.items()}
  return common.fit_slopes(errs, 32), errs


def test_max_pool_kernel_against_wide_library_networks(empirical):
  """T7 (a) at 12x12: the library's output kernel approaches the limit at
  the N^(-1/2) rate; at N = 2048 it is within a few per cent."""
  slopes, errs = _slopes(empirical)
  assert common.convergence_holds(slopes), slopes
  assert errs[2048].mean() < 0.05


@pytest.mark.parametrize("wrong", gp.WRONG)
def test_wrong_kernel_fails_check_a(empirical, wrong):
  """Treating the max pool as average pooling, or dropping the ReLU map,
  leaves an error that does not shrink: check (a) must fail."""
  slopes, errs = _slopes(empirical, wrong)
  assert not common.convergence_holds(slopes), slopes
  right = _slopes(empirical)[1]
  assert errs[2048].mean() > 3 * right[2048].mean()


def test_t7_end_to_end_and_resume(tmp_path):
  p = t7.config_for("quick", size=12, kernel_widths=(16, 64, 256),
                    kernel_nets=2, fit_min=16, dist_width=64, dist_nets=40,
                    gp_samples=60, sweep_widths=(4, 64), sweep_nets=6,
                    pool_samples=1 << 13)
  full = tmp_path / "full"
  r = t7.t7(p, full)
  m = r.measured
  assert set(m["b_tests"]) == {"chelsea (colour)", "astronaut (grey)"}
  for key in ("ssim", "pearson_abs"):
    t = m["b_tests"]["chelsea (colour)"][key]
    assert 0 <= t["ks_p"] <= 1 and math.isfinite(t["z"])
  assert set(m["c_conv"]["by_width"]) == {"4", "64"}
  assert 0 < m["c_prediction"]["mean"]["ssim_mean"] < 1
  for f in r.figures:
    assert (full / f.split("/")[-1]).exists()
  lines = (full / "metrics.jsonl").read_text().splitlines()
  again = t7.t7(p, full)   # resumes: nothing recomputed
  assert (full / "metrics.jsonl").read_text().splitlines() == lines
  assert json.dumps(again.measured, sort_keys=True) == json.dumps(
      m, sort_keys=True)
  # Out of time before its first unit, a check writes nothing new and
  # says so (a real kill of a check: test_theory_checks.py).
  with pytest.raises(mc.OutOfTime, match="time budget"):
    t7.t7(p, tmp_path / "late", deadline=Deadline.after(0))
  assert not (tmp_path / "late" / "metrics.jsonl").exists()


def test_limit_command_conv_and_max(tmp_path, capsys):
  from randconv.repro.cli import main
  assert main(["limit", "chelsea", "--layer", "pool1", "--size", "12",
               "--pooling", "max", "--output", "conv", "--samples", "20",
               "--out", str(tmp_path / "c"), "--json"]) == 0
  c = json.loads(capsys.readouterr().out)
  assert {"ssim_mean", "ssim_std", "pearson_abs_mean"} <= set(c)
  assert np.load(tmp_path / "c" / "kernel.npy").shape == (144, 144)
  # The input, the GP's std per pixel and 5 draws in a row, captioned.
  from PIL import Image

  from randconv.plotting import caption_of
  with Image.open(tmp_path / "c" / "samples.png") as im:
    assert im.size[0] >= 4 * im.size[1]  # 7 panels and their titles
  assert "standard deviation per pixel and 5 draws" in caption_of(
      tmp_path / "c" / "samples.png")
  assert main(["limit", "chelsea", "--layer", "pool1", "--size", "12",
               "--pooling", "max", "--output", "mean",
               "--out", str(tmp_path / "m"), "--json"]) == 0
  m = json.loads(capsys.readouterr().out)
  assert m["ssim_std"] == 0.0 and 0 < m["angle"] < math.pi / 2
  assert np.load(tmp_path / "m" / "limit.npy").shape == (12, 12)
  # The full kernel at 80x80 is over the cap: one line, exit code 2.
  assert main(["limit", "chelsea", "--layer", "pool1", "--size", "80",
               "--output", "conv", "--out", str(tmp_path / "x")]) == 2
  assert "GB of float64" in capsys.readouterr().err
