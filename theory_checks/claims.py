"""Registers checks T1-T6 as claims of ``randconv reproduce``.

Kept apart from :mod:`theory_checks.checks` so that importing the package
(which every ``randconv`` command does) stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

from randconv.registry import ClaimResult, claim_text, register


def _claim(result, workdir: Path) -> ClaimResult:
  measured = dict(result.measured)
  measured["tolerance"] = result.tolerance
  figures = [os.path.relpath(f, Path(workdir).parent) for f in result.figures]
  return ClaimResult(result.id, claim_text(result.id), measured,
                     result.holds, figures=figures)


def _make(check_id: str, title: str):
  def run(preset: str, workdir: Path) -> list[ClaimResult]:
    from theory_checks import checks
    return [_claim(checks.CHECKS[check_id](preset, workdir), workdir)]
  run.__name__ = f"theory_{check_id.lower()}"
  register(check_id, title=title, name=run.__name__)(run)
  return run


theory_t1 = _make("T1", "Section 5: angle to the L2 limit vs width")
theory_t2 = _make("T2", "Section 5: angle to the average-pooling limit vs "
                  "width")
theory_t3 = _make("T3", "Theorem 5.2: the two-layer identity and bound")
theory_t4 = _make("T4", "Theorem 5.3: convergence at depths 2..8")
theory_t5 = _make("T5", "Theorem 5.4: input vs limit, kernel sizes")
theory_t6 = _make("T6", "max-pooling network vs the L2 limit")
