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

SLOPE_RANGE = (-0.7, -0.35)  # T1, T2, T4: the fitted log-log slope
AGREE_TOL = 1e-6             # two computations of one limit, relative
ENGINE_Z = 4.0               # sampler vs library network, |z| of the means
T3_Z_POOLED, T3_Z_EACH = 3.0, 4.0
T3_DELTAS = (0.1, 0.05, 0.01)
DEPTH_Z, DEPTH_RHO = 3.0, 0.8  # T4: "grows with depth"
ROOT_SEEDS = {"T1": 1, "T2": 2, "T3": 3, "T4": 4, "T6": 6}  # independent
T6_RATIO = 1 / 3             # "far below": angle at the largest N / input angle
LEVEL_SLOPE = -0.2           # T6: the angle has levelled off once its
                             # local log-log slope is shallower than this


@dataclass(frozen=True)
class Preset:
  """Sizes of every check. ``size`` and ``photos`` give the Monte Carlo
  inputs (``(photo, "colour" | "grey")`` pairs); ``layer`` the VGG16
  network of T1/T2."""

  size: int
  photos: tuple[str, ...]
  layer: str
  widths: tuple[int, ...]
  seeds: int
  fit_min: int
  engine_widths: tuple[int, ...]
  t3_widths: tuple[int, ...]
  t3_seeds: int
  t4_depth: int
  t4_widths: tuple[int, ...]
  t5_size: int
  t5_kernels: tuple[int, ...]
  t6_layer: str
  t6_widths: tuple[int, ...]
  small_seeds: int = 0  # nets at widths below fit_min (0: same as seeds)

  def seeds_for(self, n: int) -> int:
    return self.seeds if n >= self.fit_min or not self.small_seeds \
        else self.small_seeds


_POW2 = tuple(2 ** i for i in range(2, 13))  # 4 .. 4096
_TWO = (("chelsea", "colour"), ("astronaut", "grey"))
_KERNELS = tuple(range(1, 16, 2))
PHOTOS_ALL = ("chelsea", "astronaut", "coffee", "rocket", "motorcycle_left",
              "motorcycle_right", "hubble_deep_field", "immunohistochemistry",
              "retina")

PRESETS = {
    # Small size for `randconv reproduce --preset quick` (about a minute);
    # the fits still span N = 256 .. 2048 (three octaves).
    "quick": Preset(size=12, photos=_TWO, layer="pool1",
                    widths=(16, 64, 256, 512, 1024, 2048), seeds=20,
                    fit_min=256, engine_widths=(64,),
                    t3_widths=(4, 16, 64, 256, 1024), t3_seeds=200,
                    t4_depth=8, t4_widths=(64, 256, 512, 1024, 2048),
                    t5_size=32, t5_kernels=_KERNELS, t6_layer="pool1",
                    t6_widths=(16, 64, 256, 1024), small_seeds=10),
    # Every check at N up to 4096 on this 2-core CPU in under 10 minutes.
    "cpu": Preset(size=16, photos=_TWO, layer="conv2",
                  widths=(4, 16, 64, 256, 512, 1024, 2048, 4096), seeds=20,
                  fit_min=256, engine_widths=(64, 256), t3_widths=_POW2,
                  t3_seeds=500, t4_depth=8,
                  t4_widths=(16, 64, 256, 512, 1024, 2048), t5_size=64,
                  t5_kernels=_KERNELS, t6_layer="pool1",
                  t6_widths=(4, 16, 64, 256, 1024, 4096), small_seeds=10),
    # Larger images, every photo, every width: a GPU job.
    "paper": Preset(size=32, photos=tuple((n, m) for n in PHOTOS_ALL
                                          for m in ("colour", "grey")),
                    layer="conv2", widths=_POW2,
                    seeds=50, fit_min=256, engine_widths=(64, 256),
                    t3_widths=_POW2, t3_seeds=2000, t4_depth=10,
                    t4_widths=_POW2, t5_size=227, t5_kernels=_KERNELS,
                    t6_layer="pool1", t6_widths=_POW2),
}


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


