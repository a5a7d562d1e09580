"""Section 3 end to end at tiny sizes (the quick preset, smaller): every
experiment trains its decoders, writes its figure and a claim with
numbers; S3a and S3e say "needs weights" without AlexNet ImageNet weights
and are measured when a (generated, torchvision-format) AlexNet file is
given. The verdicts of a
3-step run mean nothing; the test checks the plumbing, not the paper.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from experiments.section3 import curves, generalization, pictures, plots
from experiments.section3 import reading as R
from experiments.section3 import runs as S3R
from randconv import plotting, settings
from randconv.deadline import NO_DEADLINE
from randconv.repro.cli import build_parser

# The tests' small runs: the quick preset made smaller (2 seeds, so that
# the replicate code runs; 5 steps with a validation point at each).
TINY = S3R.config_for("quick", crop=32, short_side=64, steps=(5,) * 5,
                     width=8, layers=("conv1", "conv2"), val_samples=16,
                     evals=5, threads=0, s3e_layer="conv2", cache=16,
                     seeds=(0, 1), raw_seeds=(0,))
SMALL = ("crop", "short_side", "steps", "width", "layers", "val_samples",
         "evals", "threads", "s3e_layer", "cache", "seeds", "raw_seeds")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  saved = {k: os.environ.get(k) for k in ("RANDCONV_DATA_DIR",
                                          "RANDCONV_JAX_CACHE",
                                          "RANDCONV_WEIGHTS")}
  os.environ["RANDCONV_DATA_DIR"] = str(tmp_path_factory.mktemp("tfds"))
  os.environ["RANDCONV_JAX_CACHE"] = str(tmp_path_factory.mktemp("jax"))
  os.environ.pop("RANDCONV_WEIGHTS", None)
  yield tmp_path_factory.mktemp("out")
  for k, v in saved.items():
    if v is None:
      os.environ.pop(k, None)
    else:
      os.environ[k] = v


def _fake_alexnet(torch, path: Path) -> Path:
  from test_weights import ALEXNET, _torch_features
  torch.manual_seed(0)
  torch.save(_torch_features(torch, ALEXNET).state_dict(), path)
  return path


def _check(result, workdir):
  assert result.measured
  for f in result.figures:
    assert Path(f).exists() and Path(f).stat().st_size > 1000, f
  assert result.figures
  assert any(p.suffix == ".json" for p in workdir.iterdir())


def test_section3_tiny(env, torch):
  out = env
  runs = {}
  for fn in (curves.run_s3a, curves.run_s3b, curves.run_s3c,
             generalization.run_s3d, pictures.run_s3f, pictures.run_s3g,
             generalization.run_s3e):
    [r] = fn(TINY, out / fn.__name__, NO_DEADLINE)
    _check(r, out / fn.__name__)
    runs[r.id] = r
  hed = S3R.find_weights(()).vgg == "hed"
  assert runs["S3a"].status == "needs weights" and runs["S3a"].holds is None
  assert runs["S3e"].status == "needs weights" and runs["S3e"].holds is None
  # Without AlexNet weights S3a decides its VGG half, S3e its random half,
  # and both say what the rest needs.
  assert ("VGG half: inconclusive" in runs["S3a"].summary) == hed
  assert "AlexNet half: needs weights" in runs["S3a"].summary or not hed
  assert "random AlexNet half: inconclusive" in runs["S3e"].summary
  # 5 steps neither converge nor learn: every claim that could be decided
  # is inconclusive, with the reason and the per-seed numbers.
  assert (runs["S3d"].status == "inconclusive") == hed
  for cid in ("S3c", "S3f", "S3g"):
    assert runs[cid].status == "inconclusive", cid
    assert "not converged" in runs[cid].reason or \
        "did not learn" in runs[cid].reason
    assert isinstance(runs[cid].holds, bool)
    assert runs[cid].summary and runs[cid].rule
  assert isinstance(runs["S3b"].holds, bool)
  for cid in ("S3c", "S3f", "S3g") + (("S3a", "S3d") if hed else ()):
    [row] = runs[cid].sensitivity
    assert row["reading"] == R.RAW and row["status"] and "verdict" in \
        row["summary"], cid
  for cid, r in runs.items():
    for label, per_seed in r.measured["runs"].items():
      assert len(per_seed) == len(TINY.seeds), (cid, label)
  split = runs["S3c"].measured["split"]
  assert "chelsea" in split["validation"]
  assert ("motorcycle_left" in split["train"]) == \
      ("motorcycle_right" in split["train"])
  assert set(runs["S3f"].measured["mean_ssim"]) == {"VGG", "AlexNet"}
  trained = list((out / "section3_runs" / "quick").iterdir())
  assert all((d / "summary.json").exists() for d in trained)
  # The reconstructions say how long their decoders trained and, at the
  # quick preset, that they are a smoke run's.
  for cid in ("S3f", "S3g"):
    words = plotting.caption_of(runs[cid].figures[0])
    assert "after 5 training steps" in words and "smoke run" in words

  # With AlexNet weights the two claims run (their random runs are reused).
  alex = _fake_alexnet(torch, out / "alexnet-owt-test.pth")
  with_alex = S3R.config_for("quick", settings.Settings(weights=(str(alex),)),
                            **{f: getattr(TINY, f) for f in SMALL})
  [a] = curves.run_s3a(with_alex, out / "s3a_weights", NO_DEADLINE)
  [e] = generalization.run_s3e(with_alex, out / "s3e_weights", NO_DEADLINE)
  for r in (a, e):
    assert "AlexNet pre-trained" in r.measured["runs"]
  # S3e needs only AlexNet's weights; S3a also needs a pre-trained VGG.
  assert e.status == "inconclusive" and isinstance(e.holds, bool)
  assert (a.status == "inconclusive") == hed
  assert isinstance(a.holds, bool) == hed
  # tiny runs S3e at Conv2: the new runs are AlexNet Conv2 pre-trained,
  # rms for 2 seeds and raw for 1.
  assert len(list((out / "section3_runs" / "quick").iterdir())) == \
      len(trained) + 3
  meta = json.loads((out / "s3a_weights" / "s3a.json").read_text())
  assert meta["pretrained_alexnet"] == alex.name  # no absolute paths


def test_reproduce_weights_option(tmp_path, monkeypatch):
  """``randconv reproduce --weights`` hands the files to the experiments."""
  seen = {}

  def fake(preset, out, only=None, **kw):
    seen["weights"] = kw["settings"].weights
    return []

  monkeypatch.setattr("randconv.repro.registry.reproduce", fake)
  monkeypatch.delenv("RANDCONV_WEIGHTS", raising=False)
  f = tmp_path / "vgg16-test.pth"
  f.write_bytes(b"x")
  args = build_parser().parse_args(["reproduce", "--out", str(tmp_path),
                                    "--only", "S3a", "--weights", str(f)])
  args.func(args)
  assert seen["weights"] == (str(f.resolve()),)


def _curve(values):
  return SimpleNamespace(metrics=[{"step": i, "loss": float(v)}
                                  for i, v in enumerate(values)])


def _run(val: dict, steps=100, baseline=300.0, done=True):
  from randconv.training import train as train_lib
  records = [{"step": i, "loss": 1.0} for i in range(steps)] + [
      {"step": s, "val_loss": v, "train_eval_loss": v} for s, v in val.items()]
  return train_lib.RunResult(
      workdir=Path("."), config=SimpleNamespace(steps=steps),
      metrics=records, params={}, step=steps if done else 0, done=done,
      stopped=None if done else "time budget",
      summary={"baseline_val_loss": baseline})


def test_convergence_and_learning_rules():
  """Converged: val at 80% of the steps >= 0.95 x val at 40%; learned:
  the final val below 0.9 x the best constant image's."""
  from experiments.section3.runs import run_numbers
  flat = run_numbers(_run({40: 100.0, 80: 97.0, 100: 96.0}))
  assert flat["converged"] and flat["learned"]
  assert flat["convergence_ratio"] == pytest.approx(0.97)
  falling = run_numbers(_run({40: 100.0, 80: 90.0, 100: 88.0}))
  assert not falling["converged"] and falling["learned"]
  ignores = run_numbers(_run({40: 280.0, 80: 279.0, 100: 275.0}))
  assert ignores["converged"] and not ignores["learned"]  # 275 > 0.9 * 300
  missing = run_numbers(_run({100: 50.0}))  # no point at 40% or 80%
  assert not missing["converged"]


