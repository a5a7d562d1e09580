"""Section 4 experiments end to end at tiny sizes (the quick preset with
smaller fields), resuming from the run folder, the deadline, and a real
kill-and-resume of the kernel sweep."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import has_lines, kill_when
from randconv.repro import registry
from randconv.deadline import NO_DEADLINE, Deadline

from experiments.section4 import claims, configs, data
from experiments.section4.configs import Fig7Config, KernelConfig, WidthConfig
from randconv.metrics import spearman

# The tests' small runs: the quick preset (smoke verdicts) made smaller.
TINY = {
    Fig7Config: dict(size=32, nets=2, others=1, width=8, sensitivity_size=48,
                     law_size=16, law_draws=20, law_pool_samples=1024),
    WidthConfig: dict(size=16, widths=(4, 8, 16), nets=2, images=3,
                      fig10_images=2, fig10_widths=(4, 16),
                      sensitivity_size=24),
    KernelConfig: dict(size=16, kernels=(1, 3, 5), nets=2, images=3),
}


def tiny(cls, **fields):
  return configs.config_for(cls, "quick", **{**TINY[cls], **fields})


def _numbers(obj):
  if isinstance(obj, bool) or obj is None or isinstance(obj, str):
    return []
  if isinstance(obj, (int, float)):
    return [obj]
  if isinstance(obj, dict):
    return [v for x in obj.values() for v in _numbers(x)]
  if isinstance(obj, (list, tuple)):
    return [v for x in obj for v in _numbers(x)]
  return []


def _check_workdir(workdir: Path, figures: list[str]):
  assert json.loads((workdir / "config.json").read_text())
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  assert lines
  for line in lines:
    record = json.loads(line)
    assert "cell" in record
    assert all(math.isfinite(v) for v in _numbers(record))
  for f in figures:
    path = workdir / f
    assert path.exists() and path.read_bytes()[:4] == b"\x89PNG", f


def _check_claims(out: Path, results, ids):
  registry.write_report(out, "quick", results, smoke=True)
  claims = {c["id"]: c for c in json.loads((out / "claims.json").read_text())}
  assert set(ids) <= set(claims)
  for i in ids:
    c = claims[i]
    assert c["status"] == "smoke"  # small runs' verdicts are not evidence
    assert isinstance(c["holds"], bool)
    assert c["summary"] and c["rule"] and c["paper_ref"]
    nums = _numbers(c["measured"])
    assert nums and all(math.isfinite(v) for v in nums), i
    for f in c["figures"]:
      assert (out / f).exists()


@pytest.fixture(scope="module")
def fig7_and_kernels(tmp_path_factory):
  """One uninterrupted run of Fig. 7 and the kernel sweep."""
  out = tmp_path_factory.mktemp("s4")
  results = claims.run_fig7(tiny(Fig7Config), out / "fig7", NO_DEADLINE)
  results += claims.run_kernel_sweep(tiny(KernelConfig),
                                       out / "kernel_sweep", NO_DEADLINE)
  return out, results


def test_fig7_and_kernel_sweep_end_to_end(fig7_and_kernels):
  out, results = fig7_and_kernels
  _check_workdir(out / "fig7", ["fig7.png", "fig7_law.png"])
  _check_workdir(out / "kernel_sweep", ["kernel_size.png"])
  _check_claims(out, results, ["S4a", "S4b", "S4f"])
  assert len(results[0].sensitivity) == 3
  # Fig. 7 says its panels are single nets, unlike the table's means.
  from randconv.plotting import caption_of
  assert "each panel is one net of 2" in caption_of(out / "fig7/fig7.png")
  assert caption_of(out / "kernel_sweep/kernel_size.png")
  nets = TINY[Fig7Config]["nets"]
  cells = _cells(out / "fig7" / "metrics.jsonl")
  main = [c for c in cells if not c.startswith("sens/")]
  assert len(main) == 2 * 5 * nets            # both rows of Fig. 7
  assert len(cells) - len(main) == 2 * 5 * nets  # row 1, 2 readings
  # The infinite-width law of each net and the nets at its size.
  law_cells = _cells(out / "fig7" / "law" / "metrics.jsonl")
  assert len([c for c in law_cells if c.startswith("gp/")]) == 2 * 5
  assert len([c for c in law_cells if c.startswith("nets/")]) == 2 * 5 * nets
  for r in results[:2]:
    law = r.measured["infinite_width_law"]
    assert len(law["law_ssim_conv1_to_conv5"]) == 5 and law["size"] == 16
  # A second run in the same workdir computes no cell again.
  before = [(out / "fig7" / f).read_bytes()
            for f in ("metrics.jsonl", "law/metrics.jsonl")]
  claims.run_fig7(tiny(Fig7Config), out / "fig7", NO_DEADLINE)
  assert [(out / "fig7" / f).read_bytes()
          for f in ("metrics.jsonl", "law/metrics.jsonl")] == before


def test_width_sweep_end_to_end_with_theory_and_sensitivity(tmp_path):
  wd = tmp_path / "conv1_width_sweep"
  cfg = tiny(WidthConfig)
  results = claims.run_width_sweep(cfg, wd, NO_DEADLINE)
  _check_workdir(wd, ["fig8_ssim.png", "fig9_pearson.png", "fig10.png"])
  _check_claims(tmp_path, results, ["S4c", "S4d", "S4e"])
  s4c, s4d, _ = results
  # T7's predictions ride along: numbers and the sentence.
  assert 0 < s4c.measured["t7_prediction"]["ssim_mean"] < 1
  assert s4c.measured["theory"].startswith("T7 predicts a plateau")
  assert s4d.measured["t7_prediction"]["ssim_std"] == 0
  # The sensitivity rows: as run, mean-subtracted inputs, another size.
  rows = s4c.sensitivity
  assert [r["reading"].split(",")[0] for r in rows] == [
      "as run: raw inputs in [0", "inputs minus their per-channel mean",
      "raw inputs"]
  assert all(r["status"] in ("holds", "does not hold") for r in rows)
  cells = _cells(wd / "metrics.jsonl")
  assert any(c.startswith("sens/center16/conv/w4/") for c in cells)
  assert any(c.startswith("sens/size24/conv/w16/") for c in cells)
  assert any(c.startswith("t7/conv-n200-p8192/i") for c in cells)
  before = (wd / "metrics.jsonl").read_bytes()
  again = claims.run_width_sweep(cfg, wd, NO_DEADLINE)  # nothing new
  assert (wd / "metrics.jsonl").read_bytes() == before
  assert again[0].sensitivity == rows
  # The folder is refused under another config, naming the field.
  with pytest.raises(registry.RandconvError, match=r"\(nets differ\)"):
    claims.run_width_sweep(tiny(WidthConfig, nets=3), wd, NO_DEADLINE)


def test_deadline_stops_between_cells(tmp_path):
  (result,) = claims.run_kernel_sweep(tiny(KernelConfig), tmp_path,
                                        Deadline.after(0))
  assert result.status == "partial" and result.holds is None
  assert "partial" in result.measured
  assert not (tmp_path / "metrics.jsonl").exists()


def test_presets_are_overrides_of_one_config():
  cpu = configs.config_for(WidthConfig, "cpu")
  assert cpu == WidthConfig()
  quick = configs.config_for(WidthConfig, "quick")
  assert (quick.preset, quick.size, quick.widths) == ("quick", 32,
                                                      (4, 16, 64))
  assert quick.sensitivity_size is None and cpu.sensitivity_size == 128
  with pytest.raises(registry.RegistryError, match="tiny"):
    configs.config_for(WidthConfig, "tiny")


def test_offline_images_are_distinct_and_deterministic():
  x, names = data.offline_images(12, 16)
  y, _ = data.offline_images(12, 16)
  assert x.shape == (12, 16, 16, 3) and np.array_equal(x, y)
  assert names[0] == "chelsea" and len(set(names)) == 12
  flat = x.reshape(12, -1)
  assert min(np.abs(flat[i] - flat[j]).max() for i in range(12)
             for j in range(i)) > 0


def test_spearman():
  assert spearman([1, 2, 3, 4], [10, 20, 25, 40]) == pytest.approx(1)
  assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
  assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)


def _cells(path: Path) -> dict:
  return {r["cell"]: r for r in map(json.loads,
                                    path.read_text().splitlines())}


KILLED = """
import sys
from pathlib import Path
from experiments.section4 import claims, configs
from randconv.deadline import NO_DEADLINE
cfg = configs.config_for(configs.KernelConfig, "quick", **{fields!r})
claims.run_kernel_sweep(cfg, Path(sys.argv[1]), NO_DEADLINE)
"""


def test_killed_kernel_sweep_resumes_to_the_same_numbers(tmp_path,
                                                         fig7_and_kernels):
  want = _cells(fig7_and_kernels[0] / "kernel_sweep" / "metrics.jsonl")
  metrics = tmp_path / "metrics.jsonl"
  kill_when([sys.executable, "-c", KILLED.format(fields=TINY[KernelConfig]),
             str(tmp_path)], has_lines(metrics))
  cut = _cells(metrics)
  assert 0 < len(cut) < len(want)
  # Half a line, as a kill in the middle of a write leaves it: dropped.
  with open(metrics, "a") as f:
    f.write('{"cell": "k5/n0", "ssim_mean": 0.')
  (result,) = claims.run_kernel_sweep(tiny(KernelConfig), tmp_path,
                                        NO_DEADLINE)
  got = _cells(metrics)
  assert got.keys() == want.keys()
  for cell, record in want.items():
    assert got[cell] == record, cell
  assert result.status == "measured"
  assert (tmp_path / "kernel_size.png").exists()


def test_sensitivity_explanations():
  """A row that holds means our reading differs; rows that do not hold
  leave the verdict standing; rows cut by the budget are named apart."""
  from experiments.section4 import sensitivity as sens
  from randconv.repro.registry import ClaimResult

  def result(*statuses):
    rows = [{"reading": f"r{i}", "summary": "", "status": st}
            for i, st in enumerate(statuses)]
    return ClaimResult("S4a", "c", {}, False, sensitivity=rows)

  r = result("does not hold", "holds", "does not hold")
  sens.explain(r)
  assert r.explanation.startswith("Our reading differs") and "r1" in r.explanation
  r = result("does not hold", "does not hold", "partial")
  sens.explain(r)
  assert "does not hold with r1" in r.explanation
  assert "time budget: r2" in r.explanation and "r2 either" not in r.explanation
  r = result("holds", "does not hold")
  r.holds = True
  sens.explain(r)
  assert r.explanation == ""


def test_fig7_law_explanation_follows_what_failed():
  """The infinite-width law is credited only where the measured SSIM does
  not decay, the law does not either, and the nets follow it."""
  from types import SimpleNamespace

  from experiments.section4.law import explain

  def law(pred, nets, se=0.005):
    return {"size": 64, "draws": 200, "nets": 6, "rows": {"original": {
        "law": [{"gp_ssim_mean": p, "gp_ssim_std": 0.01, "gp_ssim_se": se,
                 "pool_rel_se": [0.01]} for p in pred],
        "nets": [{"ssim": n, "se": se} for n in nets]}}}

  flat = [0.32, 0.03, 0.02, 0.03, 0.035]
  cases = [(flat, flat, False, "infinite-width law at work"),
           (flat, flat, True, "fails on its other parts"),
           ([0.4, 0.3, 0.2, 0.1, 0.05], flat, False, "not the infinite"),
           (flat, [0.9, 0.8, 0.7, 0.6, 0.5], False, "only 0 of 5")]
  for pred, nets, decays, words in cases:
    res = SimpleNamespace(holds=False, measured={}, explanation="")
    explain(res, law(pred, nets), "original", decays)
    assert words in res.explanation, (words, res.explanation)
    assert res.measured["infinite_width_law"]["size"] == 64
  held = SimpleNamespace(holds=True, measured={}, explanation="")
  explain(held, law(flat, flat), "original", False)
  assert held.explanation == "" and "infinite_width_law" in held.measured