def get_preset(preset: str | Preset) -> Preset:
  if isinstance(preset, Preset):
    return preset
  from theory_checks.limits import TheoryError
  if preset not in PRESETS:
    raise TheoryError(f"unknown preset {preset!r}; choose "
                      f"{', '.join(PRESETS)}")
  return PRESETS[preset]


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
      img = np.repeat((img @ np.array([0.299, 0.587, 0.114],
                                      np.float32))[..., None], 3, axis=-1)
    out.append(img)
    labels.append(f"{name} ({mode})")
  return np.stack(out), labels


def grey_of(x: np.ndarray) -> np.ndarray:
  return x @ np.array([0.299, 0.587, 0.114])


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


def spearman(a, b) -> float:
  """Spearman's rank correlation (no ties expected)."""
  ra = np.argsort(np.argsort(a))
  rb = np.argsort(np.argsort(b))
  return float(np.corrcoef(ra, rb)[0, 1])


def convergence_holds(slopes: np.ndarray) -> bool:
  lo, hi = SLOPE_RANGE
  return bool(np.all((slopes >= lo) & (slopes <= hi)))


def _plt():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def plot_angles(path: Path, curves: dict[str, tuple], title: str,
                bounds: dict[str, tuple] | None = None,
                hline: dict[str, float] | None = None,
                ylabel: str = "angle (rad)") -> Path:
  """Angle against width on log-log axes, each curve with an N^(-1/2)
  line through its last point.

  ``curves[label] = (widths, mean angles, std errors)``;
  ``bounds[label] = (widths, values)`` drawn dashed.
  """
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
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def plot_images(path: Path, x: np.ndarray, names: list[str],
                lim: np.ndarray, samples: dict[int, np.ndarray],
                title: str) -> Path:
  """Rows: images. Columns: input, limit, one finite-width output per N."""
  from randconv.plotting import image_grid, unit
  from theory_checks.limits import angle
  rows, titles = [], []
  for b, name in enumerate(names):
    row = [x[b], unit(lim[b])]
    tt = [name[:18], f"limit, {angle(grey_of(x[b]), lim[b]):.3f} rad"]
    for n, out in sorted(samples.items()):
      row.append(unit(out[b]))
      tt.append(f"N={n}, {angle(out[b], lim[b]):.3f}")
    rows.append(row)
    titles.append(tt)
  return image_grid(rows, path, titles=titles, suptitle=title, cell=1.5)


def _sweep(workdir: Path, config: dict, specs, limits_, x, widths, seeds_for,
           *, tag="sampler", engine="sampler", every_depth=False,
           keep_samples=(), seed=0):
  """Monte Carlo angles {N: [S, B, ...]} at each width, resumable."""
  from theory_checks import montecarlo as mc
  log = mc.Log(workdir / "metrics.jsonl", config)
  h, w = x.shape[1:3]

  def make(n):
    if engine == "library":
      return mc.library_fn(specs(n))
    return mc.sampler_fn(specs(n), h, w, every_depth=every_depth)

  return mc.width_sweep(log, make, limits_, x, list(widths), seeds_for,
                        tag=tag, seed=seed,
                        samples_dir=workdir / "samples",
                        keep_samples=keep_samples, spec_for=specs)


def _summary(angles: dict[int, np.ndarray]):
  ws = sorted(angles)
  means = np.array([angles[n].mean() for n in ws])
  ses = np.array([angles[n].mean(axis=1).std(ddof=1) /
                  math.sqrt(angles[n].shape[0]) if angles[n].shape[0] > 1
                  else 0.0 for n in ws])
  return ws, means, ses


# --------------------------------------------------------------------------
# T1 and T2: convergence to the limit image

