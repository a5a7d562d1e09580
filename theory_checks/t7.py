"""Check T7 (an extension beyond the paper): the infinite-width law of the
Figs. 8-9 network, VGG16 truncated at pool1 with *max* pooling, for both
outputs, against the library's own finite networks.

* (a) the empirical output kernel ``Sigma = sum_n sum_t d_n(p + t)
  d_n(p' + t)`` of a width-N net (d its last hidden layer) approaches the
  limit kernel K at the N^(-1/2) rate;
* (b) at one large width, the distributions of SSIM and |r| over many
  library nets match those over as many GP(0, K) samples;
* (c) the measured Fig. 8 curves approach the predictions: the GP's mean
  SSIM (conv output) and SSIM(input, max-pool limit) (channel mean).

README.md beside this file ("T7") states the theory; :mod:`theory_checks.gp`
computes the law.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from randconv import distributed
from randconv.deadline import NO_DEADLINE, Deadline
from randconv.repro.registry import preset_config
from theory_checks import common, gp
from theory_checks import montecarlo as mc
from theory_checks import t7_cross
from theory_checks.t7_cross import KS_ALPHA, MEAN_Z, distribution_test

ROOT_SEED = 7
NOISE_SHARE = 0.5  # (a): K's sampling error below this x the error at max N


@dataclass(frozen=True)
class T7Preset:
  """T7's sizes; the defaults are the cpu preset's, :data:`OVERRIDES` the
  others'."""

  preset: str = "cpu"
  size: int = 32
  photos: tuple = common.TWO_PHOTOS
  kernel_widths: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024,
                                    2048)  # (a)
  kernel_nets: int = 6
  fit_min: int = 64
  dist_width: int = 1024                  # (b)
  dist_nets: int = 200
  gp_samples: int = 1000
  sweep_widths: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256, 512,
                                   1024)  # (c)
  sweep_nets: int = 30
  pool_samples: int = gp.POOL_SAMPLES


OVERRIDES = {
    "quick": dict(preset="quick", size=16, kernel_widths=(16, 64, 256, 1024),
                  kernel_nets=3, dist_width=256, dist_nets=100,
                  gp_samples=400, sweep_widths=(4, 16, 64, 256),
                  sweep_nets=10),
    "cpu": {},
    "paper": dict(preset="paper", size=64, photos=tuple(
        (n, m) for n in common.PHOTOS_ALL[:4] for m in ("colour", "grey")),
                  kernel_nets=10, dist_nets=500, gp_samples=2000,
                  sweep_widths=(4, 8, 16, 32, 64, 128, 256, 512, 1024,
                                2048), sweep_nets=50, pool_samples=1 << 15),
}


def config_for(preset: str, **fields) -> T7Preset:
  return preset_config(T7Preset(), OVERRIDES, preset, **fields)


def specs(width: int | None = None):
  """The Figs. 8-9 network (VGG16 to pool1, max pooling): conv output and
  channel-mean output."""
  from randconv.spec import make_spec
  return {v: make_spec("vgg16", "pool1", width=width, output=v,
                       pooling="max") for v in ("conv", "mean")}


def hidden_name(spec) -> str:
  """The layer whose ReLU maps the output conv reads (deconv1_2 here)."""
  from randconv.spec import Conv
  layers = spec.layers
  at = max(i for i, l in enumerate(layers) if isinstance(l, Conv))
  return layers[at - 1].name


def _gram_fn(spec):
  import jax
  import jax.numpy as jnp

  from randconv.distributions import parse_distribution
  from randconv.modules import CNNDCN, apply_with_features
  name = hidden_name(spec)
  model = CNNDCN(spec, parse_distribution("gaussian:1.0").initializer(),
                 rescale=True)

  def fn(key, images):
    variables = model.init(key, method="draw")
    _, feats = apply_with_features(model, variables, images)
    d = feats[name]
    flat = d.reshape(d.shape[0], -1, d.shape[-1])
    return jnp.einsum("bpn,bqn->bpq", flat, flat,
                      precision=jax.lax.Precision.HIGHEST)

  return fn


