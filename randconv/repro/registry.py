"""Claims, experiments and the runner behind ``randconv reproduce``, with no
knowledge of any paper: the claims and the experiments are plugins.

Two entry-point groups (``pyproject.toml``, read with
:func:`importlib.metadata.entry_points`) name them:

* ``randconv.claims``: tables of :class:`Claim` (the project's:
  ``experiments.catalog:CLAIMS``);
* ``randconv.experiments``: tables of :class:`Experiment`, each a
  ``run(config, workdir, deadline) -> list[ClaimResult]`` for one or more
  claim ids and a ``configure(preset, settings) -> config`` that builds its
  config (a frozen dataclass) for a preset::

    EXPERIMENTS = registry.Table()

    @EXPERIMENTS.add("S4c", "S4d", title="Conv1-DeConv1 width sweep",
                     configure=width_config)
    def run_width_sweep(cfg, workdir, deadline): ...

An entry point that cannot be imported is an error naming it, never a
silent skip. ``reproduce`` runs every experiment (or those covering
``--only``) in ``OUT/<name>/`` under one :class:`~randconv.deadline.
Deadline` and writes ``claims.json``, ``report.md`` and ``report.html``
(:mod:`randconv.repro.report`) after each one, so an interrupted run keeps
what it finished. A claim no experiment covers is listed as "not
implemented", never with a number."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from randconv import distributed, progress
from randconv import settings as settings_lib
from randconv.deadline import Deadline
from randconv.errors import RandconvError
from randconv.repro import plugins

PRESETS = ("quick", "cpu", "paper")
CLAIMS_GROUP = "randconv.claims"
EXPERIMENTS_GROUP = "randconv.experiments"


class RegistryError(RandconvError):
  """An unknown claim id or preset, or an experiment for no claim."""


@dataclass(frozen=True)
class Claim:
  """One claim of the catalog: ``section``, a ``title`` naming the figure or
  table, the ``claim`` as the paper states it, the paper's place
  (``paper_ref``) and whether it goes beyond the paper (``extension``)."""

  id: str
  section: str
  title: str
  claim: str
  paper_ref: str = ""
  extension: bool = False


@dataclass
class ClaimResult:
  """One claim's verdict. ``measured`` holds every number; ``summary`` one
  sentence with the deciding numbers against ``rule``.

  ``status`` is what the experiment says: ``measured`` (``holds`` decides),
  ``partial`` (out of time), ``needs weights``, ``inconclusive`` (with
  ``reason``) or ``not implemented``; :func:`finalise` turns it into the
  report's status (:data:`randconv.repro.report.STATUSES`). ``deciding``: a
  small table of the deciding numbers; ``sensitivity``: rows ``{"reading",
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
    c = catalog().get(self.id)
    d.update(paper_ref=c.paper_ref if c else "", title=c.title if c else "",
             extension=bool(c and c.extension))
    return d


def final_status(r: ClaimResult, smoke: bool = False) -> str:
  """The report's status of an experiment's result; ``smoke``: the run was
  too small to be evidence (its experiment's smoke presets)."""
  if r.status in ("not implemented", "partial"):
    return r.status
  if smoke:
    return "smoke"
  if r.status in ("needs weights", "inconclusive"):
    return r.status
  if r.holds is None:
    return "partial"
  return "holds" if r.holds else "does not hold"


def finalise(r: ClaimResult, run_dir: Path, smoke: bool = False) -> dict:
  """The claims.json entry of a result: final status, figures relative to
  the run folder."""
  from randconv.repro import report
  d = r.as_dict()
  d["status"] = final_status(r, smoke)
  if d["status"] == "smoke":
    d["explanation"] = ""  # not evidence: nothing to explain
  d["figures"] = report.relative_figures(r.figures, run_dir)
  return d


# --------------------------------------------------------------------------
# Plugins.

@dataclass(frozen=True)
class Experiment:
  """One experiment: ``run(config, workdir, deadline)`` decides ``ids``;
  ``configure(preset, settings)`` gives its config; its verdicts at a
  preset in ``smoke_presets`` only show that the machinery ran."""

  name: str
  ids: tuple[str, ...]
  title: str
  run: Callable[[Any, Path, Deadline], list[ClaimResult]]
  configure: Callable[[str, settings_lib.Settings], Any]
  smoke_presets: tuple[str, ...] = ()


class Table(list):
  """A module's list of experiments, filled by the :meth:`add` decorator."""

  def add(self, *ids: str, title: str, configure, name: str | None = None,
          smoke_presets: tuple[str, ...] = ()):
    def deco(fn):
      self.append(Experiment(name or fn.__name__, tuple(ids), title, fn,
                             configure, tuple(smoke_presets)))
      return fn
    return deco


def _load_group(group: str) -> list:
  return [item for _, table in plugins.load(group) for item in table]


@functools.cache
def catalog() -> dict[str, Claim]:
  """Every claim of the ``randconv.claims`` plugins, by id."""
  return {c.id: c for c in _load_group(CLAIMS_GROUP)}


@functools.cache
def experiments() -> dict[str, Experiment]:
  """Every experiment of the ``randconv.experiments`` plugins, by name."""
  out = {}
  known = catalog()
  for exp in _load_group(EXPERIMENTS_GROUP):
    unknown = [i for i in exp.ids if i not in known]
    if unknown:
      raise RegistryError(f"experiment {exp.name} decides {unknown[0]}, "
                          "which no claims table lists")
    out[exp.name] = exp
  return out


def claim_text(claim_id: str) -> str:
  return catalog()[claim_id].claim


def check_ids(ids) -> list[str]:
  """``ids`` if all are catalog claims, else a :class:`RegistryError`
  listing the valid ones."""
  known = catalog()
  bad = [i for i in ids if i not in known]
  if bad:
    raise RegistryError(f"unknown claim id {bad[0]}; choose from "
                        f"{', '.join(known)}")
  return list(ids)


def preset_config(default, overrides: dict[str, dict], preset: str,
                  **fields):
  """``default`` (a frozen dataclass, the cpu preset's values unless said)
  with ``overrides[preset]`` and then ``fields`` replaced: the flax
  examples' ``configs/default.py`` + ``configs/<preset>.py``, as data."""
  if preset not in overrides:
    raise RegistryError(f"unknown preset {preset!r}; choose "
                        f"{', '.join(overrides)}")
  try:
    return dataclasses.replace(default, **{**overrides[preset], **fields})
  except TypeError as e:
    raise RegistryError(f"bad config field for {type(default).__name__}: "
                        f"{e}") from None


def not_implemented(claim_id: str) -> ClaimResult:
  return ClaimResult(claim_id, claim_text(claim_id), None, None,
                     status="not implemented")


# --------------------------------------------------------------------------
# The runner.

def reproduce(preset: str, out: Path, only: list[str] | None = None, *,
              settings: settings_lib.Settings | None = None,
              deadline: Deadline | None = None, log=sys.stderr
              ) -> list[dict]:
  """Runs every experiment (or those covering ``only``) under one deadline
  (``settings.time_budget_s`` from now unless given) and writes the reports
  after each one (:mod:`randconv.repro.report`). Returns every catalog claim's
  claims.json entry."""
  if preset not in PRESETS:
    raise RegistryError(f"unknown preset {preset!r}; choose "
                        f"{', '.join(PRESETS)}")
  wanted = set(check_ids(only)) if only else None
  settings = settings or settings_lib.current()
  if deadline is None:
    deadline = Deadline.after(settings.time_budget_s)
  out = Path(out)
  if distributed.is_main():
    out.mkdir(parents=True, exist_ok=True)
  results: dict[str, dict] = {}
  start = time.time()
  timings: dict[str, float] = {}
  final: list[dict] = []
  for exp in experiments().values():
    if wanted is not None and not wanted & set(exp.ids):
      continue
    if not progress.quiet():  # process 0, not --json
      print(f"[reproduce] {exp.name} ({', '.join(exp.ids)}): {exp.title}",
            file=log, flush=True)
    t0 = time.time()
    config = exp.configure(preset, settings)
    _write_config(out / exp.name, exp, preset, config)
    smoke = preset in exp.smoke_presets
    for r in exp.run(config, out / exp.name, deadline):
      results[r.id] = finalise(r, out, smoke)
    timings[exp.name] = round(time.time() - t0, 1)
    final = write_report(out, preset, _all(results, wanted),
                         time.time() - start, timings)
  # Written after each experiment; again only when none ran.
  return final or write_report(out, preset, _all(results, wanted),
                               time.time() - start, timings)


def _write_config(workdir: Path, exp: Experiment, preset: str, config
                  ) -> None:
  """``experiment.json``: the experiment's whole config dataclass, so that
  a reader can rebuild and rerun it (``type(config)(**fields)``)."""
  from randconv.rundir import canonical, write_atomic
  if not distributed.is_main():
    return
  workdir.mkdir(parents=True, exist_ok=True)
  fields = dataclasses.asdict(config) if dataclasses.is_dataclass(config) \
      else config
  write_atomic(workdir / "experiment.json", json.dumps(canonical({
      "experiment": exp.name, "claims": list(exp.ids), "preset": preset,
      "config_class": f"{type(config).__module__}.{type(config).__name__}",
      "config": fields}), indent=1) + "\n")


def _all(results: dict[str, dict], wanted) -> list[dict]:
  """claims.json entries for every wanted catalog claim."""
  covered = {i for e in experiments().values() for i in e.ids}
  out = []
  for i in catalog():
    if wanted is not None and i not in wanted:
      continue
    if i in results:
      out.append(results[i])
      continue
    if i in covered:  # its experiment has not run (yet) in this invocation
      r = ClaimResult(i, claim_text(i), None, None, status="partial",
                      reason="not run yet: run the same command again to "
                             "finish")
    else:
      r = not_implemented(i)
    out.append(finalise(r, Path(".")))
  return out


def write_report(out: Path, preset: str, claims: list,
                 seconds: float = 0.0,
                 timings: dict[str, float] | None = None,
                 smoke: bool = False) -> list[dict]:
  """Writes claims.json, run.json (with each experiment's seconds in this
  invocation), report.md and report.html; returns the claims.json entries.
  ``claims`` are entries or :class:`ClaimResult` (finalised here)."""
  from randconv.repro import report
  claims = [finalise(c, out, smoke) if isinstance(c, ClaimResult) else c
            for c in claims]
  meta = report.run_metadata(preset, seconds)
  meta["experiment_seconds"] = dict(timings or {})
  report.write(out, claims, meta)
  return claims