def _convergence(check_id: str, pooling: str, p: Preset, workdir: Path,
                 limit_fn=None) -> CheckResult:
  from randconv.spec import make_spec
  from theory_checks import limits, routes

  start = time.time()
  x, names = inputs(p.photos, p.size)
  spec0 = make_spec("vgg16", p.layer, output="mean", pooling=pooling)
  fast = limits.energy_limit if pooling == "l2" else limits.covariance_limit
  slow = routes.route_limit if pooling == "l2" else \
      routes.full_covariance_limit
  lim_fast = np.stack([fast(spec0, xi) for xi in x])
  lim_slow = np.stack([slow(spec0, xi) for xi in x])
  agree = float(np.max(np.abs(lim_fast - lim_slow)) / np.max(np.abs(lim_slow)))
  lim = np.stack([(limit_fn or fast)(spec0, xi) for xi in x])
  specs = lambda n: make_spec("vgg16", p.layer, output="mean",
                              pooling=pooling, width=n)
  config = {"check": check_id, "pooling": pooling, "layer": p.layer,
            "size": p.size, "photos": p.photos, "seeds": p.seeds,
            "small_seeds": p.small_seeds, "fit_min": p.fit_min,
            "wrong_limit": limit_fn is not None,
            "root_seed": ROOT_SEEDS[check_id]}
  keep = (p.widths[0], p.widths[len(p.widths) // 2], p.widths[-1])
  # T1 and T2 use different root seeds, so that they are independent.
  seed = ROOT_SEEDS[check_id]
  ang = _sweep(workdir, config, specs, lim, x, p.widths, p.seeds_for,
               keep_samples=keep, seed=seed)
  # The sampler against the library's own network, at widths where the
  # sampler draws most layers from their Gram matrices (fan-in > pixels).
  # Another root seed: the two engines' draws are independent.
  lib = _sweep(workdir, config, specs, lim, x, p.engine_widths,
               p.seeds_for, tag="library", engine="library", seed=seed + 100)
  zs = []
  for n in p.engine_widths:
    a, b = ang[n], lib[n]
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    zs.append(np.abs(a.mean(0) - b.mean(0)) / se)
  engine_z = float(np.max(zs))
  slopes = fit_slopes(ang, p.fit_min)
  ws, means, ses = _summary(ang)
  from theory_checks import montecarlo as mc
  ratio = mc.Log.read_norm_ratio(workdir / "metrics.jsonl", "sampler",
                                 p.widths[-1])
  what = {"l2": "the L2-pooling limit (Theorem 5.1)",
          "avg": "the average-pooling limit (Theorem A.7)"}[pooling]
  how = {"l2": "energy recursion vs explicit route counts",
         "avg": "banded vs full covariance recursion"}[pooling]
  measured = {
      "network": f"vgg16 {p.layer}, channel mean, {pooling} pooling, "
                 f"{p.size}x{p.size}",
      "slope_per_image": {nm: round(float(s), 3) for nm, s in
                          zip(names, slopes)},
      "slope_pooled": round(loglog_slope(
          [n for n in ws if n >= p.fit_min],
          [m for n, m in zip(ws, means) if n >= p.fit_min]), 3),
      "mean_angle": {str(n): round(float(m), 4) for n, m in zip(ws, means)},
      "seeds_per_width": {str(n): int(ang[n].shape[0]) for n in ws},
      "limit_agreement": agree, "limit_agreement_how": how,
      "engine_max_z": round(engine_z, 2),
      "norm_ratio_at_max_N": round(float(np.mean(ratio)), 4)
                             if ratio is not None else None,
  }
  holds = convergence_holds(slopes) and agree <= AGREE_TOL and \
      engine_z <= ENGINE_Z
  figs = [plot_angles(workdir / "angles.png",
                      {"mean over nets and images": (ws, means, ses)},
                      f"{check_id}: angle to {what}\n{measured['network']}")]
  samples = mc.load_samples(workdir / "samples", "sampler", keep)
  if samples:
    figs.append(plot_images(workdir / "images.png", x, names, lim, samples,
                            f"{check_id}: input, limit ({pooling}), "
                            "finite-width outputs"))
  return CheckResult(
      check_id,
      f"the angle between the width-N output and {what} shrinks like "
      "N^(-1/2)",
      measured,
      f"every per-image log-log slope over N >= {p.fit_min} "
      f"({p.seeds} nets per N) in [{SLOPE_RANGE[0]}, {SLOPE_RANGE[1]}]; "
      f"{how} agree to {AGREE_TOL:g}; sampler vs library network |z| <= "
      f"{ENGINE_Z:g} at N in {list(p.engine_widths)}",
      holds, [str(f) for f in figs], time.time() - start)


def t1(preset, workdir: Path, limit_fn=None) -> CheckResult:
  """T1: convergence to the L2-pooling limit (Theorem 5.1 / A.1)."""
  return _convergence("T1", "l2", get_preset(preset), Path(workdir), limit_fn)


def t2(preset, workdir: Path, limit_fn=None) -> CheckResult:
  """T2: convergence to the average-pooling limit (Theorem A.7)."""
  return _convergence("T2", "avg", get_preset(preset), Path(workdir),
                      limit_fn)


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


def t3(preset, workdir: Path, c1: float | None = None) -> CheckResult:
  """T3: N E||y - y_hat||^2 / ||y_hat||^2 = pi - 1 and the Markov bound.

  ``c1`` overrides the constant of the limit (tests pass a wrong one).
  """
  from randconv import engine
  from randconv.spec import make_spec
  from theory_checks import limits
  from theory_checks import montecarlo as mc

  p = get_preset(preset)
  workdir = Path(workdir)
  start = time.time()
  x, names = inputs(p.photos, p.size)
  spec0 = make_spec("vgg16", "conv1_1", output="mean")
  y_hat = np.stack([limits.energy_limit(spec0, xi) for xi in x])
  if c1 is not None:
    y_hat = y_hat * (c1 / limits.C1)
  config = {"check": "T3", "size": p.size, "photos": p.photos,
            "seeds": p.t3_seeds, "wrong_c1": c1,
            "root_seed": ROOT_SEEDS["T3"]}
  log = mc.Log(workdir / "metrics.jsonl", config)
  from tqdm.auto import tqdm
  rows = {}
  for n in tqdm(p.t3_widths, desc="T3 widths", leave=False):
    rec = log.find(width=n)
    if rec is None:
      spec = make_spec("vgg16", "conv1_1", output="mean", width=n)
      # The library's net, exact scale: N(0, 1) weights, no rescaling. The
      # output conv is not normalised (the mean is its normalisation).
      net = engine.net_fn(spec, "gaussian:1.0", rescale=False)
      out = mc.draw(lambda k, im: net(k, im)[..., 0], x, p.t3_seeds,
                    seed=ROOT_SEEDS["T3"], progress=f"T3 N={n}", spec=spec)
      st = two_layer_stats(out, y_hat)
      rec = log.add({"width": n, "rel_err": st["rel_err"].tolist(),
                     "sin": st["sin"].tolist()})
    rows[n] = {k: np.asarray(rec[k]) for k in ("rel_err", "sin")}
  target = math.pi - 1
  per_n, zs, est, var = {}, [], [], []
  quant = {}
  worst_ratio = 0.0
  quantile_ok = True
  for n, r in rows.items():
    v = n * r["rel_err"]                      # [S, B]
    m = float(v.mean())
    se = float(v.mean(axis=1).std(ddof=1) / math.sqrt(v.shape[0]))
    z = (m - target) / se
    zs.append(z)
    est.append(m)
    var.append(se ** 2)
    per_n[str(n)] = {"N_rel_err": round(m, 4), "se": round(se, 4),
                     "z": round(z, 2)}
    for d in T3_DELTAS:
      bound = math.sqrt(target / (n * d))
      q = np.quantile(r["sin"], 1 - d, axis=0)   # per image
      quantile_ok &= bool(np.all(q <= bound))
      worst_ratio = max(worst_ratio, float(np.max(q) / bound))
      quant.setdefault(str(d), {})[str(n)] = {
          "quantile_max": round(float(np.max(q)), 5),
          "bound": round(bound, 5),
          "bound_over_quantile": round(bound / float(np.max(q)), 2)}
  pooled = float(np.mean(est))
  pooled_se = float(math.sqrt(sum(var)) / len(var))
  pooled_z = (pooled - target) / pooled_se
  identity_ok = abs(pooled_z) <= T3_Z_POOLED and all(
      abs(z) <= T3_Z_EACH for z in zs)
  looseness = [v["bound_over_quantile"] for d in quant.values()
               for v in d.values()]
  measured = {
      "network": f"vgg16 conv1_1 (3x3 conv, N filters) + channel mean, "
                 f"{p.size}x{p.size}, {len(names)} inputs",
      "pi_minus_1": round(target, 5),
      "pooled_N_rel_err": round(pooled, 4), "pooled_se": round(pooled_se, 4),
      "pooled_z": round(pooled_z, 2), "per_width": per_n,
      "quantiles": quant, "worst_quantile_over_bound": round(worst_ratio, 3),
      "bound_looseness_range": [min(looseness), max(looseness)],
      "seeds_per_width": p.t3_seeds}
  ws = sorted(rows)
  mean_sin = [float(rows[n]["sin"].mean()) for n in ws]
  se_sin = [float(rows[n]["sin"].mean(axis=1).std(ddof=1) /
                  math.sqrt(p.t3_seeds)) for n in ws]
  bounds = {}
  for d, colour in zip(T3_DELTAS, ("tab:orange", "tab:green", "tab:red")):
    bounds[f"bound sqrt((pi-1)/(N delta)), delta={d}"] = (
        ws, [math.sqrt(target / (n * d)) for n in ws],
        {"ls": "--", "color": colour, "lw": 1.2})
    bounds[f"empirical {1 - d:.2f} quantile (worst image)"] = (
        ws, [quant[str(d)][str(n)]["quantile_max"] for n in ws],
        {"ls": "-", "marker": "x", "ms": 3, "color": colour, "lw": 0.8})
  fig = plot_angles(workdir / "angles.png",
                    {"mean sin(theta)": (ws, mean_sin, se_sin)},
                    "T3 (Theorem 5.2): two-layer net, sin(theta) vs N",
                    bounds=bounds, ylabel="sin(theta)")
  return CheckResult(
      "T3",
      "two layers: N E||y - y_hat||^2 / ||y_hat||^2 = pi - 1 at every N, and "
      "sin(theta) <= sqrt((pi - 1) / (N delta)) with probability >= 1 - delta",
      measured,
      f"pooled |z| <= {T3_Z_POOLED:g} and every width's |z| <= "
      f"{T3_Z_EACH:g} ({p.t3_seeds} nets per N); the empirical 1 - delta "
      f"quantile of sin(theta) <= the bound for delta in {list(T3_DELTAS)}, "
      "every N and image",
      identity_ok and quantile_ok, [str(fig)], time.time() - start)


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


def t4(preset, workdir: Path) -> CheckResult:
  """T4: the angle shrinks like N^(-1/2) at every depth, grows with depth."""
  from theory_checks import limits
  p = get_preset(preset)
  workdir = Path(workdir)
  start = time.time()
  x, names = inputs(p.photos, p.size)
  depths = list(range(2, p.t4_depth + 1))
  lim = np.stack([np.stack([limits.energy_limit(stack_spec(d, 1), xi)
                            for d in depths]) for xi in x])   # [B, D, H, W]
  config = {"check": "T4", "size": p.size, "photos": p.photos,
            "depth": p.t4_depth, "seeds": p.seeds,
            "small_seeds": p.small_seeds, "root_seed": ROOT_SEEDS["T4"]}
  ang = _sweep(workdir, config, lambda n: stack_spec(p.t4_depth, n), lim, x,
               p.t4_widths, p.seeds_for, every_depth=True,
               seed=ROOT_SEEDS["T4"])                        # {N: [S, B, D]}
  slopes = fit_slopes(ang, p.fit_min)                        # [B, D]
  ws = sorted(ang)
  by_depth = {n: ang[n].mean(axis=(0, 1)) for n in ws}       # [D]
  # Each depth adds one layer's fresh randomness on top of the shared lower
  # layers, so neighbouring depths differ by a few per cent, within the
  # noise of 20 nets; "grows" is judged over the whole depth range: the
  # paired difference deepest - shallowest is positive beyond DEPTH_Z
  # standard errors, and the rank correlation of depth and angle is high.
  grows, gaps, rhos = {}, {}, {}
  for n in ws:
    if n < p.fit_min:
      continue
    diff = (ang[n][:, :, -1] - ang[n][:, :, 0]).mean(axis=1)   # [S]
    z = diff.mean() / (diff.std(ddof=1) / math.sqrt(len(diff)))
    rho = spearman(np.arange(len(depths)), by_depth[n])
    gaps[n], rhos[n] = float(z), float(rho)
    grows[n] = bool(z > DEPTH_Z and rho >= DEPTH_RHO)
  measured = {
      "network": f"d - 1 stride-1 3x3 convs + channel mean, d = 2.."
                 f"{p.t4_depth}, {p.size}x{p.size}",
      "slope_by_depth": {str(d): [round(float(s), 3) for s in slopes[:, i]]
                         for i, d in enumerate(depths)},
      "slope_range": [round(float(slopes.min()), 3),
                      round(float(slopes.max()), 3)],
      "mean_angle_by_depth": {str(n): [round(float(v), 4)
                                       for v in by_depth[n]] for n in ws},
      "grows_with_depth": {str(n): g for n, g in grows.items()},
      "deepest_minus_shallowest_z": {str(n): round(v, 1)
                                     for n, v in gaps.items()},
      "spearman_depth_angle": {str(n): round(v, 3) for n, v in rhos.items()},
      "seeds_per_width": {str(n): int(ang[n].shape[0]) for n in ws}}
  curves = {}
  for i, d in enumerate(depths):
    m = [ang[n][:, :, i].mean() for n in ws]
    se = [ang[n][:, :, i].mean(axis=1).std(ddof=1) /
          math.sqrt(ang[n].shape[0]) for n in ws]
    curves[f"depth {d}"] = (ws, m, se)
  fig = plot_angles(workdir / "angles.png", curves,
                    "T4 (Theorem 5.3): angle to the limit, by depth")
  return CheckResult(
      "T4",
      "for depths 2.. the angle shrinks like N^(-1/2), and at a fixed N it "
      "grows with depth",
      measured,
      f"every depth's and image's slope over N >= {p.fit_min} in "
      f"[{SLOPE_RANGE[0]}, {SLOPE_RANGE[1]}]; at every N >= {p.fit_min}: "
      f"angle(depth {p.t4_depth}) - angle(depth 2) > {DEPTH_Z:g} standard "
      f"errors (paired nets) and Spearman(depth, mean angle) >= {DEPTH_RHO}",
      convergence_holds(slopes) and all(grows.values()), [str(fig)],
      time.time() - start)


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


def t5(preset, workdir: Path, limit_fn=None) -> CheckResult:
  """T5: cos(alpha) >= 1 - <x, D>/||x||^2 >= 1 - ||D||/||x||, and cos(alpha)
  falls as the kernel grows."""
  from randconv import images
  p = get_preset(preset)
  workdir = Path(workdir)
  start = time.time()
  photos = PHOTOS_ALL
  x = images.load_batch(list(photos), p.t5_size)
  grey = grey_of(x)
  table = {}
  ok_bound, ok_fall = True, True
  for name, g in zip(photos, grey):
    row = []
    for k in p.t5_kernels:
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
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for i, (n, r) in enumerate(table.items()):
    line, = ax.plot(p.t5_kernels, [b["cos"] for b in r], "o-", ms=3,
                    label=n)
    ax.plot(p.t5_kernels, [b["middle"] for b in r], "--",
            color=line.get_color(), lw=0.8)
    ax.plot(p.t5_kernels, [b["lower"] for b in r], ":",
            color=line.get_color(), lw=0.8)
  ax.set_xlabel("kernel size k")
  ax.set_ylabel("cos(alpha); dashed 1 - <x,D>/|x|^2, dotted 1 - |D|/|x|")
  ax.set_title("T5 (Theorem 5.4): input vs two-layer limit", fontsize=9)
  ax.legend(fontsize=6)
  fig.tight_layout()
  path = workdir / "cos_alpha.png"
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return CheckResult(
      "T5",
      "cos(alpha) >= 1 - <x, Delta>/||x||^2 >= 1 - ||Delta||/||x|| for "
      "every photo and kernel; cos(alpha) falls as the kernel grows",
      measured,
      f"both inequalities for all {len(photos)} photos and k in "
      f"{list(p.t5_kernels)} (round-off slack 1e-12); cos(alpha) strictly "
      "decreasing in k for every photo",
      ok_bound and ok_fall, [str(path)], time.time() - start)


# --------------------------------------------------------------------------
# T6: the experiment's own network (max pooling) against the L2 limit

def t6(preset, workdir: Path) -> CheckResult:
  """T6: max pooling's angle to the L2 limit falls far below the input's."""
  from randconv.spec import make_spec
  from theory_checks import limits
  p = get_preset(preset)
  workdir = Path(workdir)
  start = time.time()
  x, names = inputs(p.photos, p.size)
  spec_l2 = make_spec("vgg16", p.t6_layer, output="mean", pooling="l2")
  lim = np.stack([limits.energy_limit(spec_l2, xi) for xi in x])
  base = np.array([float(limits.angle(grey_of(xi), li))
                   for xi, li in zip(x, lim)])
  config = {"check": "T6", "layer": p.t6_layer, "size": p.size,
            "photos": p.photos, "seeds": p.seeds,
            "small_seeds": p.small_seeds, "root_seed": ROOT_SEEDS["T6"]}
  specs = lambda n: make_spec("vgg16", p.t6_layer, output="mean",
                              pooling="max", width=n)
  ang = _sweep(workdir, config, specs, lim, x, p.t6_widths, p.seeds_for,
               seed=ROOT_SEEDS["T6"])
  ws = sorted(ang)
  per_image = np.stack([ang[n].mean(axis=0) for n in ws])  # [W, B]
  ratio = per_image[-1] / base
  local = np.diff(np.log(per_image), axis=0) / np.diff(np.log(ws))[:, None]
  level = {}
  for b, name in enumerate(names):
    flat = [ws[i + 1] for i in range(len(ws) - 1)
            if local[i, b] > LEVEL_SLOPE]
    level[name] = flat[0] if flat else None
  measured = {
      "network": f"vgg16 {p.t6_layer}, channel mean, max pooling, "
                 f"{p.size}x{p.size}",
      "input_limit_angle": {n: round(float(v), 4)
                            for n, v in zip(names, base)},
      "angle_by_width": {str(n): [round(float(v), 4) for v in per_image[i]]
                         for i, n in enumerate(ws)},
      "ratio_at_max_N": {n: round(float(v), 3) for n, v in zip(names, ratio)},
      "levels_off_from_N": level,
      "last_local_slope": {n: round(float(v), 3)
                           for n, v in zip(names, local[-1])}}
  ws_, means, ses = _summary(ang)
  fig = plot_angles(workdir / "angles.png",
                    {"max pooling vs L2 limit": (ws_, means, ses)},
                    "T6: the experiment's network (max pooling) vs the L2 "
                    "limit", hline={"input vs limit (mean)": float(
                        base.mean())})
  return CheckResult(
      "T6",
      "the max-pooling channel-mean network's angle to the L2 limit falls far "
      "below the angle between the grey input and that limit",
      measured,
      f"for every input, mean angle at N = {ws[-1]} < {T6_RATIO:.2f} x the "
      f"input-limit angle; levelling off reported where the local log-log "
      f"slope is above {LEVEL_SLOPE}",
      bool(np.all(ratio < T6_RATIO)), [str(fig)], time.time() - start)


def t7(preset, workdir: Path) -> CheckResult:
  """T7: the infinite-width law of the Figs. 8-9 network (an extension
  beyond the paper; :mod:`theory_checks.t7`)."""
  from theory_checks import t7 as check
  return check.t7(preset, Path(workdir))


CHECKS = {"T1": t1, "T2": t2, "T3": t3, "T4": t4, "T5": t5, "T6": t6,
          "T7": t7}


def run_checks(preset: str, out: Path, only=None) -> list[CheckResult]:
  """Runs the checks (all, or those in ``only``) into ``out/<id>/``."""
  out = Path(out)
  results = []
  for cid, fn in CHECKS.items():
    if only and cid not in only:
      continue
    results.append(fn(preset, out / cid.lower()))
  return results


__all__ = ["PRESETS", "Preset", "CheckResult", "t1", "t2", "t3", "t4", "t5",
           "t6", "t7", "run_checks", "fit_slopes", "convergence_holds",
           "two_layer_stats", "t5_bounds", "stack_spec"]
