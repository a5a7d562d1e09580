"""Checks T1 and T2: the width-N channel-mean output converges to the
L2-pooling limit (Theorem 5.1 / A.1) and to the average-pooling limit
(Theorem A.7) at the N^(-1/2) rate; each limit computed two ways, and the
sampler checked against the library's own network."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from randconv.deadline import NO_DEADLINE, Deadline
from theory_checks.common import (
  SLOPE_RANGE,
  CheckResult,
  convergence_holds,
  fit_slopes,
  loglog_slope,
  plot_angles,
)
from theory_checks.sweep import ROOT_SEEDS, Run, angle_summary, plot_images

AGREE_TOL = 1e-6             # two computations of one limit, relative
ENGINE_Z = 4.0               # sampler vs library network, |z| of the means


_LIMITS = {  # per pooling: the limit and how its two computations differ
    "l2": ("the L2-pooling limit (Theorem 5.1)",
           "energy recursion vs explicit route counts"),
    "avg": ("the average-pooling limit (Theorem A.7)",
            "banded vs full covariance recursion")}


def _limit_pair(run: Run, spec, pooling: str) -> tuple[np.ndarray, float]:
  """The fast limits of the inputs, and their largest difference from the
  slow computation's relative to its largest value."""
  from theory_checks import limits, routes
  if pooling == "l2":
    fast, slow = limits.energy_limit, routes.route_limit
  else:
    fast, slow = limits.covariance_limit, routes.full_covariance_limit
  lim_fast, lim_slow = run.limits(fast, spec), run.limits(slow, spec)
  agree = float(np.max(np.abs(lim_fast - lim_slow)) / np.max(np.abs(lim_slow)))
  return lim_fast, agree


def _engine_z(a_by_n: dict, b_by_n: dict, widths) -> float:
  """The largest |z| between two engines' mean angles, over images and
  ``widths``."""
  zs = []
  for n in widths:
    a, b = a_by_n[n], b_by_n[n]
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    zs.append(np.abs(a.mean(0) - b.mean(0)) / se)
  return float(np.max(zs))