def empirical_kernels(width: int, x: np.ndarray, n_nets: int, seed: int
                      ) -> np.ndarray:
  """[S, B, P, P] output kernels Sigma of ``n_nets`` library nets."""
  from randconv import engine
  spec = specs(width)["conv"]
  keys = engine.seed_keys(seed, n_nets)
  grams = engine.run_keys(_gram_fn(spec), keys, x, strategy="loop",
                          progress=f"T7 kernels N={width}")
  hw = x.shape[1:3]
  return np.stack([[gp.output_kernel(spec, g, hw) for g in per_net]
                   for per_net in np.asarray(grams, np.float64)])


def library_metrics(variant: str, width: int, x: np.ndarray, n_nets: int,
                    seed: int) -> dict[str, np.ndarray]:
  """SSIM and r [S, B] of ``n_nets`` library nets (the Section 4 engine)."""
  from randconv import engine, metrics
  spec = specs(width)[variant]
  keys = engine.seed_keys(seed, n_nets)
  out = engine.run_nets(spec, "gaussian:1.0", keys, x,
                        post=metrics.reconstruction_metrics, rescale=True)
  return {k: np.asarray(v, np.float64) for k, v in out.items()}


def conv_law(x: np.ndarray, *, n: int, samples: int, seed: int
             ) -> tuple[dict, dict]:
  """One image's conv-output prediction: its record (SSIM and |r| of
  ``n`` GP draws, the pool's sampling error) and :func:`gp.predict_conv`'s
  result (the law and the draws)."""
  pred = gp.predict_conv(specs()["conv"], x, n=n, samples=samples,
                         seed=seed)
  return ({"gp_ssim": pred["ssim"].tolist(),
           "gp_pearson_abs": pred["pearson_abs"].tolist(),
           "kernel_pool_rel_se": pred["law"].pool_rel_se}, pred)


def mean_law(x: np.ndarray, *, seed: int) -> tuple[dict, np.ndarray]:
  """One image's channel-mean prediction: its record (SSIM and |r| of the
  max-pool limit image, its sampling error) and the limit image."""
  from theory_checks import limits
  info = {}
  lim = limits.limit_image(specs()["mean"], x, "max", seed=seed, info=info)
  m = gp.metric_samples(x, lim[None].astype(np.float32))
  return ({"limit_ssim": float(m["ssim"][0]),
           "limit_pearson_abs": float(m["pearson_abs"][0]),
           "limit_pool_rel_se": info.get("pool_rel_se", [])}, lim)


def laws(p: T7Preset, x: np.ndarray, log, samples_dir: Path,
         kernels: dict[int, np.ndarray]) -> list[dict]:
  """Per photo the :func:`conv_law` and :func:`mean_law` records; the
  limit kernels computed on the way go into ``kernels`` (for (a))."""
  out = []
  for b, xb in enumerate(x):
    rec = log.find(tag="law", photo=b)
    if rec is None:
      mc.check_time(log, f"T7's law of input {b}")
      t0 = time.time()
      conv, pred = conv_law(xb, n=p.gp_samples, samples=p.pool_samples,
                            seed=ROOT_SEED + 10 * b)
      kernels[b] = pred["law"].kernel
      mean, lim = mean_law(xb, seed=ROOT_SEED + b)
      if distributed.is_main():  # many processes: process 0 writes
        samples_dir.mkdir(parents=True, exist_ok=True)
        np.save(samples_dir / f"gp_{b}.npy", pred["samples"][:8])
        np.save(samples_dir / f"limit_{b}.npy", lim.astype(np.float32))
      rec = log.append({"tag": "law", "photo": b, **conv, **mean,
                     "seconds": round(time.time() - t0, 1)})
    out.append(rec)
  return out


def _limit_kernel(p, x, b: int, seed_shift: int = 0) -> np.ndarray:
  return gp.full_law(specs()["conv"], x[b], samples=p.pool_samples,
                     seed=ROOT_SEED + 10 * b + seed_shift).kernel


