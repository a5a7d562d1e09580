"""The registry of the paper's experiments and claims, and the runner behind
``randconv reproduce``.

Every claim the project checks is listed in :data:`CATALOG` (how each is
decided: docs/reproduction.md). An experiment module registers a run
function for one or more claim ids::

    @register("S4c", "S4d", title="Conv1-DeConv1 width sweep")
    def width_sweep(preset: str, workdir: Path) -> list[ClaimResult]: ...

``reproduce`` imports the packages that hold experiments (``experiments``,
``theory_checks``), runs every registered experiment in ``OUT/<name>/`` and
writes ``claims.json``, ``report.md`` and ``report.html``
(:mod:`randconv.report`) after each one, so an interrupted run keeps what
it finished. A claim no experiment covers is listed as "not implemented",
never with a number."""

from __future__ import annotations

import dataclasses
import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PRESETS = ("quick", "cpu", "paper")

# id -> (section, what, claim); the paper's claims (docs/reproduction.md).
CATALOG: dict[str, tuple[str, str, str]] = {
    "S3a": ("3", "Fig. 5a: Conv2-DeConv2 loss, VGG vs AlexNet, random vs "
            "pre-trained", "random converges faster and to a slightly lower "
            "loss than pre-trained, most clearly on VGG; VGG's loss is lower "
            "than AlexNet's"),
    "S3b": ("3", "Fig. 5b: random VGG Conv2, several Gaussian sigmas",
            "the initial losses differ; the final losses reach the same "
            "magnitude"),
    "S3c": ("3", "Fig. 5c: gaussian, uniform, logistic, laplace",
            "similar final losses"),
    "S3d": ("3", "train vs validation loss, Conv1..Conv5, random and "
            "pre-trained VGG", "random VGG's loss is lower at every layer; "
            "pre-trained VGG's loss grows much faster with depth; train and "
            "validation losses are close"),
    "S3e": ("3", "Conv3: VGG vs AlexNet, random vs pre-trained",
            "AlexNet generalizes too; its random/pre-trained gap is small"),
    "S3f": ("3", "reconstructions, Conv1..Conv5 of random VGG and AlexNet",
            "quality decays with depth; VGG beats AlexNet, even at Conv5"),
    "S3g": ("3", "Fig. 6: the cat through random VGG Conv2 per distribution",
            "all look alike except a badly scaled one"),
    "S4a": ("4", "Fig. 7 row 1: the cat through rrVGG Conv1..Conv5",
            "quality decays with depth; contours visible for Conv1..Conv3, a "
            "rough contour at Conv4"),
    "S4b": ("4", "Fig. 7 row 2: simplified ConvK nets",
            "quality similar to row 1: width matters, depth little"),
    "S4c": ("4", "Figs. 8, 9 (a): rrVGG Conv1-DeConv1 width sweep",
            "quality rises with the width"),
    "S4d": ("4", "Figs. 8, 9 (b): the same with the channel-mean output",
            "the rise and its convergence are clearer; the std shrinks"),
    "S4e": ("4", "Fig. 10: outputs closest to the mean SSIM",
            "the pictures sharpen as the width grows"),
    "S4f": ("4", "Section 4.3: Conv1_1-DeConv1_1, kernel size 1..",
            "SSIM falls as the kernel grows"),
    "T1": ("5", "angle to the L2 limit vs width",
           "the angle shrinks at the N^(-1/2) rate"),
    "T2": ("5", "angle to the average-pooling limit vs width",
           "the angle shrinks at the N^(-1/2) rate"),
    "T3": ("5", "Theorem 5.2, two layers",
           "N E||y - y_hat||^2 / ||y_hat||^2 = pi - 1; sin(theta) <= "
           "sqrt((pi - 1) / (N delta)) with probability 1 - delta"),
    "T4": ("5", "Theorem 5.3, many layers",
           "the angle shrinks like N^(-1/2) and grows with depth"),
    "T5": ("5", "Theorem 5.4, input vs limit",
           "cos(alpha) >= 1 - <x, Delta>/||x||^2 >= 1 - ||Delta||/||x||; "
           "cos(alpha) falls as the kernel grows"),
    "T6": ("5", "max-pooling channel-mean net vs the L2 limit",
           "the angle falls far below the input-limit angle as the width "
           "grows"),
    "T7": ("5, extension", "the infinite-width law of the Figs. 8-9 "
           "network (max pooling)",
           "the conv output converges to a Gaussian process, the channel "
           "mean to a fixed image; the kernel at the N^(-1/2) rate, SSIM "
           "and |r| in distribution, Fig. 8's plateaus as predicted"),
}
# Checks beyond the paper's own claims (the report marks them).
EXTENSIONS = frozenset({"T7"})

EXPERIMENT_PACKAGES = ("experiments", "theory_checks")


# The paper's place for each claim.
PAPER_REF = {
    "S3a": "Sec. 3, Fig. 5(a)", "S3b": "Sec. 3, Fig. 5(b)",
    "S3c": "Sec. 3, Fig. 5(c)", "S3d": "Sec. 3.2", "S3e": "Sec. 3.2",
    "S3f": "Sec. 3.3", "S3g": "Sec. 3.3, Fig. 6",
    "S4a": "Sec. 4.1, Fig. 7 row 1", "S4b": "Sec. 4.1, Fig. 7 row 2",
    "S4c": "Sec. 4.2, Figs. 8-9 (a)", "S4d": "Sec. 4.2, Figs. 8-9 (b)",
    "S4e": "Sec. 4.2, Fig. 10", "S4f": "Sec. 4.3",
    "T1": "Sec. 5, Thm 5.1 / A.1", "T2": "App. A, Thm A.7",
    "T3": "Sec. 5, Thm 5.2 / A.3", "T4": "Sec. 5, Thm 5.3 / A.5",
    "T5": "Sec. 5, Thm 5.4 / A.6", "T6": "Sec. 5 vs Figs. 8-9",
    "T7": "extends Sec. 5 to Figs. 8-10",
}
# Presets whose Section 3 and 4 verdicts only show that the machinery ran.
SMOKE_PRESETS = ("quick", "tiny")


