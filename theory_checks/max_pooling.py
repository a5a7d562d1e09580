"""Check T6: the experiments' own network (max pooling) against the
L2-pooling limit: its angle to that limit falls far below the grey input's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from randconv.deadline import NO_DEADLINE, Deadline
from theory_checks.common import CheckResult, grey_of, plot_angles
from theory_checks.sweep import Run, angle_summary

T6_RATIO = 1 / 3             # "far below": angle at the largest N / input angle
LEVEL_SLOPE = -0.2           # T6: the angle has levelled off once its
                             # local log-log slope is shallower than this


def t6(preset, workdir: Path, *,
       deadline: Deadline = NO_DEADLINE) -> CheckResult:
  """T6: max pooling's angle to the L2 limit falls far below the input's."""
  from randconv.spec import make_spec
  from theory_checks import limits
  run = Run.begin("T6", preset, workdir, deadline)
  p = run.p
  lim = run.limits(limits.energy_limit, make_spec(
      "vgg16", p.t6_layer, output="mean", pooling="l2"))
  base = np.array([float(limits.angle(grey_of(xi), li))
                   for xi, li in zip(run.x, lim)])
  config = run.config(layer=p.t6_layer, seeds=p.seeds,
                      small_seeds=p.small_seeds)
  specs = lambda n: make_spec("vgg16", p.t6_layer, output="mean",
                              pooling="max", width=n)
  ang = run.sweep(config, specs, lim, p.t6_widths)
  measured, ratio = _t6_measured(run, ang, base)
  fig = plot_angles(run.workdir / "angles.png",
                    {"max pooling vs L2 limit": angle_summary(ang)},
                    "T6: the experiment's network (max pooling) vs the L2 "
                    "limit", hline={"input vs limit (mean)": float(
                        base.mean())},
                    caption="T6: the angle between the max-pooling "
                    "channel-mean net's output and the L2 limit against N "
                    "(log-log), mean over nets and images; dash-dot: the "
                    "grey input's angle to that limit.")
  return run.result(
      "the max-pooling channel-mean network's angle to the L2 limit falls far "
      "below the angle between the grey input and that limit",
      measured,
      f"for every input, mean angle at N = {max(ang)} < {T6_RATIO:.2f} x the "
      f"input-limit angle; levelling off reported where the local log-log "
      f"slope is above {LEVEL_SLOPE}",
      bool(np.all(ratio < T6_RATIO)), [fig])


def _t6_measured(run: Run, ang: dict, base: np.ndarray
                 ) -> tuple[dict, np.ndarray]:
  """T6's numbers, and per input the mean angle at the largest width over
  the input-limit angle ``base``."""
  ws = sorted(ang)
  per_image = np.stack([ang[n].mean(axis=0) for n in ws])  # [W, B]
  ratio = per_image[-1] / base
  local = np.diff(np.log(per_image), axis=0) / np.diff(np.log(ws))[:, None]
  names = run.names
  level = {}
  for b, name in enumerate(names):
    flat = [ws[i + 1] for i in range(len(ws) - 1)
            if local[i, b] > LEVEL_SLOPE]
    level[name] = flat[0] if flat else None
  return {
      "network": f"vgg16 {run.p.t6_layer}, channel mean, max pooling, "
                 f"{run.p.size}x{run.p.size}",
      "input_limit_angle": {n: round(float(v), 4)
                            for n, v in zip(names, base)},
      "angle_by_width": {str(n): [round(float(v), 4) for v in per_image[i]]
                         for i, n in enumerate(ws)},
      "ratio_at_max_N": {n: round(float(v), 3) for n, v in zip(names, ratio)},
      "levels_off_from_N": level,
      "last_local_slope": {n: round(float(v), 3)
                           for n, v in zip(names, local[-1])}}, ratio