def _kernel_errors(p, x, log, kernels: dict[int, np.ndarray]):
  """(a): {N: [S, B]} best-scale relative errors of Sigma against K (the
  kernel of :func:`laws`: the same pool samples; ``kernels`` holds those
  already computed), and the error of K itself from its max-pool sampling:
  the best-scale error between two estimates with independent samples,
  over sqrt(2)."""
  def kernel(b):
    if b not in kernels:
      kernels[b] = _limit_kernel(p, x, b)
    return kernels[b]

  errs = {}
  rec = log.find(tag="kernel_noise")
  if rec is None:
    mc.check_time(log, "T7's kernel noise")
    rec = log.append({"tag": "kernel_noise", "error": [
        gp.best_scale_error(_limit_kernel(p, x, b, seed_shift=5),
                            kernel(b)) / math.sqrt(2)
        for b in range(len(x))]})
  noise = float(max(rec["error"]))
  for n in p.kernel_widths:
    rec = log.find(tag="kernel", width=n)
    if rec is None:
      mc.check_time(log, f"T7's kernel at width {n}")
      t0 = time.time()
      sig = empirical_kernels(n, x, p.kernel_nets, ROOT_SEED + 1)
      e = [[gp.best_scale_error(sig[s, b], kernel(b))
            for b in range(len(x))] for s in range(len(sig))]
      rec = log.append({"tag": "kernel", "width": n, "error": e,
                     "seconds": round(time.time() - t0, 1)})
    errs[n] = np.asarray(rec["error"])
  return errs, noise


def _sweep(p, x, log):
  """(b) and (c): {variant: {N: {"ssim", "pearson"} [S, B]}}: ``sweep_nets``
  nets per width and output, but ``dist_nets`` for the conv output at
  ``dist_width``, where (b) and (c) both use all of them."""
  from randconv import progress
  res = {"conv": {}, "mean": {}}
  for n in progress.iterate(sorted(set(p.sweep_widths) | {p.dist_width}),
                            "T7 sweep", "width"):
    for v in ("conv", "mean"):
      if v == "mean" and n not in p.sweep_widths:
        continue
      nets = p.dist_nets if (v == "conv" and n == p.dist_width) \
          else p.sweep_nets
      rec = log.find(tag="sweep", variant=v, width=n)
      if rec is None:
        mc.check_time(log, f"T7's sweep at width {n} ({v})")
        t0 = time.time()
        m = library_metrics(v, n, x, nets, ROOT_SEED + 2)
        rec = log.append({"tag": "sweep", "variant": v, "width": n,
                       "ssim": m["ssim"].tolist(),
                       "pearson": m["pearson"].tolist(),
                       "seconds": round(time.time() - t0, 1)})
      res[v][n] = {k: np.asarray(rec[k]) for k in ("ssim", "pearson")}
  return res


def predictions(law_recs: list[dict], variant: str | None = None) -> dict:
  """Fig. 8's predicted infinite-width values (mean over the photos).

  Conv output: the mean SSIM (and |r|) over GP draws; ``ssim_std`` the
  spread of one image's SSIM over draws (averaged over the photos: what the
  per-image law predicts; one net's outputs for different images are
  correlated, which independent per-image draws do not model, so this is
  not the spread of a net's mean over images: (d) predicts that from the
  law over all the images at once, :mod:`theory_checks.t7_cross`);
  ``ssim_se`` the standard
  error of the predicted mean. Channel mean: SSIM(input, limit), no spread.
  With ``variant`` only that variant's dict is returned (and only its
  records' keys are needed).
  """
  if variant == "mean":
    return {"ssim_mean": float(np.mean([r["limit_ssim"] for r in law_recs])),
            "ssim_std": 0.0, "ssim_se": 0.0,
            "r_mean": float(np.mean([r["limit_pearson_abs"]
                                     for r in law_recs])), "r_std": 0.0}
  g = np.array([r["gp_ssim"] for r in law_recs])            # [B, n]
  gr = np.array([r["gp_pearson_abs"] for r in law_recs])
  per_draw = g.mean(0)   # one GP draw per photo
  conv = {"ssim_mean": float(g.mean()),
          "ssim_std": float(g.std(axis=1, ddof=1).mean()),
          "ssim_se": float(per_draw.std(ddof=1) / math.sqrt(g.shape[1])),
          "r_mean": float(gr.mean()),
          "r_std": float(gr.std(axis=1, ddof=1).mean())}
  if variant == "conv":
    return conv
  return {"conv": conv, "mean": predictions(law_recs, "mean")}


