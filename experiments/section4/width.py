"""Figs. 8-10 (S4c, S4d, S4e): rrVGG truncated at pool1 (docs/design.md
§1) with the original output and the channel-mean output, width 4, 8, ...;
per net the mean SSIM and mean |r| over the images, then mean and std over
the nets (Figs. 8, 9); Fig. 10 from the same nets; T7's infinite-width
prediction per image beside them (theory_checks/README, "T7").

Its cells, their per-width numbers, the figures, T7's predictions and the
three claims.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from experiments.section4 import plots
from experiments.section4.cells import (
  logged,
  net_group_size,
  run_cells,
  run_group,
  scores,
  sweep_post,
)
from experiments.section4.configs import ROOT_SEED
from experiments.section4.rules import (
  RANK_RISE,
  RISE_RULE,
  RISE_T,
  converge,
  plateau_z,
  rise,
  rise_summary,
  rounded,
  sharpening,
  snr,
)
from randconv import metrics
from randconv.repro.registry import ClaimResult, claim_text
from randconv.rundir import RunDir
from randconv.spec import make_spec

VARIANTS = ("conv", "mean")  # the output: rrVGG's conv, the channel mean
T7_GP_SAMPLES = 200      # GP draws per image
T7_POOL_SAMPLES = 8192   # joint max-pool samples per image (full kernel)


def width_cells(log: RunDir, widths: list[int], keys, x) -> tuple[int, int]:
  """Every (variant, width, net) cell on ``x``, named
  ``{variant}/w{width}/n{net}``. Returns (cells done, cells)."""
  total = done = 0
  for w in widths:  # both variants at each width: a cut run has pairs
    for variant in VARIANTS:
      spec = make_spec("vgg16", "pool1", width=w, output=variant)
      d, t = run_cells(
          log, spec, keys, x, sweep_post,
          lambda i, variant=variant, w=w: f"{variant}/w{w}/n{i}",
          lambda res, variant=variant, w=w: {
              "variant": variant, "width": w,
              "r_mean": float(res["pearson"].mean()),
              **scores(res)})
      done, total = done + d, total + t
  return done, total


def width_stats(log: RunDir, variant: str, widths: list[int],
                n_nets: int) -> dict:
  """Per width whose nets are all logged: SSIM and |r| over the nets."""
  out = {"width": [], "ssim_mean": [], "ssim_std": [], "r_mean": [],
         "r_std": [], "nets": [], "ssim_image_std": []}
  for w in widths:
    recs = logged(log, f"{variant}/w{w}", n_nets)
    if len(recs) < n_nets:
      continue  # a width counts once all its nets are done
    s = np.array([r["ssim_mean"] for r in recs])
    r = np.array([r["r_abs_mean"] for r in recs])
    out["width"].append(w)
    out["ssim_mean"].append(float(s.mean()))
    out["ssim_std"].append(float(s.std()))
    out["r_mean"].append(float(r.mean()))
    out["r_std"].append(float(r.std()))
    out["nets"].append(len(recs))
    # One image's spread over nets, averaged over the images.
    out["ssim_image_std"].append(float(np.mean(np.std(
        [rec["ssim"] for rec in recs], axis=0))))
  return out


def curves(widths: list[int], stats: dict, theory: dict | None,
           wd: Path) -> list[str]:
  """Figs. 8 and 9 (none before a width is done)."""
  if not any(stats[v]["width"] for v in VARIANTS):
    return []
  return [str(plots.width_curves(
      widths, stats, "ssim", "SSIM", "Fig. 8: SSIM vs number of random "
      "channels (mean +- std over nets); dashed: T7's infinite-width "
      "prediction", wd / "fig8_ssim.png", theory=theory)),
          str(plots.width_curves(
      widths, stats, "r", "|Pearson r|", "Fig. 9: |r| vs number of random "
      "channels (mean +- std over nets); dashed: T7's prediction",
      wd / "fig9_pearson.png", theory=theory))]


# --------------------------------------------------------------------------
# T7's infinite-width predictions for Figs. 8-9: per image, the conv
# output's SSIM and |r| over draws of its Gaussian-process limit, and the
# channel mean's limit image's.

def _t7_cell(variant: str, x: np.ndarray, j: int) -> dict | str:
  """One image's T7 prediction record, or why it cannot be computed here
  (the conv output's full kernel over the size cap)."""
  from theory_checks import limits, t7
  try:
    if variant == "conv":
      return t7.conv_law(x, n=T7_GP_SAMPLES, samples=T7_POOL_SAMPLES,
                         seed=ROOT_SEED + j)[0]
    return t7.mean_law(x, seed=ROOT_SEED + j)[0]
  except limits.TheoryError as e:
    return str(e)


def t7_predictions(log: RunDir, x: np.ndarray) -> dict | None:
  """T7's predicted Fig. 8-9 values (mean over the images), as
  :func:`theory_checks.t7.predictions` gives them. A variant whose law
  cannot be computed here is left out, with the reason (it is not logged,
  so a larger cap on another machine computes it). The cell names carry
  the sample counts. None when the time budget ran out first."""
  from randconv import progress
  from theory_checks import gp, t7
  names = {"conv": f"t7/conv-n{T7_GP_SAMPLES}-p{T7_POOL_SAMPLES}",
           "mean": f"t7/mean-w{gp.WINDOW_SAMPLES}"}
  recs = [{} for _ in x]
  missing = {}
  for j in progress.iterate(range(len(x)), "T7 predictions", "image"):
    for variant, name in names.items():
      cell = f"{name}/i{j}"
      if not log.has(cell):
        if log.out_of_time():
          return None
        rec = _t7_cell(variant, x[j], j)
        if isinstance(rec, str):
          missing[variant] = rec
          continue
        log.append([{"cell": cell, **rec}])
      recs[j].update(log.get(cell))
  pred = {}
  if "conv" not in missing:
    pred["conv"] = t7.predictions(recs, "conv")
  if "mean" not in missing:
    pred["mean"] = t7.predictions(recs, "mean")
  for variant, why in missing.items():
    pred[f"{variant}_unavailable"] = why
  return pred


def _theory(theory: dict | None, variant: str, s: dict) -> dict:
  """T7's prediction beside the measured plateau, as numbers and words."""
  if not theory or variant not in theory:
    why = (theory or {}).get(f"{variant}_unavailable",
                             "not computed (time budget)")
    return {"t7_prediction": None, "theory": f"T7: {why}"}
  t = theory[variant]
  if variant == "conv":
    measured = (f"measured {s['ssim_mean'][-1]:.3f} +- "
                f"{s['ssim_image_std'][-1]:.3f} at width {s['width'][-1]:,}"
                if s["width"] else "")
    text = (f"T7 predicts a plateau of {t['ssim_mean']:.3f} +- "
            f"{t['ssim_std']:.3f} at infinite width (a Gaussian-process "
            f"output; mean, and one image's std over draws); {measured} "
            "(one image's std over nets)")
  else:
    measured = (f"measured {s['ssim_mean'][-1]:.3f} +- "
                f"{s['ssim_std'][-1]:.3f} at width {s['width'][-1]:,}"
                if s["width"] else "")
    text = (f"T7 predicts {t['ssim_mean']:.3f} at infinite width (the "
            f"max-pool limit image's SSIM); {measured}")
  return {"t7_prediction": {k: rounded(v) for k, v in t.items()},
          "theory": text}


# --------------------------------------------------------------------------
# Fig. 10.

def fig10(log: RunDir, cfg, x, names, keys, wd: Path,
          variant: str = "conv"):
  """Per image and width, the net whose SSIM on that image is closest to the
  mean over the nets; its output is recomputed (cheap)."""
  n_nets, size = cfg.nets, cfg.size
  prefix = "s4e" if variant == "conv" else f"s4e-{variant}"
  widths = [w for w in cfg.fig10_widths
            if all(log.has(f"{variant}/w{w}/n{i}") for i in range(n_nets))]
  if len(widths) < 2:
    return None
  rows = list(range(min(cfg.fig10_images, len(x))))
  outs, ssims, edges = [], [], []
  cache = {}
  for j in rows:
    o_row, s_row, e_row = [], [], []
    for w in widths:
      cell = f"{prefix}/i{j}/w{w}"
      per_net = np.array([log.get(f"{variant}/w{w}/n{i}")["ssim"][j]
                          for i in range(n_nets)])
      best = int(np.argmin(np.abs(per_net - per_net.mean())))
      spec = make_spec("vgg16", "pool1", width=w, output=variant)
      gsize = net_group_size(spec, size, n_nets, len(x))
      if gsize > 1:
        # Cheap nets: recompute best's cell group as the sweep did (the
        # same compiled call), then pick the net and the image.
        g0 = best // gsize * gsize
        group = range(g0, min(n_nets, g0 + gsize))
        if (w, g0) not in cache:
          cache[(w, g0)] = run_group(spec, keys[group.start:group.stop], x,
                                     sweep_post)
        res = cache[(w, g0)]
        i, jj = best - g0, j
      else:
        # Costly nets: only this image (one more compile, 1/B the work).
        res = run_group(spec, keys[best:best + 1], x[j:j + 1], sweep_post)
        i, jj = 0, 0
      shown = {m: float(res[m][i, jj]) for m in ("ssim", "edge_r")}
      if not log.has(cell):
        log.append([{"cell": cell, "image": j, "width": w, "net": best,
                  **shown, "mean_ssim_over_nets": float(per_net.mean())}])
      o_row.append(res["grey"][i, jj])
      s_row.append(shown["ssim"])
      e_row.append(shown["edge_r"])
    outs.append(o_row)
    ssims.append(s_row)
    edges.append(e_row)
  grey_in = [np.asarray(metrics.grey(jnp.asarray(x[j]))) for j in rows]
  path = plots.fig10(
      grey_in, outs, ssims, widths, [names[j].split(":")[0] for j in rows],
      wd / ("fig10.png" if variant == "conv" else f"fig10_{variant}.png"),
      "rrVGG" if variant == "conv" else "channel-mean variant")
  return {"widths": widths, "ssim": ssims, "edge_r": edges,
          "images": [names[j] for j in rows], "figure": str(path)}


# --------------------------------------------------------------------------
# The claims.

def _table(s: dict) -> dict:
  return {"width": s["width"],
          "ssim_mean": [rounded(v) for v in s["ssim_mean"]],
          "ssim_std": [rounded(v) for v in s["ssim_std"]],
          "r_abs_mean": [rounded(v) for v in s["r_mean"]],
          "r_abs_std": [rounded(v) for v in s["r_std"]]}


def _explain_s4c(theory: dict | None, holds: bool, s: dict) -> str:
  if holds or not theory or "conv" not in theory:
    return ""
  t = theory["conv"]
  zs = plateau_z(s, t)
  law = (f"T7: the random conv output layer makes the output exactly "
         f"Gaussian given the last hidden layer, and as the width grows its "
         f"kernel converges, so the output converges in distribution to a "
         f"Gaussian process, not to an image; its SSIM with the input "
         f"converges to a distribution, predicted at {t['ssim_mean']:.3f} "
         f"+- {t['ssim_std']:.3f} (mean, one image's std).")
  if zs and max(abs(z) for z in zs) <= 3:
    return (f"Effect absent, as predicted. {law} The measured mean SSIM "
            f"at every width >= 64 is within {max(abs(z) for z in zs):.1f} "
            "standard errors of that plateau, so more width cannot raise it.")
  return (f"{law} This run's curve is "
          f"{max((abs(z) for z in zs), default=float('nan')):.1f} standard "
          "errors from that plateau at some width >= 64: it has not "
          "settled on it.")


def claim_s4c(s, note, status, figures, theory=None) -> ClaimResult:
  """S4c from the conv output's :func:`width_stats`."""
  if len(s["width"]) < 3:
    return ClaimResult("S4c", claim_text("S4c"), {**_table(s), **note}, None,
                       status, figures, rule=RISE_RULE)
  rs, rr = rise(s), rise(s, "r")
  holds = rs["t"] >= RISE_T
  th = _theory(theory, "conv", s)
  return ClaimResult("S4c", claim_text("S4c"), {
      **_table(s), **th,
      "spearman_ssim_vs_width": rounded(rs["spearman"]),
      "spearman_r_vs_width": rounded(rr["spearman"]),
      "ssim_gain_smallest_to_largest": rounded(rs["gain"]),
      "welch_t_ssim_largest_vs_smallest": rounded(rs["t"]),
      "welch_t_r_largest_vs_smallest": rounded(rr["t"]),
      "rule": RISE_RULE, **note},
      bool(holds), status, figures,
      summary=f"{rise_summary(s)}; {th['theory']}", rule=RISE_RULE,
      deciding={"widths": s["width"],
                "mean SSIM": [rounded(v) for v in s["ssim_mean"]],
                "std over nets": [rounded(v) for v in s["ssim_std"]],
                "Welch t (largest vs smallest)": rounded(rs["t"]),
                "T7 prediction (N = inf)": th["t7_prediction"] and
                f"{th['t7_prediction']['ssim_mean']} +- "
                f"{th['t7_prediction']['ssim_std']}"},
      explanation=_explain_s4c(theory, holds, s))


def claim_s4d(stats, note, status, figures, theory=None) -> ClaimResult:
  """S4d from both variants' :func:`width_stats` (the channel mean's
  against rrVGG's)."""
  s, c = stats["mean"], stats["conv"]
  if len(s["width"]) < 3 or len(c["width"]) < 3:
    return ClaimResult("S4d", claim_text("S4d"), {**_table(s), **note}, None,
                       status, figures, rule=RISE_RULE)
  rs = rise(s)
  conv_mean, conv_conv = converge(s["ssim_mean"]), converge(c["ssim_mean"])
  snr_mean, snr_conv = snr(s), snr(c)
  std_shrinks = s["ssim_std"][-1] < s["ssim_std"][0]
  rises = rs["t"] >= RISE_T
  clearer = snr_mean > snr_conv
  converges = conv_mean < conv_conv or not conv_conv > 0
  th = _theory(theory, "mean", s)
  rule = (f"{RISE_RULE}; clearer: (rise / mean std) above the original's; "
          "convergence clearer: the last doubling's share of the rise below "
          "the original's; std at the largest width below the smallest's")
  conv_share = (f"rrVGG's {conv_conv:.0%}" if conv_conv == conv_conv
                else "rrVGG's none (it does not rise)")
  summary = (f"{rise_summary(s)}; rise/std {snr_mean:.1f} vs {snr_conv:.1f} "
             f"for rrVGG; last doubling {conv_mean:.0%} of the rise vs "
             f"{conv_share}; std {s['ssim_std'][0]:.3f} -> "
             f"{s['ssim_std'][-1]:.3f}; {th['theory']}")
  extra = dict(summary=summary, rule=rule, deciding={
      "widths": s["width"],
      "mean SSIM": [rounded(v) for v in s["ssim_mean"]],
      "std over nets": [rounded(v) for v in s["ssim_std"]],
      "Welch t": rounded(rs["t"]), "rise / mean std (mean, conv)":
      [rounded(snr_mean), rounded(snr_conv)],
      "T7 prediction (N = inf)": th["t7_prediction"] and
      th["t7_prediction"]["ssim_mean"]})
  if theory and "mean" in theory:
    z = plateau_z(s, theory["mean"], from_width=s["width"][-1])[0]
    extra["explanation"] = (
        f"T7: the channel-mean output converges to a fixed image, the "
        f"max-pool limit, whose SSIM with the input is "
        f"{theory['mean']['ssim_mean']:.3f}; at width {s['width'][-1]:,} the"
        f" measured mean is {s['ssim_mean'][-1]:.3f}, {z:+.1f} standard "
        "errors from it.")
  return ClaimResult("S4d", claim_text("S4d"), {
      **_table(s), **th,
      "spearman_ssim_vs_width": rounded(rs["spearman"]),
      "welch_t_ssim_largest_vs_smallest": rounded(rs["t"]),
      "std_smallest_width": rounded(s["ssim_std"][0]),
      "std_largest_width": rounded(s["ssim_std"][-1]),
      "rise_over_mean_std": {"mean": rounded(snr_mean),
                             "conv": rounded(snr_conv)},
      "last_doubling_share_of_rise": {"mean": rounded(conv_mean),
                                      "conv": rounded(conv_conv)},
      "rises": bool(rises), "clearer": bool(clearer),
      "converges_clearer": bool(converges), "std_shrinks": bool(std_shrinks),
      "rule": rule, **note},
      bool(rises and clearer and converges and std_shrinks), status, figures,
      **extra)


def claim_s4e(fig10, cfg, note, status, theory=None) -> ClaimResult:
  """Decided on rrVGG (the paper's network of Section 4.2, as Fig. 10 does
  not name the variant); the channel-mean variant's numbers come along."""
  if fig10["conv"] is None:
    return ClaimResult("S4e", claim_text("S4e"), note or None, None,
                       status if status != "measured" else "partial")
  conv = sharpening(fig10["conv"])
  ms = conv["mean_spearman_ssim_vs_width"]
  me = conv["mean_spearman_edge_r_vs_width"]
  rule = (f"sharpen (decided on rrVGG): over the shown pictures, mean "
          f"Spearman(width, SSIM) and mean Spearman(width, edge r) both >= "
          f"{RANK_RISE}")
  measured = {"images": fig10["conv"]["images"], **conv, "rule": rule,
              **note}
  figures = [fig10["conv"]["figure"]]
  if fig10.get("mean") is not None:
    measured["channel_mean_variant"] = sharpening(fig10["mean"])
    figures.append(fig10["mean"]["figure"])
  explanation = ""
  if theory and "conv" in theory:
    t = theory["conv"]
    measured["theory"] = (
        f"T7: at infinite width rrVGG's output is a draw of a Gaussian "
        f"process (SSIM {t['ssim_mean']:.3f} +- {t['ssim_std']:.3f}), not "
        "an image, so its pictures need not sharpen; the channel mean's "
        "converge to a fixed limit image")
    if not (ms >= RANK_RISE and me >= RANK_RISE):
      explanation = "Effect absent, as predicted. " + measured["theory"]
      mean = measured.get("channel_mean_variant")
      if mean and mean["mean_spearman_ssim_vs_width"] >= RANK_RISE:
        explanation += (" (the channel mean's own Fig. 10 sharpens: mean "
                        "Spearman(width, SSIM) "
                        f"{mean['mean_spearman_ssim_vs_width']:+.2f})")
      explanation += "."
  summary = (f"over the shown rrVGG pictures mean Spearman(width, SSIM) "
             f"{ms:+.2f} and (width, edge r) {me:+.2f} (both need >= "
             f"{RANK_RISE})")
  return ClaimResult("S4e", claim_text("S4e"), measured,
                     bool(ms >= RANK_RISE and me >= RANK_RISE), status,
                     figures, summary=summary, rule=rule,
                     deciding={"mean Spearman(width, SSIM)": ms,
                               "mean Spearman(width, edge r)": me},
                     explanation=explanation)
