"""Checks T1-T6: each theorem of Section 5 against Monte Carlo over finite
networks, with its width, number of nets and tolerance stated here.

Run them with ``randconv theory --preset cpu`` (about 6 minutes here) or
through ``randconv reproduce``. Every check writes ``config.json`` and
``metrics.jsonl`` (one record per width, so a rerun in the same folder
resumes) and its figures into its own folder. See ``README.md`` beside this
file for the theorems and the derivations of T3's and T5's bounds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from randconv.deadline import NO_DEADLINE, Deadline
from randconv.repro.registry import preset_config
from theory_checks.common import (_TWO, PHOTOS_ALL, SLOPE_RANGE,  # noqa: F401
                                  CheckResult, convergence_holds, fit_slopes,
                                  grey_of, inputs, loglog_slope, plot_angles)

AGREE_TOL = 1e-6             # two computations of one limit, relative
ENGINE_Z = 4.0               # sampler vs library network, |z| of the means
T3_Z_POOLED, T3_Z_EACH = 3.0, 4.0
T3_DELTAS = (0.1, 0.05, 0.01)
T3_TARGET = math.pi - 1      # N E||y - y_hat||^2 / ||y_hat||^2 (Theorem 5.2)
DEPTH_Z, DEPTH_RHO = 3.0, 0.8  # T4: "grows with depth"
ROOT_SEEDS = {"T1": 1, "T2": 2, "T3": 3, "T4": 4, "T6": 6}  # independent
T6_RATIO = 1 / 3             # "far below": angle at the largest N / input angle
LEVEL_SLOPE = -0.2           # T6: the angle has levelled off once its
                             # local log-log slope is shallower than this


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
  photos: tuple[tuple[str, str], ...] = _TWO
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


def config_for(check_id: str, preset: str):
  """The config of check ``check_id`` at ``preset``: :class:`Preset` for
  T1-T6, :class:`theory_checks.t7.T7Preset` for T7."""
  if check_id == "T7":
    from theory_checks import t7
    return t7.config_for(preset)
  return get_preset(preset)


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


def _summary(angles: dict[int, np.ndarray]):
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


# --------------------------------------------------------------------------
# T1 and T2: convergence to the limit image

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
  ws, means, _ = _summary(ang)
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
                      {"mean over nets and images": _summary(ang)},
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


# --------------------------------------------------------------------------
# T3: Theorem 5.2, the two-layer network

def two_layer_stats(y: np.ndarray, y_hat: np.ndarray) -> dict:
  """Per net and image: ||y - y_hat||^2 / ||y_hat||^2 and sin(theta).

  ``y``: [S, B, H, W]; ``y_hat``: [B, H, W] on the same (exact) scale.
  """
  from theory_checks.limits import angle
  err = np.sum((y - y_hat[None]) ** 2, axis=(-2, -1)) / np.sum(
      y_hat ** 2, axis=(-2, -1))[None]
  return {"rel_err": err, "sin": np.sin(angle(y, y_hat[None], axis=(-2, -1)))}


def t3(preset, workdir: Path, c1: float | None = None, *,
       deadline: Deadline = NO_DEADLINE) -> CheckResult:
  """T3: N E||y - y_hat||^2 / ||y_hat||^2 = pi - 1 and the Markov bound.

  ``c1`` overrides the constant of the limit (tests pass a wrong one).
  """
  from randconv.spec import make_spec
  from theory_checks import limits
  run = Run.begin("T3", preset, workdir, deadline)
  p = run.p
  y_hat = run.limits(limits.energy_limit,
                     make_spec("vgg16", "conv1_1", output="mean"))
  if c1 is not None:
    y_hat = y_hat * (c1 / limits.C1)
  rows = _two_layer_sweep(run, run.config(seeds=p.t3_seeds, wrong_c1=c1),
                          y_hat)
  identity, identity_ok = _t3_identity(rows)
  quantiles, quantile_ok = _t3_quantiles(rows)
  measured = {
      "network": f"vgg16 conv1_1 (3x3 conv, N filters) + channel mean, "
                 f"{p.size}x{p.size}, {len(run.names)} inputs",
      "pi_minus_1": round(T3_TARGET, 5), **identity, **quantiles,
      "seeds_per_width": p.t3_seeds}
  return run.result(
      "two layers: N E||y - y_hat||^2 / ||y_hat||^2 = pi - 1 at every N, and "
      "sin(theta) <= sqrt((pi - 1) / (N delta)) with probability >= 1 - delta",
      measured,
      f"pooled |z| <= {T3_Z_POOLED:g} and every width's |z| <= "
      f"{T3_Z_EACH:g} ({p.t3_seeds} nets per N); the empirical 1 - delta "
      f"quantile of sin(theta) <= the bound for delta in {list(T3_DELTAS)}, "
      "every N and image",
      identity_ok and quantile_ok,
      [_t3_figure(run, rows, quantiles["quantiles"])])


def _two_layer_sweep(run: Run, config: dict, y_hat: np.ndarray
                     ) -> dict[int, dict[str, np.ndarray]]:
  """T3's width sweep: per width the :func:`two_layer_stats` [S, B] of the
  library's two-layer nets at the exact scale, resumable."""
  from randconv import engine, progress
  from randconv.spec import make_spec
  from theory_checks import montecarlo as mc
  log = run.log(config)
  rows = {}
  for n in progress.iterate(run.p.t3_widths, "T3 widths", "width"):
    rec = log.find(width=n)
    if rec is None:
      mc.check_time(log, f"T3 width {n}")
      spec = make_spec("vgg16", "conv1_1", output="mean", width=n)
      # The library's net, exact scale: N(0, 1) weights, no rescaling. The
      # output conv is not normalised (the mean is its normalisation).
      net = engine.net_fn(spec, "gaussian:1.0", rescale=False,
                          policy="direct")
      out = mc.draw(lambda k, im: net(k, im)[..., 0], run.x, run.p.t3_seeds,
                    seed=ROOT_SEEDS["T3"], progress=f"T3 N={n}", spec=spec)
      st = two_layer_stats(out, y_hat)
      rec = log.append({"width": n, "rel_err": st["rel_err"].tolist(),
                        "sin": st["sin"].tolist()})
    rows[n] = {k: np.asarray(rec[k]) for k in ("rel_err", "sin")}
  return rows