def approach(sweep: dict, pred: dict, widths, fit_min: int) -> dict:
  """(c) for one variant: per width the measured mean SSIM (per net the
  mean over photos, then over nets) against the prediction."""
  rows, ok = {}, True
  for n in widths:
    per_net = sweep[n]["ssim"].mean(axis=1)
    m = float(per_net.mean())
    se = math.sqrt(per_net.var(ddof=1) / per_net.size + pred["ssim_se"] ** 2)
    z = (m - pred["ssim_mean"]) / se
    rows[str(n)] = {"ssim": round(m, 4), "se": round(se, 4),
                    "z": round(z, 2), "error": round(abs(m - pred[
                        "ssim_mean"]), 4)}
    if n >= fit_min:
      ok &= abs(z) <= MEAN_Z
  first, last = rows[str(widths[0])], rows[str(widths[-1])]
  shrinks = last["error"] < first["error"]
  return {"by_width": rows, "within": bool(ok), "error_shrinks": bool(shrinks),
          "holds": bool(ok and shrinks)}


def _preset(preset) -> T7Preset:
  """The sizes of a preset name or a :class:`T7Preset`."""
  return preset if isinstance(preset, T7Preset) else config_for(preset)


def _b_tests(lib: dict, law_recs: list[dict], names: list[str]
             ) -> tuple[dict, float]:
  """(b): per input the :func:`distribution_test` of SSIM and of |r|,
  library nets ``lib`` against the GP draws, and the level of each test
  (Bonferroni: family-wise KS_ALPHA)."""
  alpha = KS_ALPHA / (2 * len(names))
  dist = {}
  for b, nm in enumerate(names):
    dist[nm] = {
        "ssim": distribution_test(lib["ssim"][:, b],
                                  law_recs[b]["gp_ssim"], alpha),
        "pearson_abs": distribution_test(np.abs(lib["pearson"][:, b]),
                                         law_recs[b]["gp_pearson_abs"],
                                         alpha)}
  return dist, alpha


def t7(preset, workdir: Path, *,
       deadline: Deadline = NO_DEADLINE) -> common.CheckResult:
  """T7: the infinite-width law of the Figs. 8-9 network (max pooling)."""
  p = _preset(preset)
  workdir = Path(workdir)
  start = time.time()
  x, names = common.inputs(p.photos, p.size)
  log = mc.open_log(workdir, {"check": "T7", **dataclasses.asdict(p),
                              "root_seed": ROOT_SEED}, deadline)
  kernels: dict[int, np.ndarray] = {}   # K per photo, computed once
  law_recs = laws(p, x, log, workdir / "samples", kernels)
  errs, noise = _kernel_errors(p, x, log, kernels)
  slopes = common.fit_slopes(errs, p.fit_min)                # [B]
  top = float(errs[max(errs)].mean())
  sweep = _sweep(p, x, log)
  dist, alpha = _b_tests(sweep["conv"][p.dist_width], law_recs, names)
  cross = _d_test(p, x, log, sweep["conv"][p.dist_width]["ssim"], law_recs)
  pred = predictions(law_recs)
  widths = sorted(sweep["mean"])
  curves = {v: approach(sweep[v], pred[v], widths, p.fit_min)
            for v in ("conv", "mean")}
  a_holds = common.convergence_holds(slopes) and noise < NOISE_SHARE * top
  b_holds = all(d["holds"] for v in dist.values() for d in v.values())
  c_holds = all(c["holds"] for c in curves.values())
  d_holds = cross["holds"]  # None: the joint kernel is over the memory cap
  measured = {
      "network": f"vgg16 pool1, max pooling, conv and channel-mean output, "
                 f"{p.size}x{p.size}, {len(names)} inputs",
      **_a_measured(names, slopes, errs, noise, law_recs),
      "a_holds": a_holds,
      "b_width": p.dist_width, "b_nets": p.dist_nets,
      "b_gp_samples": p.gp_samples, "b_tests": dist, "b_holds": b_holds,
      "b_ks_alpha_per_test": alpha,
      "b_min_ks_p": min(t["ks_p"] for v in dist.values()
                        for t in v.values()),
      "c_prediction": {v: {k: round(val, 4) for k, val in d.items()}
                       for v, d in pred.items()},
      "c_conv": curves["conv"], "c_mean": curves["mean"],
      "c_fit_min": p.fit_min,
      "c_holds": c_holds,
      "d_cross_image": cross, "d_holds": d_holds,
      "limit_pool_rel_se": round(max(max(r["limit_pool_rel_se"] or [0.0])
                                     for r in law_recs), 5)}
  figs = figures(workdir, p, x, names, errs, noise, sweep, pred, law_recs,
                 dist)
  fig_d = t7_cross.plot(workdir / "cross_image.png",
                        sweep["conv"][p.dist_width]["ssim"],
                        log.find(tag="joint"), [r["gp_ssim"] for r in
                                                law_recs],
                        p.dist_nets, p.dist_width)
  return common.CheckResult(
      "T7",
      "the Figs. 8-9 network with max pooling converges to a Gaussian "
      "process (conv output) and to a fixed image (channel mean): its "
      "kernel at the N^(-1/2) rate, its SSIM and |r| in distribution, "
      "Fig. 8's curves to the predicted plateaus, and one net's mean SSIM "
      "over the inputs as the law over all the inputs at once predicts",
      measured, _tolerance(p, len(names)),
      bool(a_holds and b_holds and c_holds and d_holds is not False),
      [str(f) for f in figs + [fig_d] if f], time.time() - start)


