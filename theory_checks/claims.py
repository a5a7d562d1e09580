"""Registers checks T1-T7 as claims of ``randconv reproduce``.

Kept apart from :mod:`theory_checks.checks` so that importing the package
(which every ``randconv`` command does) stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from randconv.deadline import Deadline
from randconv.repro.registry import ClaimResult, Table, claim_text


def _claim(result, workdir: Path) -> ClaimResult:
  measured = dict(result.measured)
  measured["tolerance"] = result.tolerance
  return ClaimResult(result.id, claim_text(result.id), measured,
                     result.holds, figures=list(result.figures),
                     summary=summary_of(result.measured),
                     rule=result.tolerance)


def summary_of(measured: dict) -> str:
  """The deciding numbers of a check in one sentence."""
  from theory_checks import t7_cross
  m = measured
  if "slope_per_image" in m:
    s = list(m["slope_per_image"].values())
    return (f"slopes {min(s):+.2f}..{max(s):+.2f}, agree "
            f"{m['limit_agreement']:.0e}, engines |z| {m['engine_max_z']}")
  if "pooled_N_rel_err" in m:
    return (f"N E|y-y^|^2/|y^|^2 = {m['pooled_N_rel_err']:.3f} +- "
            f"{m['pooled_se']:.3f} (pi-1 = 2.142); quantile/bound <= "
            f"{m['worst_quantile_over_bound']:.2f}")
  if "slope_by_depth" in m:
    lo, hi = m["slope_range"]
    last = list(m["mean_angle_by_depth"].values())[-1]
    return (f"slopes {lo:+.2f}..{hi:+.2f}; angle depth 2 -> "
            f"{len(last) + 1}: {last[0]:.3f} -> {last[-1]:.3f}")
  if "cos_alpha" in m:
    return (f"min cos - bound {m['min_gap_cos_minus_middle']:.1e}; falls "
            f"with k: {m['cos_falls_with_kernel']}")
  if "ratio_at_max_N" in m:
    r = list(m["ratio_at_max_N"].values())
    b = list(m["input_limit_angle"].values())
    return (f"angle/input-angle at max N {min(r):.2f}..{max(r):.2f} "
            f"(input angle {min(b):.2f}..{max(b):.2f})")
  if "a_kernel_slope_per_image" in m:
    s = list(m["a_kernel_slope_per_image"].values())
    tests = [t for v in m["b_tests"].values() for t in v.values()]
    conv, mean = m["c_prediction"]["conv"], m["c_prediction"]["mean"]
    zs = [abs(r["z"]) for c in ("c_conv", "c_mean")
          for n, r in m[c]["by_width"].items()
          if int(n) >= m.get("c_fit_min", 64)]
    return (f"(a) kernel error slopes {min(s):+.2f}..{max(s):+.2f}; (b) at "
            f"N = {m['b_width']} min KS p {min(t['ks_p'] for t in tests):.2f}"
            f", max |z| {max(abs(t['z']) for t in tests):.1f}; (c) predicted "
            f"SSIM {conv['ssim_mean']:.3f} (conv) and {mean['ssim_mean']:.3f}"
            f" (mean), measured within {max(zs, default=0):.1f} SE at N >= "
            f"{m.get('c_fit_min', 64)}"
            + (f"; {t7_cross.summary(m['d_cross_image'])}"
               if "d_cross_image" in m else ""))
  return ", ".join(f"{k} {v}" for k, v in m.items()
                   if isinstance(v, (int, float)))[:200]




EXPERIMENTS = Table()


def _make(check_id: str, title: str):
  def configure(preset: str, settings):
    from theory_checks import checks
    return checks.config_for(check_id, preset)

  def run(cfg, workdir: Path, deadline: Deadline) -> list[ClaimResult]:
    from theory_checks import checks
    from theory_checks.montecarlo import OutOfTime
    try:
      result = checks.CHECKS[check_id](cfg, workdir, deadline=deadline)
    except OutOfTime as e:
      return [ClaimResult(check_id, claim_text(check_id), {"partial": str(e)},
                          None, status="partial", reason=str(e))]
    return [_claim(result, workdir)]

  run.__name__ = f"theory_{check_id.lower()}"
  EXPERIMENTS.add(check_id, title=title, configure=configure,
                  name=run.__name__)(run)
  return run


theory_t1 = _make("T1", "Section 5: angle to the L2 limit vs width")
theory_t2 = _make("T2", "Section 5: angle to the average-pooling limit vs "
                  "width")
theory_t3 = _make("T3", "Theorem 5.2: the two-layer identity and bound")
theory_t4 = _make("T4", "Theorem 5.3: convergence at depths 2..8")
theory_t5 = _make("T5", "Theorem 5.4: input vs limit, kernel sizes")
theory_t6 = _make("T6", "max-pooling network vs the L2 limit")
theory_t7 = _make("T7", "extension: the infinite-width law of the Figs. 8-9 "
                  "network (max pooling)")
