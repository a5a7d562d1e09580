"""Check T4: Theorem 5.3, many layers: the angle to the limit shrinks like
N^(-1/2) at every depth and, at a fixed width, grows with depth."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from randconv.deadline import NO_DEADLINE, Deadline
from theory_checks.common import (
  SLOPE_RANGE,
  CheckResult,
  convergence_holds,
  fit_slopes,
  plot_angles,
)
from theory_checks.sweep import Run

DEPTH_Z, DEPTH_RHO = 3.0, 0.8  # T4: "grows with depth"


def stack_spec(depth: int, width: int, kernel: int = 3):
  """The depth-``depth`` Section 5 network without pooling: ``depth - 1``
  stride-1 "same" convs and the channel mean (depth 2 is Theorem 5.2's)."""
  from randconv.spec import ChannelMean, Conv, Crop, NetSpec
  convs, c = [], 3
  for i in range(1, depth):
    convs.append(Conv(f"conv{i}", c, width, kernel, 1, kernel // 2))
    c = width
  return NetSpec("stack", f"depth{depth}", tuple(convs),
                 (ChannelMean(), Crop()))


def t4(preset, workdir: Path, *,
       deadline: Deadline = NO_DEADLINE) -> CheckResult:
  """T4: the angle shrinks like N^(-1/2) at every depth, grows with depth."""
  from theory_checks import limits
  run = Run.begin("T4", preset, workdir, deadline)
  p = run.p
  depths = list(range(2, p.t4_depth + 1))
  lim = np.stack([np.stack([limits.energy_limit(stack_spec(d, 1), xi)
                            for d in depths])
                  for xi in run.x])                          # [B, D, H, W]
  config = run.config(depth=p.t4_depth, seeds=p.seeds,
                      small_seeds=p.small_seeds)
  ang = run.sweep(config, lambda n: stack_spec(p.t4_depth, n), lim,
                  p.t4_widths, every_depth=True)             # {N: [S, B, D]}
  slopes = fit_slopes(ang, p.fit_min)                        # [B, D]
  ws = sorted(ang)
  by_depth = {n: ang[n].mean(axis=(0, 1)) for n in ws}       # [D]
  growth, grows = _depth_growth(ang, by_depth, p.fit_min)
  measured = {
      "network": f"d - 1 stride-1 3x3 convs + channel mean, d = 2.."
                 f"{p.t4_depth}, {p.size}x{p.size}",
      "slope_by_depth": {str(d): [round(float(s), 3) for s in slopes[:, i]]
                         for i, d in enumerate(depths)},
      "slope_range": [round(float(slopes.min()), 3),
                      round(float(slopes.max()), 3)],
      "mean_angle_by_depth": {str(n): [round(float(v), 4)
                                       for v in by_depth[n]] for n in ws},
      **growth,
      "seeds_per_width": {str(n): int(ang[n].shape[0]) for n in ws}}
  fig = plot_angles(run.workdir / "angles.png", _depth_curves(ang, depths),
                    "T4 (Theorem 5.3): angle to the limit, by depth",
                    caption="T4: the angle between the output and its "
                    "limit against N (log-log), one curve per depth, mean "
                    "over nets and images with standard errors; dotted: "
                    "the N^(-1/2) rate.")
  return run.result(
      "for depths 2.. the angle shrinks like N^(-1/2), and at a fixed N it "
      "grows with depth",
      measured,
      f"every depth's and image's slope over N >= {p.fit_min} in "
      f"[{SLOPE_RANGE[0]}, {SLOPE_RANGE[1]}]; at every N >= {p.fit_min}: "
      f"angle(depth {p.t4_depth}) - angle(depth 2) > {DEPTH_Z:g} standard "
      f"errors (paired nets) and Spearman(depth, mean angle) >= {DEPTH_RHO}",
      convergence_holds(slopes) and grows, [fig])


def _depth_growth(ang: dict, by_depth: dict, fit_min: int
                  ) -> tuple[dict, bool]:
  """Whether the angle grows with depth at each width >= ``fit_min``.

  Each depth adds one layer's fresh randomness on top of the shared lower
  layers, so neighbouring depths differ by a few per cent, within the
  noise of 20 nets; "grows" is judged over the whole depth range: the
  paired difference deepest - shallowest is positive beyond DEPTH_Z
  standard errors, and the rank correlation of depth and angle is high.
  """
  from randconv.metrics import spearman
  grows, gaps, rhos = {}, {}, {}
  for n in sorted(ang):
    if n < fit_min:
      continue
    diff = (ang[n][:, :, -1] - ang[n][:, :, 0]).mean(axis=1)   # [S]
    z = diff.mean() / (diff.std(ddof=1) / math.sqrt(len(diff)))
    rho = spearman(np.arange(len(by_depth[n])), by_depth[n])
    gaps[n], rhos[n] = float(z), float(rho)
    grows[n] = bool(z > DEPTH_Z and rho >= DEPTH_RHO)
  measured = {
      "grows_with_depth": {str(n): g for n, g in grows.items()},
      "deepest_minus_shallowest_z": {str(n): round(v, 1)
                                     for n, v in gaps.items()},
      "spearman_depth_angle": {str(n): round(v, 3) for n, v in rhos.items()}}
  return measured, all(grows.values())


def _depth_curves(ang: dict, depths: list[int]) -> dict[str, tuple]:
  """Per depth: widths, mean angles and their standard errors."""
  ws = sorted(ang)
  curves = {}
  for i, d in enumerate(depths):
    m = [ang[n][:, :, i].mean() for n in ws]
    se = [ang[n][:, :, i].mean(axis=1).std(ddof=1) /
          math.sqrt(ang[n].shape[0]) for n in ws]
    curves[f"depth {d}"] = (ws, m, se)
  return curves
