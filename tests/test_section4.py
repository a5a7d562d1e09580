"""Section 4 experiments end to end at tiny sizes, the resumable cell log,
and a real kill-and-resume of the quick S4c run."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from randconv import registry
from randconv.cells import CellLog, WorkdirError

from experiments import section4, section4_data


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
  registry.write_report(out, "tiny", results)
  claims = {c["id"]: c for c in json.loads((out / "claims.json").read_text())}
  assert set(ids) <= set(claims)
  for i in ids:
    c = claims[i]
    assert c["status"] == "smoke"  # the tiny preset's verdicts are not evidence
    assert isinstance(c["holds"], bool)
    assert c["summary"] and c["rule"] and c["paper_ref"]
    nums = _numbers(c["measured"])
    assert nums and all(math.isfinite(v) for v in nums), i
    for f in c["figures"]:
      assert (out / f).exists()


def test_fig7_and_kernel_sweep_end_to_end(tmp_path):
  results = section4.run_fig7("tiny", tmp_path / "fig7")
  _check_workdir(tmp_path / "fig7", ["fig7.png"])
  results += section4.run_kernel_sweep("tiny", tmp_path / "kernel_sweep")
  _check_workdir(tmp_path / "kernel_sweep", ["kernel_size.png"])
  _check_claims(tmp_path, results, ["S4a", "S4b", "S4f"])
  assert len(results[0].sensitivity) == 3
  cfg = section4.FIG7["tiny"]
  cells = _cells(tmp_path / "fig7" / "metrics.jsonl")
  main = [c for c in cells if not c.startswith("sens/")]
  assert len(main) == 2 * 5 * cfg["nets"]            # both rows of Fig. 7
  assert len(cells) - len(main) == 2 * 5 * cfg["nets"]  # row 1, 2 readings
  # A second run in the same workdir computes no cell again.
  before = (tmp_path / "fig7" / "metrics.jsonl").read_bytes()
  section4.run_fig7("tiny", tmp_path / "fig7")
  assert (tmp_path / "fig7" / "metrics.jsonl").read_bytes() == before


def test_width_sweep_end_to_end_with_theory_and_sensitivity(tmp_path):
  wd = tmp_path / "conv1_width_sweep"
  results = section4.run_width_sweep("tiny", wd)
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
  again = section4.run_width_sweep("tiny", wd)   # resumes: nothing new
  assert (wd / "metrics.jsonl").read_bytes() == before
  assert again[0].sensitivity == rows


def test_time_budget_stops_between_cells(tmp_path, monkeypatch):
  monkeypatch.setenv("RANDCONV_TIME_BUDGET_S", "0")
  (result,) = section4.run_kernel_sweep("tiny", tmp_path)
  assert result.status == "partial" and result.holds is None
  assert "partial" in result.measured
  assert not (tmp_path / "metrics.jsonl").exists()


def test_cell_log_drops_a_cut_line_and_refuses_another_config(tmp_path):
  log = CellLog(tmp_path, {"a": 1})
  log.add([{"cell": "x", "v": 1.5}, {"cell": "y", "v": 2.0}])
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"cell": "z", "v": 3')  # a kill in the middle of a write
  again = CellLog(tmp_path, {"a": 1})
  assert sorted(again.cells) == ["x", "y"]
  assert (tmp_path / "metrics.jsonl").read_text().endswith("2.0}\n")
  with pytest.raises(WorkdirError, match="another configuration"):
    CellLog(tmp_path, {"a": 2})


def test_offline_images_are_distinct_and_deterministic():
  x, names = section4_data.offline_images(12, 16)
  y, _ = section4_data.offline_images(12, 16)
  assert x.shape == (12, 16, 16, 3) and np.array_equal(x, y)
  assert names[0] == "chelsea" and len(set(names)) == 12
  flat = x.reshape(12, -1)
  assert min(np.abs(flat[i] - flat[j]).max() for i in range(12)
             for j in range(i)) > 0


def test_spearman():
  assert section4.spearman([1, 2, 3, 4], [10, 20, 25, 40]) == pytest.approx(1)
  assert section4.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
  assert section4.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)


def _reproduce(out: Path, env) -> subprocess.Popen:
  return subprocess.Popen(
      [sys.executable, "-m", "randconv.cli", "reproduce", "--preset", "quick",
       "--only", "S4c", "--out", str(out)], env=env,
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _cells(path: Path) -> dict:
  return {r["cell"]: r for r in map(json.loads,
                                    path.read_text().splitlines())}


def test_killed_quick_s4c_resumes_to_the_same_numbers(tmp_path):
  # Subprocesses share a persistent compile cache: the first run fills it,
  # so the killed and the resumed runs spend their time computing cells.
  env = dict(os.environ,
             JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
  env.pop("RANDCONV_TIME_BUDGET_S", None)
  full = _reproduce(tmp_path / "full", env)
  assert full.wait(timeout=600) == 0, full.stderr.read()
  want = _cells(tmp_path / "full" / "conv1_width_sweep" / "metrics.jsonl")

  metrics = tmp_path / "cut" / "conv1_width_sweep" / "metrics.jsonl"
  run = _reproduce(tmp_path / "cut", env)
  deadline = time.time() + 300
  while time.time() < deadline and run.poll() is None:
    if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
      break
    time.sleep(0.02)
  assert run.poll() is None, "the run ended before it could be killed"
  os.kill(run.pid, signal.SIGKILL)
  run.wait()
  assert run.returncode == -signal.SIGKILL
  cut = _cells(metrics)
  assert 0 < len(cut) < len(want)

  again = _reproduce(tmp_path / "cut", env)
  assert again.wait(timeout=600) == 0, again.stderr.read()
  got = _cells(metrics)
  assert got.keys() == want.keys()
  for cell, record in want.items():
    assert got[cell] == record, cell
  # The resumed run wrote its figures and claims like the full one.
  for f in ("fig8_ssim.png", "fig9_pearson.png", "fig10.png"):
    assert (tmp_path / "cut" / "conv1_width_sweep" / f).exists()
  claims = {c["id"]: c for c in json.loads(
      (tmp_path / "cut" / "claims.json").read_text())}
  assert claims["S4c"]["status"] == "smoke"
  nums = _numbers(claims["S4c"]["measured"])
  assert nums and all(math.isfinite(v) for v in nums)
  assert claims["S4c"]["holds"] == json.loads(
      (tmp_path / "full" / "claims.json").read_text())[0]["holds"]


def test_sensitivity_explanations():
  """A row that holds means our reading differs; rows that do not hold
  leave the verdict standing; rows cut by the budget are named apart."""
  from experiments import section4_sensitivity as sens
  from randconv.registry import ClaimResult

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