def _t3_identity(rows: dict) -> tuple[dict, bool]:
  """Theorem 5.2's identity: per width and pooled over the widths, N times
  the mean relative error against pi - 1 in standard errors."""
  per_n, zs, est, var = {}, [], [], []
  for n, r in rows.items():
    v = n * r["rel_err"]                      # [S, B]
    m = float(v.mean())
    se = float(v.mean(axis=1).std(ddof=1) / math.sqrt(v.shape[0]))
    z = (m - T3_TARGET) / se
    zs.append(z)
    est.append(m)
    var.append(se ** 2)
    per_n[str(n)] = {"N_rel_err": round(m, 4), "se": round(se, 4),
                     "z": round(z, 2)}
  pooled = float(np.mean(est))
  pooled_se = float(math.sqrt(sum(var)) / len(var))
  pooled_z = (pooled - T3_TARGET) / pooled_se
  holds = abs(pooled_z) <= T3_Z_POOLED and all(
      abs(z) <= T3_Z_EACH for z in zs)
  return {"pooled_N_rel_err": round(pooled, 4),
          "pooled_se": round(pooled_se, 4), "pooled_z": round(pooled_z, 2),
          "per_width": per_n}, holds


def _t3_quantiles(rows: dict) -> tuple[dict, bool]:
  """The Markov bound: per delta and width the worst image's empirical
  1 - delta quantile of sin(theta) against sqrt((pi - 1) / (N delta))."""
  quant, worst_ratio, holds = {}, 0.0, True
  for n, r in rows.items():
    for d in T3_DELTAS:
      bound = math.sqrt(T3_TARGET / (n * d))
      q = np.quantile(r["sin"], 1 - d, axis=0)   # per image
      holds &= bool(np.all(q <= bound))
      worst_ratio = max(worst_ratio, float(np.max(q) / bound))
      quant.setdefault(str(d), {})[str(n)] = {
          "quantile_max": round(float(np.max(q)), 5),
          "bound": round(bound, 5),
          "bound_over_quantile": round(bound / float(np.max(q)), 2)}
  looseness = [v["bound_over_quantile"] for d in quant.values()
               for v in d.values()]
  return {"quantiles": quant,
          "worst_quantile_over_bound": round(worst_ratio, 3),
          "bound_looseness_range": [min(looseness), max(looseness)]}, holds


def _t3_figure(run: Run, rows: dict, quant: dict) -> Path:
  """Mean sin(theta) against width, with the bounds and the quantiles."""
  ws = sorted(rows)
  mean_sin = [float(rows[n]["sin"].mean()) for n in ws]
  se_sin = [float(rows[n]["sin"].mean(axis=1).std(ddof=1) /
                  math.sqrt(run.p.t3_seeds)) for n in ws]
  bounds = {}
  for d, colour in zip(T3_DELTAS, ("tab:orange", "tab:green", "tab:red")):
    bounds[f"bound sqrt((pi-1)/(N delta)), delta={d}"] = (
        ws, [math.sqrt(T3_TARGET / (n * d)) for n in ws],
        {"ls": "--", "color": colour, "lw": 1.2})
    bounds[f"empirical {1 - d:.2f} quantile (worst image)"] = (
        ws, [quant[str(d)][str(n)]["quantile_max"] for n in ws],
        {"ls": "-", "marker": "x", "ms": 3, "color": colour, "lw": 0.8})
  return plot_angles(run.workdir / "angles.png",
                     {"mean sin(theta)": (ws, mean_sin, se_sin)},
                     "T3 (Theorem 5.2): two-layer net, sin(theta) vs N",
                     bounds=bounds, ylabel="sin(theta)",
                     caption="T3: sin of the angle between the two-layer "
                     "net's output and its limit against N (log-log), mean "
                     "over nets and images, with Theorem 5.2's bound "
                     "(dashed) and the worst image's quantile (crosses) per "
                     "delta.")


# --------------------------------------------------------------------------
# T4: Theorem 5.3, many layers

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


# --------------------------------------------------------------------------
# T5: Theorem 5.4, input vs limit

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


# --------------------------------------------------------------------------
# T6: the experiment's own network (max pooling) against the L2 limit

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
                    {"max pooling vs L2 limit": _summary(ang)},
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


__all__ = ["OVERRIDES", "Preset", "config_for", "CheckResult", "t1", "t2",
           "t3", "t4", "t5", "t6", "t7", "run_checks", "fit_slopes", "convergence_holds",
           "two_layer_stats", "t5_bounds", "stack_spec"]
