"""Section 3's readings: one claim's runs under one feature reading (rms or
raw), the per-seed numbers, the statuses the rules give, and the claim
results with their raw-reading sensitivity rows; the table the claims
register in."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from experiments.section3.runs import (
  CONVERGENCE_RULE,
  Section3Config,
  config_for,
  data_config,
  run_numbers,
  train_runs,
)
from randconv import distributed
from randconv.repro.registry import ClaimResult, Table, claim_text
from randconv.training import data as data_lib

EXPERIMENTS = Table()
RAW = "raw features (the paper's reading: no rescaling)"


def experiment(cid: str, title: str, name: str):
  return EXPERIMENTS.add(cid, title=title, name=name, configure=config_for,
                         smoke_presets=("quick",))


RULES = {
    "S3a": "random < pre-trained (final training loss and smoothed curve at"
           " 10/25/50%) for VGG and AlexNet, in every seed; mean relative "
           "gap larger on VGG; random VGG < random AlexNet and pre-trained "
           "VGG < pre-trained AlexNet",
    "S3b": "raw features; in every seed the first losses span more than a "
           "factor 2, the final losses lie within a factor 10 and every "
           "sigma's decoder learned",
    "S3c": "in every seed the four final losses lie within a factor 1.25",
    "S3d": "at every layer, in every seed, random VGG's validation and "
           "training-set losses below pre-trained VGG's; mean val(Conv5)/"
           "val(Conv1) larger for pre-trained; |val - train| / train <= 0.3 "
           "for every run",
    "S3e": "at Conv3 AlexNet's |val - train| / train <= 0.3 (random and "
           "pre-trained) and its random/pre-trained validation gap <= 0.2, "
           "in every seed",
    "S3f": "seed-mean SSIM over 3 held-out images falls from Conv1 to Conv5,"
           " never rising by more than 0.02 per layer, for VGG and AlexNet; "
           "VGG above AlexNet at every layer in every seed",
    "S3g": "in every seed the four paper-scale distributions' SSIMs on the "
           "cat within 0.05; a raw badly scaled Gaussian more than 0.05 below"
           " all four",
}


# --------------------------------------------------------------------------
# Readings: one claim's runs under one feature reading, and its verdict.

class Reading:
  """The runs of one claim under one reading (``rms`` or ``raw``):
  ``res[(label, seed)]`` results and ``num[label]`` their per-seed
  numbers (:func:`reading` trains them)."""

  def __init__(self, scale: str, res: dict):
    self.scale, self.res = scale, res
    self.labels = list(dict.fromkeys(k for k, _ in res))
    self.seeds = sorted({s for _, s in res})
    self.num = {k: [run_numbers(res[(k, s)]) for s in self.seeds]
                for k in self.labels}

  def only(self, labels) -> "Reading":
    """The reading of ``labels`` alone (one half of a claim)."""
    return Reading(self.scale, {k: v for k, v in self.res.items()
                                if k[0] in labels})

  def joined(self, other: "Reading") -> "Reading":
    """One reading of both runs (one claim decided on both)."""
    return Reading(self.scale, {**self.res, **other.res})

  def each(self, label: str, key: str) -> list:
    return [n[key] for n in self.num[label]]

  def results(self, label: str) -> list:
    return [self.res[(label, s)] for s in self.seeds]

  def status(self, holds: bool | None, exempt=()) -> tuple[str, str]:
    """(status, reason): partial if a run stopped early; inconclusive if
    a run did not converge, or did not learn (``exempt`` labels: not
    learning is a measured outcome there)."""
    if not all(n["done"] for ns in self.num.values() for n in ns):
      return "partial", "a run stopped at the time budget; run again to " \
          "resume"
    if holds is None:
      return "measured", ""
    bad = []
    for label, ns in self.num.items():
      for seed, n in zip(self.seeds, ns, strict=True):
        if not n["converged"]:
          bad.append(f"{label} seed {seed} not converged (val at 80% / at "
                     f"40% = {number(n['convergence_ratio'])})")
        elif not n["learned"] and label not in exempt:
          bad.append(f"{label} seed {seed} did not learn (val "
                     f"{number(n['val_loss'])} vs constant image "
                     f"{number(n['baseline_val_loss'])})")
    if bad:
      return "inconclusive", "; ".join(bad)
    return "measured", ""


def number(v) -> str:
  return "?" if v is None else f"{v:.4g}"


def reading(runs: dict, cfg, workdir, deadline, scale) -> Reading:
  """Trains (or reloads) labelled ``runs`` with features read as
  ``scale``: their :class:`Reading`."""
  runs = {k: replace(r, scale=scale) for k, r in runs.items()}
  done = train_runs(list(runs.values()), cfg, workdir, deadline)
  return Reading(scale, {k: done[r] for k, r in runs.items()})


@dataclass(frozen=True)
class Verdict:
  """A claim's rule on one reading: whether it holds, the status the
  reading gives (:meth:`Reading.status`) and what the rule measured, by
  name."""

  reading: Reading
  holds: bool | None
  status: str
  values: dict = field(default_factory=dict)

  @classmethod
  def of(cls, r: Reading, holds: bool | None, **values) -> Verdict:
    return cls(r, holds, r.status(holds)[0], values)

  def __getitem__(self, name: str):
    return self.values[name]

  @property
  def word(self) -> str:
    return verdict_word(self.status, self.holds)


def verdict_word(status: str, holds: bool | None) -> str:
  if status != "measured" or holds is None:
    return status
  return "holds" if holds else "does not hold"


def sensitivity_row(main: Verdict, raw: Verdict, words: str) -> list[dict]:
  """The raw reading's row: its status and whether the verdict flips."""
  a, b = main.word, raw.word
  return [{"reading": RAW, "status": b, "summary": f"{words} (verdict "
           f"{'flips' if a != b else 'unchanged'}: {a} with rms features, "
           f"{b} raw)"}]


def claim_result(cid: str, m: dict, holds, reading: Reading, figures, summary,
            deciding=None, status=None, reason="", sensitivity=(),
            exempt=()) -> ClaimResult:
  st, why = reading.status(holds, exempt)
  if status and st not in ("partial",):
    st, why = status, reason or why
  m["runs"] = {k: v for k, v in reading.num.items()}
  return ClaimResult(cid, claim_text(cid), rounded(m), holds, status=st,
                     figures=[str(f) for f in figures], summary=summary,
                     rule=f"{RULES[cid]}; {CONVERGENCE_RULE}", reason=why,
                     deciding=rounded(deciding or {}),
                     sensitivity=list(sensitivity))


def rounded(d):
  """Rounds floats for the claims file."""
  if isinstance(d, dict):
    return {str(k): rounded(v) for k, v in d.items()}
  if isinstance(d, (list, tuple)):
    return [rounded(v) for v in d]
  if isinstance(d, float):
    return float(f"{d:.5g}")
  if isinstance(d, (np.floating, np.integer, np.bool_)):
    return rounded(d.item())
  return d


def write_json(workdir: Path, name: str, payload: dict) -> None:
  if not distributed.is_main():
    return
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / name).write_text(json.dumps(rounded(payload), indent=1) + "\n")


def split_record(cfg: Section3Config) -> dict:
  train, val = data_lib.image_split(data_config(cfg))
  return {"train": train, "validation": val}


def numbers(values, fmt: str = ".3f") -> str:
  """``values`` as a summary lists them: "0.512, 0.129, ..."."""
  return ", ".join(f"{v:{fmt}}" for v in values)


def every(xs) -> bool:
  return bool(all(xs))