def _reading(runs: dict):
  return R.Reading("rms", {(k, 0): v for k, v in runs.items()})


def test_reading_status():
  """Partial before anything else; inconclusive names the run and why;
  a label exempt from learning (a badly scaled sigma) may not learn."""
  ok = _run({40: 100.0, 80: 99.0, 100: 98.0})
  cut = _run({40: 100.0, 80: 99.0}, done=False)
  flat_bad = _run({40: 290.0, 80: 290.0, 100: 290.0})
  assert _reading({"a": ok, "b": cut}).status(True)[0] == "partial"
  assert _reading({"a": ok}).status(True) == ("measured", "")
  st, why = _reading({"a": ok, "sigma 1": flat_bad}).status(False)
  assert st == "inconclusive" and "sigma 1 seed 0 did not learn" in why
  assert _reading({"a": ok, "sigma 1": flat_bad}).status(
      False, exempt=("sigma 1",)) == ("measured", "")


def _texts(fig) -> list[str]:
  from matplotlib.text import Text
  return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


@pytest.fixture
def figures(monkeypatch):
  """Every figure saved while the test runs: (its texts, its axes, its
  caption); the files are still written."""
  seen, save = [], plotting.save_figure

  def keep(fig, path, dpi=100, caption=None):
    fig.canvas.draw()  # tick labels get their text when drawn
    seen.append((_texts(fig), fig.axes, caption))
    return save(fig, path, dpi, caption)

  monkeypatch.setattr(plotting, "save_figure", keep)
  return seen