def _d_test(p, x, log, lib_ssim, law_recs) -> dict:
  """(d): the joint law's record (computed once, logged) and its test."""
  rec = log.find(tag="joint")
  if rec is None:
    mc.check_time(log, "T7's law over all inputs")
    t0 = time.time()
    rec = log.append({"tag": "joint", **t7_cross.joint_record(
        specs()["conv"], x, draws=p.gp_samples, samples=p.pool_samples,
        seed=ROOT_SEED + 1000), "seconds": round(time.time() - t0, 1)})
  return t7_cross.d_test(lib_ssim, rec, [r["gp_ssim"] for r in law_recs],
                         KS_ALPHA, MEAN_Z)


def _a_measured(names, slopes, errs, noise: float, law_recs) -> dict:
  """(a)'s numbers: the kernel error's slopes and values, and the
  sampling errors of the max pool and of K itself."""
  floor = max(max(r["kernel_pool_rel_se"] or [0.0]) for r in law_recs)
  return {"a_kernel_slope_per_image": {nm: round(float(s), 3)
                                       for nm, s in zip(names, slopes)},
          "a_kernel_error": {str(n): round(float(e.mean()), 4)
                             for n, e in errs.items()},
          "a_pool_sampling_rel_se": round(floor, 5),
          "a_limit_kernel_sampling_error": round(noise, 5)}


def _tolerance(p: T7Preset, n_inputs: int) -> str:
  """What (a), (b) and (c) must meet, in words."""
  return (
      f"(a) every per-image log-log slope of the kernel error over N >= "
      f"{p.fit_min} ({p.kernel_nets} nets per N) in [{common.SLOPE_RANGE[0]},"
      f" {common.SLOPE_RANGE[1]}], and K's own sampling error below "
      f"{NOISE_SHARE:g} x the error at the largest N; (b) at N = "
      f"{p.dist_width}, {p.dist_nets} "
      f"nets vs {p.gp_samples} GP samples per input and metric: means within "
      f"{MEAN_Z:g} SE and KS p >= {KS_ALPHA} / {2 * n_inputs} (Bonferroni)"
      f"; (c) at every N >= {p.fit_min}"
      f" mean SSIM ({p.sweep_nets} nets) within {MEAN_Z:g} SE of the "
      "prediction, and the error at the largest N below the smallest's, for "
      f"both outputs; (d) at N = {p.dist_width}, a net's mean SSIM over the "
      f"inputs ({p.dist_nets} nets) against {p.gp_samples} joint draws over "
      f"all inputs: means within {MEAN_Z:g} SE, KS p >= {KS_ALPHA}, std "
      f"ratio in [{t7_cross.STD_RATIO[0]}, {t7_cross.STD_RATIO[1]}] (not "
      "part of the verdict where the joint kernel is over the memory cap)")


# --------------------------------------------------------------------------
# Figures

def figures(workdir, p, x, names, errs, noise, sweep, pred, law_recs, dist):
  figs = []
  ws = sorted(errs)
  curves = {nm: (ws, [errs[n][:, b].mean() for n in ws],
                 [errs[n][:, b].std(ddof=1) / math.sqrt(errs[n].shape[0])
                  for n in ws]) for b, nm in enumerate(names)}
  figs.append(common.plot_angles(
      workdir / "kernel_error.png", curves,
      "T7 (a): relative error of the output kernel Sigma/N vs its limit K",
      hline={"sampling error of K itself": noise},
      ylabel="min_c ||c Sigma - K|| / ||K||",
      caption="T7 (a): the relative error of the conv output's empirical "
      "kernel Sigma/N against its limit K, per input, against N (log-log); "
      "dotted: the N^(-1/2) rate; dash-dot: K's own sampling error."))
  figs.append(plot_distributions(workdir / "distributions.png", sweep, p,
                                 law_recs, names, dist))
  figs.append(plot_fig8(workdir / "fig8_theory.png", sweep, pred))
  figs.append(plot_samples(workdir / "samples.png", x, names,
                           workdir / "samples"))
  return figs