@dataclass
class ClaimResult:
  """One claim's verdict. ``measured`` holds every number; ``summary`` one
  sentence with the deciding numbers against ``rule``.

  ``status`` is what the experiment says: ``measured`` (``holds`` decides),
  ``partial`` (out of time), ``needs weights``, ``inconclusive`` (with
  ``reason``) or ``not implemented``; :func:`finalise` turns it into the
  report's status (:data:`randconv.report.STATUSES`). ``deciding``: a small
  table of the deciding numbers; ``sensitivity``: rows ``{"reading",
  "summary", "status"}`` with the verdict under another reading of the
  paper; ``explanation``: what theory or an independent check says.
  """

  id: str
  claim: str
  measured: dict | str | None
  holds: bool | None
  status: str = "measured"
  figures: list[str] = field(default_factory=list)
  summary: str = ""
  rule: str = ""
  reason: str = ""
  deciding: dict = field(default_factory=dict)
  sensitivity: list[dict] = field(default_factory=list)
  explanation: str = ""

  def as_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d.update(paper_ref=PAPER_REF.get(self.id, ""),
             title=CATALOG[self.id][1] if self.id in CATALOG else "",
             extension=self.id in EXTENSIONS)
    return d


def final_status(r: ClaimResult, preset: str) -> str:
  """The report's status of an experiment's result at ``preset``."""
  if r.status in ("not implemented", "partial"):
    return r.status
  if preset in SMOKE_PRESETS and r.id.startswith("S"):
    return "smoke"
  if r.status in ("needs weights", "inconclusive"):
    return r.status
  if r.holds is None:
    return "partial"
  return "holds" if r.holds else "does not hold"


def finalise(r: ClaimResult, preset: str, run_dir: Path) -> dict:
  """The claims.json entry of a result: final status, figures relative to
  the run folder."""
  from randconv import report
  d = r.as_dict()
  d["status"] = final_status(r, preset)
  if d["status"] == "smoke":
    d["explanation"] = ""  # not evidence: nothing to explain
  d["figures"] = report.relative_figures(r.figures, run_dir)
  return d


@dataclass
class Experiment:
  name: str
  ids: tuple[str, ...]
  title: str
  run: Callable[[str, Path], list[ClaimResult]]


REGISTRY: dict[str, Experiment] = {}


def register(*ids: str, title: str = "", name: str | None = None):
  """Registers ``run(preset, workdir) -> list[ClaimResult]`` for claim ids."""
  for i in ids:
    if i not in CATALOG:
      raise KeyError(f"{i} is not in the claim catalog")

  def deco(fn):
    key = name or fn.__name__
    REGISTRY[key] = Experiment(key, tuple(ids), title or fn.__doc__ or key, fn)
    return fn

  return deco


def claim_text(claim_id: str) -> str:
  return CATALOG[claim_id][2]


def load_experiments() -> None:
  for pkg in EXPERIMENT_PACKAGES:
    try:
      importlib.import_module(pkg)
    except ModuleNotFoundError as e:
      if e.name != pkg:
        raise


def not_implemented(claim_id: str) -> ClaimResult:
  return ClaimResult(claim_id, claim_text(claim_id), None, None,
                     status="not implemented")


def reproduce(preset: str, out: Path, only: list[str] | None = None,
              log=sys.stderr) -> list[dict]:
  """Runs every registered experiment (or those covering ``only``) and
  writes the reports after each one (:mod:`randconv.report`). Returns
  every catalog claim's claims.json entry."""
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; choose {', '.join(PRESETS)}")
  load_experiments()
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  results: dict[str, ClaimResult] = {}
  wanted = set(only) if only else None
  start = time.time()
  timings: dict[str, float] = {}
  final = []
  for exp in REGISTRY.values():
    if wanted is not None and not wanted & set(exp.ids):
      continue
    print(f"[reproduce] {exp.name} ({', '.join(exp.ids)}): {exp.title}",
          file=log, flush=True)
    t0 = time.time()
    for r in exp.run(preset, out / exp.name):
      results[r.id] = r
    timings[exp.name] = round(time.time() - t0, 1)
    final = write_report(out, preset, _all(results, wanted),
                         time.time() - start, timings)
  return final or write_report(out, preset, _all(results, wanted),
                               time.time() - start, timings)


def _all(results: dict[str, ClaimResult], wanted) -> list[ClaimResult]:
  covered = {i for e in REGISTRY.values() for i in e.ids}
  out = []
  for i in CATALOG:
    if wanted is not None and i not in wanted:
      continue
    if i in results:
      out.append(results[i])
    elif i in covered:  # its experiment has not run (yet) in this invocation
      out.append(ClaimResult(i, claim_text(i), None, None, status="partial",
                             reason="not run yet: run the same command "
                                    "again to finish"))
    else:
      out.append(not_implemented(i))
  return out


def write_report(out: Path, preset: str, results: list[ClaimResult],
                 seconds: float = 0.0,
                 timings: dict[str, float] | None = None) -> list[dict]:
  """Writes claims.json, run.json (with each experiment's seconds in this
  invocation), report.md and report.html; returns the claims.json
  entries."""
  from randconv import report
  claims = [finalise(r, preset, out) for r in results]
  meta = report.run_metadata(preset, seconds)
  meta["experiment_seconds"] = dict(timings or {})
  report.write(out, claims, meta)
  return claims
