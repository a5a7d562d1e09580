"""Checks T1-T7: each theorem of Section 5 against Monte Carlo over finite
networks, with its width, number of nets and tolerance stated in its own
module (:mod:`theory_checks.convergence` T1-T2, :mod:`~theory_checks.
two_layer` T3, :mod:`~theory_checks.depth` T4, :mod:`~theory_checks.bounds`
T5, :mod:`~theory_checks.max_pooling` T6, :mod:`~theory_checks.t7` T7) and
their sizes per preset in :mod:`theory_checks.sweep`.

Run them with ``randconv theory --preset cpu`` (its time is in
docs/performance.md) or through ``randconv reproduce``. Every check writes
``config.json`` and ``metrics.jsonl`` (one record per width, so a rerun in
the same folder resumes) and its figures into its own folder. See
``README.md`` beside this file for the theorems and the derivations of T3's
and T5's bounds.
"""

from __future__ import annotations

from pathlib import Path

from randconv.deadline import NO_DEADLINE, Deadline
from theory_checks.bounds import t5
from theory_checks.common import CheckResult
from theory_checks.convergence import t1, t2
from theory_checks.depth import t4
from theory_checks.max_pooling import t6
from theory_checks.sweep import Preset, get_preset  # noqa: F401
from theory_checks.two_layer import t3

# Preset stays importable from here: run folders written before the checks
# had modules of their own name theory_checks.checks.Preset as their config
# class (experiment.json).


def config_for(check_id: str, preset: str):
  """The config of check ``check_id`` at ``preset``:
  :class:`theory_checks.sweep.Preset` for
  T1-T6, :class:`theory_checks.t7.T7Preset` for T7."""
  if check_id == "T7":
    from theory_checks import t7
    return t7.config_for(preset)
  return get_preset(preset)


def t7(preset, workdir: Path, *,
       deadline: Deadline = NO_DEADLINE) -> CheckResult:
  """T7: the infinite-width law of the Figs. 8-9 network (an extension
  beyond the paper; :mod:`theory_checks.t7`)."""
  from theory_checks import t7 as check
  return check.t7(preset, Path(workdir), deadline=deadline)


CHECKS = {"T1": t1, "T2": t2, "T3": t3, "T4": t4, "T5": t5, "T6": t6,
          "T7": t7}


def run_checks(preset: str, out: Path, only=None,
               deadline: Deadline = NO_DEADLINE
               ) -> tuple[list[CheckResult], str | None]:
  """Runs the checks (all, or those in ``only``) into ``out/<id>/`` under
  one deadline. Returns the finished checks' results and, when the deadline
  stopped one, why (the same call resumes it)."""
  from theory_checks.montecarlo import OutOfTime
  out = Path(out)
  results = []
  for cid, fn in CHECKS.items():
    if only and cid not in only:
      continue
    try:
      results.append(fn(config_for(cid, preset), out / cid.lower(),
                        deadline=deadline))
    except OutOfTime as e:
      return results, f"{cid}: {e}"
  return results, None
