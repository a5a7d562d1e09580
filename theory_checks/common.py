"""What every check of this package shares: the Monte Carlo inputs, the
result record, the convergence fit and its figure. The checks import it;
it imports none of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SLOPE_RANGE = (-0.7, -0.35)  # T1, T2, T4, T7: the fitted log-log slope
TWO_PHOTOS = (("chelsea", "colour"), ("astronaut", "grey"))
PHOTOS_ALL = ("chelsea", "astronaut", "coffee", "rocket", "motorcycle_left",
              "motorcycle_right", "hubble_deep_field", "immunohistochemistry",
              "retina")


@dataclass
class CheckResult:
  """One check: its statement, the numbers that decide it, the tolerance."""

  id: str
  statement: str
  measured: dict
  tolerance: str
  holds: bool
  figures: list[str] = field(default_factory=list)
  seconds: float = 0.0

  def as_dict(self) -> dict:
    return {"id": self.id, "statement": self.statement,
            "measured": self.measured, "tolerance": self.tolerance,
            "holds": self.holds, "figures": self.figures,
            "seconds": round(self.seconds, 1)}



# --------------------------------------------------------------------------
# Inputs, fits, figures

def inputs(photos, size: int) -> tuple[np.ndarray, list[str]]:
  """The Monte Carlo inputs: [B, size, size, 3] and their names.

  ``photos``: ``(name, mode)`` pairs, mode ``colour`` or ``grey`` (luma in
  all three channels; the network always has 3 input channels).
  """
  from randconv import images
  names = [n for n, _ in photos]
  x = images.load_batch(names, size)
  out, labels = [], []
  for (name, mode), img in zip(photos, x):
    if mode == "grey":
      img = np.repeat(grey_of(img, np.float32)[..., None], 3, axis=-1)
    out.append(img)
    labels.append(f"{name} ({mode})")
  return np.stack(out), labels


def grey_of(x: np.ndarray, dtype=np.float64) -> np.ndarray:
  """The luma of [..., 3] images (:data:`randconv.metrics.GREY_WEIGHTS`)."""
  from randconv.metrics import GREY_WEIGHTS
  return x @ np.array(GREY_WEIGHTS, dtype)


def loglog_slope(widths, values) -> float:
  """Least-squares slope of log(value) against log(width)."""
  return float(np.polyfit(np.log(widths), np.log(values), 1)[0])


def fit_slopes(angles: dict[int, np.ndarray], fit_min: int) -> np.ndarray:
  """Per-image slopes [B] of the mean angle over nets, widths >= fit_min.

  ``angles[N]``: [S, B, ...] angles at width N; extra axes are kept.
  """
  ws = sorted(n for n in angles if n >= fit_min)
  if len(ws) < 2:
    raise ValueError(f"need two widths >= {fit_min} to fit a slope")
  means = np.stack([angles[n].mean(axis=0) for n in ws])  # [W, B, ...]
  logs = np.log(means.reshape(len(ws), -1))
  slope = np.polyfit(np.log(ws), logs, 1)[0]
  return slope.reshape(means.shape[1:])


def convergence_holds(slopes: np.ndarray) -> bool:
  lo, hi = SLOPE_RANGE
  return bool(np.all((slopes >= lo) & (slopes <= hi)))


def plot_angles(path: Path, curves: dict[str, tuple], title: str,
                bounds: dict[str, tuple] | None = None,
                hline: dict[str, float] | None = None,
                ylabel: str = "angle (rad)", caption: str | None = None
                ) -> Path:
  """Angle against width on log-log axes, each curve with an N^(-1/2)
  line through its last point; ``caption``: one line for the reports.

  ``curves[label] = (widths, mean angles, std errors)``;
  ``bounds[label] = (widths, values)`` drawn dashed.
  """
  from randconv.plotting import _plt, save_figure
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for i, (label, (w, m, se)) in enumerate(curves.items()):
    w, m, se = map(np.asarray, (w, m, se))
    line = ax.errorbar(w, m, yerr=se, marker="o", ms=3, capsize=2,
                       label=label)
    ref = m[-1] * np.sqrt(w[-1] / w)
    ax.plot(w, ref, ":", color=line[0].get_color(), lw=1,
            label="N^(-1/2)" if i == 0 else None)
  for label, (w, v, *style) in (bounds or {}).items():
    ax.plot(w, v, **(style[0] if style else {"ls": "--", "lw": 1.2}),
            label=label)
  for label, v in (hline or {}).items():
    ax.axhline(v, color="grey", ls="-.", lw=1, label=label)
  ax.set_xscale("log", base=2)
  ax.set_yscale("log")
  ax.set_xlabel("width N (channels per layer)")
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=6.5)
  return save_figure(fig, path, dpi=110, caption=caption)
