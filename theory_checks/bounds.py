"""Check T5: Theorem 5.4, the input against its two-layer limit:
cos(alpha) >= 1 - <x, Delta>/||x||^2 >= 1 - ||Delta||/||x||, and cos(alpha)
falls as the kernel grows. The derivation is in README.md beside this file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from randconv.deadline import NO_DEADLINE, Deadline
from theory_checks.common import PHOTOS_ALL, CheckResult, grey_of
from theory_checks.sweep import Run, get_preset


def t5_bounds(x: np.ndarray, kernel: int, limit: np.ndarray | None = None
              ) -> dict[str, float]:
  """cos(alpha) between a positive grey image ``x`` [H, W] and its
  two-layer limit, and the two lower bounds of Theorem 5.4.

  ``mu`` is the k x k patch mean centred at each pixel with zeros outside
  (the divisor is always k^2); ``Delta = x - mu``.
  """
  from randconv.spec import make_spec
  from theory_checks import limits
  x = np.asarray(x, np.float64)
  if limit is None:
    spec = make_spec("vgg16", "conv1_1", output="mean", kernel_size=kernel)
    limit = limits.energy_limit(spec, x)
  r = kernel // 2
  xp = np.pad(x, r)
  win = np.lib.stride_tricks.sliding_window_view(xp, (kernel, kernel))
  mu = win.sum(axis=(-2, -1)) / kernel ** 2
  delta = x - mu
  nx2 = float(np.sum(x * x))
  return {"cos": float(np.cos(limits.angle(x, limit))),
          "middle": 1 - float(np.sum(x * delta)) / nx2,
          "lower": 1 - float(np.linalg.norm(delta)) / math.sqrt(nx2)}


def t5(preset, workdir: Path, limit_fn=None, *,
       deadline: Deadline = NO_DEADLINE) -> CheckResult:
  """T5: cos(alpha) >= 1 - <x, D>/||x||^2 >= 1 - ||D||/||x||, and cos(alpha)
  falls as the kernel grows."""
  from randconv import images
  run = Run("T5", get_preset(preset), Path(workdir), deadline=deadline)
  p = run.p
  photos = PHOTOS_ALL
  grey = grey_of(images.load_batch(list(photos), p.t5_size))
  table, ok_bound, ok_fall = _t5_table(photos, grey, p.t5_kernels, limit_fn)
  measured = {
      "inputs": f"{len(photos)} offline photos in grey, "
                f"{p.t5_size}x{p.t5_size}",
      "kernels": list(p.t5_kernels),
      "cos_alpha": {n: [round(b["cos"], 5) for b in r]
                    for n, r in table.items()},
      "bound_middle": {n: [round(b["middle"], 5) for b in r]
                       for n, r in table.items()},
      "bound_lower": {n: [round(b["lower"], 5) for b in r]
                      for n, r in table.items()},
      "min_gap_cos_minus_middle": min(b["cos"] - b["middle"]
                                      for r in table.values() for b in r),
      "cos_falls_with_kernel": ok_fall}
  return run.result(
      "cos(alpha) >= 1 - <x, Delta>/||x||^2 >= 1 - ||Delta||/||x|| for "
      "every photo and kernel; cos(alpha) falls as the kernel grows",
      measured,
      f"both inequalities for all {len(photos)} photos and k in "
      f"{list(p.t5_kernels)} (round-off slack 1e-12); cos(alpha) strictly "
      "decreasing in k for every photo",
      ok_bound and ok_fall,
      [_t5_figure(run.workdir / "cos_alpha.png", p.t5_kernels, table)])


def _t5_table(photos, grey: np.ndarray, kernels, limit_fn=None):
  """Per photo the :func:`t5_bounds` of each kernel; whether the bounds
  hold everywhere and whether cos(alpha) falls with the kernel for every
  photo."""
  table = {}
  ok_bound, ok_fall = True, True
  for name, g in zip(photos, grey):
    row = []
    for k in kernels:
      lim = None
      if limit_fn is not None:
        from randconv.spec import make_spec
        lim = limit_fn(make_spec("vgg16", "conv1_1", output="mean",
                                 kernel_size=k), g)
      b = t5_bounds(g, k, lim)
      ok_bound &= b["cos"] >= b["middle"] - 1e-12 >= b["lower"] - 2e-12
      row.append(b)
    cos = [b["cos"] for b in row]
    ok_fall &= bool(np.all(np.diff(cos) < 0))
    table[name] = row
  return table, ok_bound, ok_fall


def _t5_figure(path: Path, kernels, table: dict) -> Path:
  """cos(alpha) and its two bounds against the kernel size, per photo."""
  from randconv.plotting import _plt, save_figure
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for n, r in table.items():
    line, = ax.plot(kernels, [b["cos"] for b in r], "o-", ms=3, label=n)
    ax.plot(kernels, [b["middle"] for b in r], "--",
            color=line.get_color(), lw=0.8)
    ax.plot(kernels, [b["lower"] for b in r], ":",
            color=line.get_color(), lw=0.8)
  ax.set_xlabel("kernel size k")
  ax.set_ylabel("cos(alpha); dashed 1 - <x,D>/|x|^2, dotted 1 - |D|/|x|")
  ax.set_title("T5 (Theorem 5.4): input vs two-layer limit", fontsize=9)
  ax.legend(fontsize=6)
  return save_figure(fig, path, dpi=110, caption=(
      "T5: cos(alpha) between each photo and its two-layer limit against "
      "the kernel size k (solid), with Theorem 5.4's bounds 1 - <x, D>/|x|^2"
      " (dashed) and 1 - |D|/|x| (dotted)."))