def plot_distributions(path, sweep, p, law_recs, names, dist):
  from randconv.plotting import _plt, save_figure
  plt = _plt()
  lib = sweep["conv"][p.dist_width]
  fig, axes = plt.subplots(len(names), 2, figsize=(8, 2.6 * len(names)),
                           squeeze=False)
  for b, nm in enumerate(names):
    for j, (key, gkey, label) in enumerate(
        (("ssim", "gp_ssim", "SSIM"),
         ("pearson", "gp_pearson_abs", "|r|"))):
      ax = axes[b, j]
      a = lib[key][:, b]
      a = np.abs(a) if key == "pearson" else a
      g = np.asarray(law_recs[b][gkey])
      for v, lab, c in ((a, f"{p.dist_nets} library nets, N = "
                         f"{p.dist_width}", "C0"),
                        (g, f"{len(g)} GP samples (N = inf)", "C3")):
        ax.plot(np.sort(v), np.linspace(0, 1, len(v)), color=c, label=lab)
      d = dist[nm]["ssim" if key == "ssim" else "pearson_abs"]
      ax.set_title(f"{nm}: {label}, KS p = {d['ks_p']:.2f}", fontsize=8)
      ax.set_ylabel("empirical CDF", fontsize=8)
      ax.grid(alpha=0.3)
      if b == 0 and j == 0:
        ax.legend(fontsize=7)
  fig.suptitle("T7 (b): conv output, library nets vs the Gaussian-process "
               "limit", fontsize=9)
  return save_figure(fig, path, caption=(
      f"T7 (b): per input (row), the empirical CDFs of SSIM and |r| of "
      f"{p.dist_nets} library nets at N = {p.dist_width} (blue) and of the "
      "Gaussian-process limit's samples (red), KS p-value above."))


def plot_fig8(path, sweep, pred):
  """Fig. 8 with theory: the measured curves and the predicted plateaus."""
  from randconv.plotting import width_panels
  stats = {}
  for v in ("conv", "mean"):
    ws = sorted(sweep[v])
    per_net = [sweep[v][n]["ssim"].mean(axis=1) for n in ws]
    per_r = [np.abs(sweep[v][n]["pearson"]).mean(axis=1) for n in ws]
    stats[v] = {"width": ws, "ssim_mean": [float(a.mean()) for a in per_net],
                "ssim_std": [float(a.std()) for a in per_net],
                "r_mean": [float(a.mean()) for a in per_r],
                "r_std": [float(a.std()) for a in per_r]}
  return width_panels(
      stats, "ssim", "SSIM",
      "T7 (c): Fig. 8 at the T7 size, measured and predicted (N = inf)",
      path, [("conv", "(a) rrVGG Conv1-DeConv1"),
             ("mean", "(b) channel-mean variant")],
      theory=pred, theory_label="T7: N = inf",
      caption="T7 (c): the mean SSIM of library nets against their width "
      "(band: +-1 std over nets) beside the infinite-width prediction (red "
      "dashed), (a) conv output, (b) channel mean.")


def plot_samples(path, x, names, samples_dir: Path):
  from randconv.plotting import image_grid, unit
  if not distributed.is_main():
    return Path(path)  # the samples and the figure are process 0's
  rows, titles = [], []
  for b, nm in enumerate(names):
    draws = np.load(samples_dir / f"gp_{b}.npy")[:4]
    lim = np.load(samples_dir / f"limit_{b}.npy")
    rows.append([x[b], unit(lim)] + [unit(d) for d in draws])
    titles.append([nm[:18], "channel-mean limit"] +
                  [f"GP sample {i + 1}" for i in range(len(draws))])
  return image_grid(rows, path, titles=titles, cell=1.5,
                    suptitle="T7: the infinite-width outputs: the channel "
                    "mean's limit image and draws of the conv output's GP"
                    "\ngrey panels min-max scaled",
                    caption="T7: per input (row), the input, the channel-mean "
                    "output's limit image and draws of the conv output's "
                    "Gaussian process (N = inf), each min-max scaled.")
