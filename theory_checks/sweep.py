"""What checks T1-T6 share: their sizes (:class:`Preset`, one per preset),
the root seed of each, and :class:`Run`, the steps a check takes (its
config, its resumable width sweep over finite networks, its result); the
input-limit-output figure and the angle summary. The checks import it; it
imports none of them."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from randconv.deadline import NO_DEADLINE, Deadline
from randconv.repro.registry import preset_config
from theory_checks.common import (
  PHOTOS_ALL,
  TWO_PHOTOS,
  CheckResult,
  grey_of,
  inputs,
)

ROOT_SEEDS = {"T1": 1, "T2": 2, "T3": 3, "T4": 4, "T6": 6}  # independent

_POW2 = tuple(2 ** i for i in range(2, 13))  # 4 .. 4096
_KERNELS = tuple(range(1, 16, 2))


@dataclass(frozen=True)
class Preset:
  """Sizes of every check T1-T6; the defaults are the cpu preset's (every
  check at N up to 4096, sized to run on a CPU in minutes; its time is in
  docs/performance.md) and
  :data:`OVERRIDES` the others. ``size`` and ``photos`` give the Monte
  Carlo inputs (``(photo, "colour" | "grey")`` pairs); ``layer`` the VGG16
  network of T1/T2."""

  preset: str = "cpu"
  size: int = 16
  photos: tuple[tuple[str, str], ...] = TWO_PHOTOS
  layer: str = "conv2"
  widths: tuple[int, ...] = (4, 16, 64, 256, 512, 1024, 2048, 4096)
  seeds: int = 20
  fit_min: int = 256
  engine_widths: tuple[int, ...] = (64, 256)
  t3_widths: tuple[int, ...] = _POW2
  t3_seeds: int = 500
  t4_depth: int = 8
  t4_widths: tuple[int, ...] = (16, 64, 256, 512, 1024, 2048)
  t5_size: int = 64
  t5_kernels: tuple[int, ...] = _KERNELS
  t6_layer: str = "pool1"
  t6_widths: tuple[int, ...] = (4, 16, 64, 256, 1024, 4096)
  small_seeds: int = 10  # nets at widths below fit_min (0: same as seeds)

  def seeds_for(self, n: int) -> int:
    return self.seeds if n >= self.fit_min or not self.small_seeds \
        else self.small_seeds


OVERRIDES = {
    # Small size for `randconv reproduce --preset quick` (about a minute);
    # the fits still span N = 256 .. 2048 (three octaves).
    "quick": dict(preset="quick", size=12, layer="pool1",
                  widths=(16, 64, 256, 512, 1024, 2048),
                  engine_widths=(64,), t3_widths=(4, 16, 64, 256, 1024),
                  t3_seeds=200, t4_widths=(64, 256, 512, 1024, 2048),
                  t5_size=32, t6_widths=(16, 64, 256, 1024)),
    "cpu": {},
    # Larger images, every photo, every width: a GPU job.
    "paper": dict(preset="paper", size=32, photos=tuple(
        (n, m) for n in PHOTOS_ALL for m in ("colour", "grey")),
                  widths=_POW2, seeds=50, t3_seeds=2000, t4_depth=10,
                  t4_widths=_POW2, t5_size=227, t6_widths=_POW2,
                  small_seeds=0),
}


def get_preset(preset: str | Preset) -> Preset:
  if isinstance(preset, Preset):
    return preset
  return preset_config(Preset(), OVERRIDES, preset)


# --------------------------------------------------------------------------
# Inputs, fits, figures

def plot_images(path: Path, x: np.ndarray, names: list[str],
                lim: np.ndarray, samples: dict[int, np.ndarray],
                title: str, caption: str | None = None) -> Path:
  """Rows: images. Columns: input, limit, one finite-width output per N
  (one net each); grey panels min-max scaled, angles in the titles."""
  from randconv.plotting import image_grid, unit
  from theory_checks.limits import angle
  rows, titles = [], []
  for b, name in enumerate(names):
    row = [x[b], unit(lim[b])]
    tt = [name[:18], f"limit (N = inf)\n"
          f"{angle(grey_of(x[b]), lim[b]):.3f} rad to grey input"]
    for n, out in sorted(samples.items()):
      row.append(unit(out[b]))
      tt.append(f"N = {n}\n{angle(out[b], lim[b]):.3f} rad to limit")
    rows.append(row)
    titles.append(tt)
  return image_grid(rows, path, titles=titles, suptitle=title, cell=1.5,
                    caption=caption)


def angle_summary(angles: dict[int, np.ndarray]):
  """Widths, mean angles and their standard errors over nets."""
  ws = sorted(angles)
  means = np.array([angles[n].mean() for n in ws])
  ses = np.array([angles[n].mean(axis=1).std(ddof=1) /
                  math.sqrt(angles[n].shape[0]) if angles[n].shape[0] > 1
                  else 0.0 for n in ws])
  return ws, means, ses


# --------------------------------------------------------------------------
# The convergence-check helper: every check configures its networks, runs
# its width sweep through a Run, and decides.

@dataclass
class Run:
  """One check while it runs: its preset, folder, Monte Carlo inputs and
  clock, and the steps the checks share (the config with the check's root
  seed, the resumable width sweep, the result)."""

  id: str
  p: Preset
  workdir: Path
  x: np.ndarray | None = None       # the Monte Carlo inputs, [B, H, W, 3]
  names: list[str] = field(default_factory=list)
  start: float = field(default_factory=time.time)
  deadline: Deadline = NO_DEADLINE

  @classmethod
  def begin(cls, check_id: str, preset, workdir,
            deadline: Deadline = NO_DEADLINE) -> Run:
    """A run of ``check_id`` on the preset's Monte Carlo inputs."""
    run = cls(check_id, get_preset(preset), Path(workdir), deadline=deadline)
    run.x, run.names = inputs(run.p.photos, run.p.size)
    return run

  def config(self, **extra) -> dict:
    """The sweep's ``config.json``: the check, its inputs, its root seed
    and ``extra`` (whatever else its records depend on)."""
    return {"check": self.id, "size": self.p.size, "photos": self.p.photos,
            **extra, "root_seed": ROOT_SEEDS[self.id]}

  def limits(self, fn, spec) -> np.ndarray:
    """``fn(spec, image)`` for every input, stacked."""
    return np.stack([fn(spec, xi) for xi in self.x])

  def log(self, config: dict):
    """The check's records (``config.json``, ``metrics.jsonl``), resumed
    where ``config`` is the one they were made with."""
    from theory_checks import montecarlo as mc
    return mc.open_log(self.workdir, config, self.deadline)

  def sweep(self, config: dict, specs, lim: np.ndarray, widths, *,
            tag: str = "sampler", engine: str = "sampler",
            every_depth: bool = False, keep_samples=(),
            seed: int | None = None) -> dict[int, np.ndarray]:
    """Monte Carlo angles {N: [S, B, ...]} to ``lim`` at each width,
    resumable: :func:`theory_checks.montecarlo.width_sweep` with the
    sampler (or the library network), the preset's nets per width and the
    check's root seed unless ``seed`` is given."""
    from theory_checks import montecarlo as mc
    h, w = self.x.shape[1:3]

    def make(n):
      if engine == "library":
        return mc.library_fn(specs(n))
      return mc.sampler_fn(specs(n), h, w, every_depth=every_depth)

    return mc.width_sweep(
        self.log(config), make, lim, self.x, list(widths), self.p.seeds_for,
        tag=tag, seed=ROOT_SEEDS[self.id] if seed is None else seed,
        samples_dir=self.workdir / "samples", keep_samples=keep_samples,
        spec_for=specs)

  def result(self, statement: str, measured: dict, tolerance: str,
             holds: bool, figures) -> CheckResult:
    """The check's result, timed from the start of the run."""
    return CheckResult(self.id, statement, measured, tolerance, holds,
                       [str(f) for f in figures], time.time() - self.start)