def _convergence(check_id: str, pooling: str, preset, workdir: Path,
                 limit_fn=None, deadline: Deadline = NO_DEADLINE
                 ) -> CheckResult:
  """T1 or T2: the sampler's angle to ``pooling``'s limit (``limit_fn``'s
  where given) shrinks like N^(-1/2)."""
  from randconv.spec import make_spec
  run = Run.begin(check_id, preset, workdir, deadline)
  p = run.p
  spec0 = make_spec("vgg16", p.layer, output="mean", pooling=pooling)
  lim, agree = _limit_pair(run, spec0, pooling)
  if limit_fn is not None:
    lim = run.limits(limit_fn, spec0)
  specs = lambda n: make_spec("vgg16", p.layer, output="mean",
                              pooling=pooling, width=n)
  config = run.config(pooling=pooling, layer=p.layer, seeds=p.seeds,
                      small_seeds=p.small_seeds, fit_min=p.fit_min,
                      wrong_limit=limit_fn is not None)
  keep = (p.widths[0], p.widths[len(p.widths) // 2], p.widths[-1])
  # T1 and T2 use different root seeds, so that they are independent.
  ang = run.sweep(config, specs, lim, p.widths, keep_samples=keep)
  # The sampler against the library's own network, at widths where the
  # sampler draws most layers from their Gram matrices (fan-in > pixels).
  # Another root seed: the two engines' draws are independent.
  lib = run.sweep(config, specs, lim, p.engine_widths, tag="library",
                  engine="library", seed=ROOT_SEEDS[check_id] + 100)
  engine_z = _engine_z(ang, lib, p.engine_widths)
  slopes = fit_slopes(ang, p.fit_min)
  measured = _convergence_measured(run, pooling, ang, slopes, agree,
                                   engine_z)
  holds = convergence_holds(slopes) and agree <= AGREE_TOL and \
      engine_z <= ENGINE_Z
  what, how = _LIMITS[pooling]
  return run.result(
      f"the angle between the width-N output and {what} shrinks like "
      "N^(-1/2)",
      measured,
      f"every per-image log-log slope over N >= {p.fit_min} "
      f"({p.seeds} nets per N) in [{SLOPE_RANGE[0]}, {SLOPE_RANGE[1]}]; "
      f"{how} agree to {AGREE_TOL:g}; sampler vs library network |z| <= "
      f"{ENGINE_Z:g} at N in {list(p.engine_widths)}", holds,
      _convergence_figures(run, pooling, ang, lim, keep, measured))


def _convergence_measured(run: Run, pooling: str, ang, slopes, agree: float,
                          engine_z: float) -> dict:
  """T1's or T2's numbers: the slopes, the mean angle by width, the two
  limits' agreement, the engines' |z| and the norm ratio at the largest N."""
  from theory_checks import montecarlo as mc
  p = run.p
  ws, means, _ = angle_summary(ang)
  ratio = mc.read_norm_ratio(run.workdir / "metrics.jsonl", "sampler",
                             p.widths[-1])
  return {
      "network": f"vgg16 {p.layer}, channel mean, {pooling} pooling, "
                 f"{p.size}x{p.size}",
      "slope_per_image": {nm: round(float(s), 3) for nm, s in
                          zip(run.names, slopes)},
      "slope_pooled": round(loglog_slope(
          [n for n in ws if n >= p.fit_min],
          [m for n, m in zip(ws, means) if n >= p.fit_min]), 3),
      "mean_angle": {str(n): round(float(m), 4) for n, m in zip(ws, means)},
      "seeds_per_width": {str(n): int(ang[n].shape[0]) for n in ws},
      "limit_agreement": agree, "limit_agreement_how": _LIMITS[pooling][1],
      "engine_max_z": round(engine_z, 2),
      "norm_ratio_at_max_N": round(float(np.mean(ratio)), 4)
                             if ratio is not None else None,
  }


def _convergence_figures(run: Run, pooling: str, ang, lim, keep,
                         measured: dict) -> list[Path]:
  """The angle against width, and the inputs beside their limits and the
  finite-width outputs kept at the widths ``keep``."""
  from theory_checks import montecarlo as mc
  what = _LIMITS[pooling][0]
  figs = [plot_angles(run.workdir / "angles.png",
                      {"mean over nets and images": angle_summary(ang)},
                      f"{run.id}: angle to {what}\n{measured['network']}",
                      caption=f"{run.id}: the angle between the width-N "
                      f"output and {what} against N (log-log), mean over "
                      "nets and images with standard errors; dotted: the "
                      "N^(-1/2) rate.")]
  samples = mc.load_samples(run.workdir / "samples", "sampler", keep)
  if samples:
    figs.append(plot_images(
        run.workdir / "images.png", run.x, run.names, lim, samples,
        f"{run.id}: input, limit ({pooling}), finite-width outputs (one "
        "net each)\ngrey panels min-max scaled",
        caption=f"{run.id}: per input (row), the input, {what} and one "
        "net's output at each width N, grey panels min-max scaled; titles "
        "give the angle (rad) to the grey input (limit) or to the limit "
        "(outputs)."))
  return figs


def t1(preset, workdir: Path, limit_fn=None, *,
       deadline: Deadline = NO_DEADLINE) -> CheckResult:
  """T1: convergence to the L2-pooling limit (Theorem 5.1 / A.1)."""
  return _convergence("T1", "l2", preset, workdir, limit_fn, deadline)


def t2(preset, workdir: Path, limit_fn=None, *,
       deadline: Deadline = NO_DEADLINE) -> CheckResult:
  """T2: convergence to the average-pooling limit (Theorem A.7)."""
  return _convergence("T2", "avg", preset, workdir, limit_fn, deadline)