def test_bars_are_linear_unless_they_span_decades(tmp_path, figures):
  """240 vs 340 on a log axis from ~230 read as 1 to 4: bars of one
  magnitude stand on a linear axis from zero; across decades the axis is
  logarithmic with plain-number ticks; every bar carries its value, and a
  missing one says it was not run."""
  plots.plot_bars(["conv1", "conv2"], {"train": [340.0, 338.0],
                                    "val": [240.0, None]},
               tmp_path / "one.png", "title", "Caption.")
  plots.plot_bars(["conv1"], {"random": [340.0], "pre": [2.97e6]},
               tmp_path / "many.png", "title", "Caption.")
  (one, [ax1], cap1), (many, [ax2], cap2) = figures
  assert ax1.get_yscale() == "linear" and ax1.get_ylim()[0] == 0
  assert "Linear y axis" in cap1
  assert {"340", "240", "not run"} <= set(one)
  assert ax2.get_yscale() == "log" and "Log y axis" in cap2
  assert {"1k", "10k", "100k", "1M"} <= set(many)
  assert "2.97M" in many
  assert plotting.y_scale([240, 340, None]) == "linear"
  assert plotting.y_scale([240, 2400]) == "log"


def test_coincident_curves_all_show(tmp_path, figures):
  """Identical curves (S3b's sigmas, S3c's distributions at the quick
  preset) get distinct line styles and markers at distinct steps, and the
  legend lists each."""
  res = _curve(np.linspace(400, 300, 40))
  plots.plot_curves({f"d{i}": res for i in range(4)}, tmp_path / "c.png",
                 "title", "Caption.")
  [(texts, [ax], _)] = figures
  lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("d")]
  assert len({ln.get_linestyle() for ln in lines}) == 4
  assert len({ln.get_marker() for ln in lines}) == 4
  starts = [ln.get_markevery()[0] for ln in lines]
  assert len(set(starts)) == 4
  assert {"d0", "d1", "d2", "d3"} <= set(texts)


def test_no_none_in_titles_without_weights(env, figures, monkeypatch):
  """With no pre-trained file at all, S3a's and S3d's figures say the
  pre-trained runs were not run, never "pre-trained VGG: None"."""
  for module in (curves, generalization):
    monkeypatch.setattr(module, "find_weights",
                        lambda files: S3R.Weights(None, "no weights", None))
  for fn in (curves.run_s3a, generalization.run_s3d):
    [r] = fn(TINY, env / f"{fn.__name__}_none", NO_DEADLINE)
    assert r.status == "needs weights"
  assert len(figures) == 4  # rms and raw
  for texts, _, caption in figures:
    words = " ".join(texts) + " " + caption
    assert "None" not in words and "not run (no weights)" in words
