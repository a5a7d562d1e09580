"""The registry of the paper's experiments and claims, and the runner behind
``randconv reproduce``.

Every claim the project must check is listed in :data:`CATALOG` (SPEC
sections 2 and 3). An experiment module registers a run function for one or
more claim ids::

    @register("S4c", "S4d", title="Conv1-DeConv1 width sweep")
    def width_sweep(preset: str, workdir: Path) -> list[ClaimResult]: ...

``reproduce`` imports the packages that hold experiments (``experiments``,
``theory_checks``), runs every registered experiment in ``OUT/<name>/`` and
writes ``claims.json``, ``report.md`` and ``report.html`` after each one, so an
interrupted run keeps what it finished. A claim no experiment covers is listed
as "not implemented", never with a number.
"""

from __future__ import annotations

import dataclasses
import html
import importlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PRESETS = ("quick", "cpu", "paper")

# id -> (section, what, claim); the paper's claims as SPEC 2 and 3 state them.
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
}

EXPERIMENT_PACKAGES = ("experiments", "theory_checks")


@dataclass
class ClaimResult:
  """One claim's verdict. ``measured`` holds the numbers that decide it."""

  id: str
  claim: str
  measured: dict | str | None
  holds: bool | None
  status: str = "measured"  # measured | not implemented | needs weights
  figures: list[str] = field(default_factory=list)

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


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
              log=sys.stderr) -> list[ClaimResult]:
  """Runs every registered experiment (or those covering ``only``) and
  writes the report. Returns every catalog claim's result."""
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; choose {', '.join(PRESETS)}")
  load_experiments()
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  results: dict[str, ClaimResult] = {}
  timings: dict[str, float] = {}
  wanted = set(only) if only else None
  for exp in REGISTRY.values():
    if wanted is not None and not wanted & set(exp.ids):
      continue
    print(f"[reproduce] {exp.name} ({', '.join(exp.ids)}): {exp.title}",
          file=log, flush=True)
    start = time.time()
    for r in exp.run(preset, out / exp.name):
      results[r.id] = r
    timings[exp.name] = time.time() - start
    write_report(out, preset, _all(results, wanted), timings)
  final = _all(results, wanted)
  write_report(out, preset, final, timings)
  return final


def _all(results: dict[str, ClaimResult], wanted) -> list[ClaimResult]:
  return [results.get(i) or not_implemented(i) for i in CATALOG
          if wanted is None or i in wanted]


def _verdict(r: ClaimResult) -> str:
  if r.holds is None:
    return r.status
  return "holds" if r.holds else "does not hold"


def write_report(out: Path, preset: str, results: list[ClaimResult],
                 timings: dict[str, float]) -> None:
  (out / "claims.json").write_text(json.dumps(
      [r.as_dict() for r in results], indent=1, default=float) + "\n")
  lines = [f"# randconv reproduce, preset `{preset}`", "",
           "| id | claim | verdict | measured |", "|---|---|---|---|"]
  for r in results:
    measured = json.dumps(r.measured, default=float) if r.measured else ""
    lines.append(f"| {r.id} | {r.claim} | {_verdict(r)} | {measured} |")
  lines += ["", "Run times: " + ", ".join(
      f"{k} {v:.0f} s" for k, v in timings.items())]
  figures = [(r.id, f) for r in results for f in r.figures]
  if figures:
    lines += ["", "## Figures", ""] + [f"![{i}]({f})" for i, f in figures]
  (out / "report.md").write_text("\n".join(lines) + "\n")
  rows = "".join(
      f"<tr><td>{r.id}</td><td>{html.escape(r.claim)}</td>"
      f"<td class='{_verdict(r).replace(' ', '-')}'>{_verdict(r)}</td>"
      f"<td><code>{html.escape(json.dumps(r.measured, default=float)) if r.measured else ''}</code></td></tr>"
      for r in results)
  imgs = "".join(f"<figure><img src='{html.escape(f)}' width=600>"
                 f"<figcaption>{i}</figcaption></figure>" for i, f in figures)
  (out / "report.html").write_text(
      "<!doctype html><meta charset=utf-8><title>randconv reproduce</title>"
      "<style>body{font-family:sans-serif}td{border:1px solid #ccc;"
      "padding:4px;vertical-align:top}.holds{color:green}"
      ".does-not-hold{color:#b00}code{font-size:80%}</style>"
      f"<h1>randconv reproduce, preset {preset}</h1><table><tr><th>id</th>"
      f"<th>claim</th><th>verdict</th><th>measured</th></tr>{rows}</table>"
      f"{imgs}\n")
