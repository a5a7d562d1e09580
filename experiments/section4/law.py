"""Fig. 7 at infinite width (S4a, S4b): the law of each ConvK-DeConvK net.

Every net of Fig. 7 has a random *conv* output, so at infinite width its
output is a Gaussian process whose kernel :func:`randconv.kernel_fn` gives
(max pools sampled, docs/design.md); the SSIM of its draws against the cat
is the law's prediction for that row and depth. The full kernel is
``[HW, HW]`` float64, so the law runs at ``Fig7Config.law_size`` (64 px at
the cpu preset: 4,096 pixels, what ``RANDCONV_GP_MAX_PIXELS`` allows by
default), not at Fig. 7's 227 px; the library's own nets run beside it at
that size, so the law is compared with nets of the same input.

The cells live in ``<fig7 folder>/law/`` (their own config.json and
metrics.jsonl, resumable), apart from Fig. 7's cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.section4.cells import fig7_post, run_cells
from experiments.section4.configs import DIST, LAYERS, ROOT_SEED
from experiments.section4.data import offline_images
from experiments.section4.fig7 import FIG7_IMPL
from experiments.section4.rules import RANK_RISE
from randconv import engine
from randconv.deadline import Deadline
from randconv.metrics import spearman
from randconv.rundir import RunDir
from randconv.spec import make_spec

AGREE_SE = 3.0  # nets and law agree at a depth within this many SE


def _law_cell(spec, x: np.ndarray, draws: int, pool_samples: int,
              seed: int) -> dict:
  from theory_checks import gp
  pred = gp.predict_conv(spec, x, n=draws, samples=pool_samples, seed=seed)
  s = pred["ssim"]
  return {"gp_ssim_mean": float(s.mean()), "gp_ssim_std": float(s.std()),
          "gp_ssim_se": float(s.std(ddof=1) / np.sqrt(s.size)),
          "pool_rel_se": pred["law"].pool_rel_se}


def fig7_law(workdir: Path, cfg, keys, rows: dict, deadline: Deadline
             ) -> dict | None:
  """Per row of Fig. 7: the law's SSIM at Conv1..5 (mean, std over draws,
  SE) and the library nets' at the same size (mean, SE over nets). None
  when the time budget stopped it first (the same call resumes)."""
  size, seed = cfg.law_size, ROOT_SEED
  x, names = offline_images(1, size)
  log = RunDir(Path(workdir) / "law", {
      "experiment": "fig7_law", "size": size, "draws": cfg.law_draws,
      "pool_samples": cfg.law_pool_samples, "nets": len(keys),
      "width": cfg.width, "dist": DIST, "seed": seed, "images": names},
      deadline=deadline)
  out = {}
  for row, simplified in rows.items():
    law, nets = [], []
    for k, layer in enumerate(LAYERS, start=1):
      spec = make_spec("vgg16", layer, simplified=simplified, width=cfg.width)
      cell = f"gp/{row}/{layer}"
      if not log.has(cell):
        if log.out_of_time():
          return None
        log.append([{"cell": cell, **_law_cell(
            spec, x[0], cfg.law_draws, cfg.law_pool_samples, seed + k)}])
      law.append(log.get(cell))
      done, total = run_cells(
          log, spec, keys, x, fig7_post,
          lambda i, row=row, layer=layer: f"nets/{row}/{layer}/n{i}",
          lambda res: {"ssim": float(res["ssim"][0])},
          group_size=1, chunks=engine.Plan(1, len(x)), policy=FIG7_IMPL)
      if done < total:
        return None
      s = np.array([log.get(f"nets/{row}/{layer}/n{i}")["ssim"]
                    for i in range(len(keys))])
      nets.append({"ssim": float(s.mean()),
                   "se": float(s.std(ddof=1) / np.sqrt(s.size))
                   if s.size > 1 else 0.0})
    out[row] = {"law": law, "nets": nets}
  return {"size": size, "draws": cfg.law_draws, "nets": len(keys),
          "rows": out}


def summary(law: dict, row: str) -> dict:
  """One row's numbers for claims.json: the law and the nets at the law's
  size by depth, whether the law itself decays, and at which depths the
  nets agree with it (within :data:`AGREE_SE` standard errors)."""
  r = law["rows"][row]
  pred = [c["gp_ssim_mean"] for c in r["law"]]
  nets = [c["ssim"] for c in r["nets"]]
  agree = [abs(n["ssim"] - c["gp_ssim_mean"]) <= AGREE_SE * float(np.hypot(
      n["se"], c["gp_ssim_se"])) for n, c in zip(r["nets"], r["law"])]
  return {"size": law["size"], "draws": law["draws"], "nets": law["nets"],
          "law_ssim_conv1_to_conv5": [round(v, 4) for v in pred],
          "law_ssim_std_over_draws": [round(c["gp_ssim_std"], 4)
                                      for c in r["law"]],
          "nets_ssim_conv1_to_conv5": [round(v, 4) for v in nets],
          "law_spearman": round(spearman(range(1, 6), pred), 4),
          "agree_within_3se": agree,
          "max_pool_rel_se": round(max([max(c["pool_rel_se"] or [0.0])
                                        for c in r["law"]]), 4)}


def add_to_claims(results: list, workdir: Path, cfg, keys, rows: dict,
                  stats: dict, deadline: Deadline) -> None:
  """Computes the law of Fig. 7's ``rows`` (:func:`fig7_law`) and puts it
  into S4a's and S4b's ``results`` (:func:`explain`), with its figure
  beside Fig. 7's; ``stats``: Fig. 7's per-layer numbers by row."""
  law = fig7_law(workdir, cfg, keys, rows, deadline)
  measured_decays = {
      "original": bool(results[0].measured.get("decays")),
      "simplified": results[1].measured.get(
          "spearman_simplified_vs_k", 0.0) <= -RANK_RISE}
  for res, row in zip(results, rows):
    explain(res, law, row, measured_decays[row])
  if law is not None:
    fig = plot(Path(workdir) / "fig7_law.png", law, stats, cfg.size)
    for res in results:
      res.figures = list(res.figures) + [fig]


def explain(result, law: dict | None, row: str, decays: bool) -> None:
  """Puts what the infinite-width law says about Fig. 7's ``row`` into the
  claim's numbers and, where the claim does not hold, its explanation;
  ``decays``: whether the row's measured SSIM falls with depth (the part of
  the claim the law speaks to)."""
  if law is None:
    return
  s = summary(law, row)
  result.measured["infinite_width_law"] = s
  pred, nets = s["law_ssim_conv1_to_conv5"], s["nets_ssim_conv1_to_conv5"]
  law_decays = s["law_spearman"] <= -RANK_RISE and pred[0] > pred[4]
  agree = sum(s["agree_within_3se"])
  text = (f"At infinite width each net of this row is a Gaussian process; "
          f"at {s['size']} px its SSIM with the cat is "
          f"{', '.join(f'{v:.3f}' for v in pred)} for Conv1..5 (Spearman "
          f"{s['law_spearman']:+.2f}), and {s['nets']} library nets at "
          f"{s['size']} px measure {', '.join(f'{v:.3f}' for v in nets)} "
          f"(within {AGREE_SE:g} SE of the law at {agree} of 5 depths). ")
  if result.holds is not False:
    return
  late = pred[1:]
  if decays:
    text += ("The measured SSIM does fall with depth, so the claim fails on "
             "its other parts, which the law does not speak to.")
  elif law_decays:
    text += ("The law decays with depth but the measured SSIM does not: "
             "the miss is not the infinite-width law at work.")
  elif agree < 4:
    text += (f"Neither decays with depth, but the nets at {s['size']} px "
             f"follow the law at only {agree} of 5 depths, so the law does "
             "not account for the curve at this size.")
  else:
    text += (f"Neither the law nor the measured SSIM decays with depth: the "
             f"law changes by {late[0] - pred[0]:+.3f} from Conv1 to Conv2 "
             f"(past the first max pool), then Conv2-5 span "
             f"{min(late):.3f}-{max(late):.3f} (Spearman "
             f"{spearman(range(2, 6), late):+.2f}), so the measured shape "
             "is the infinite-width law at work.")
  result.explanation = " ".join(t for t in (text, result.explanation) if t)


def plot(path: Path, law: dict, stats: dict, size: int) -> str:
  """Per row of Fig. 7, SSIM against depth: the law (mean and +-1 std over
  its draws), the library nets at the law's size, and Fig. 7's own nets at
  ``size``."""
  from randconv.plotting import _plt, save_figure
  plt = _plt()
  rows = list(law["rows"])
  fig, axes = plt.subplots(1, len(rows), figsize=(4.6 * len(rows), 3.4),
                           sharey=True, squeeze=False)
  k = np.arange(1, 6)
  for ax, row in zip(axes[0], rows):
    r = law["rows"][row]
    m = np.array([c["gp_ssim_mean"] for c in r["law"]])
    sd = np.array([c["gp_ssim_std"] for c in r["law"]])
    ax.fill_between(k, m - sd, m + sd, color="C3", alpha=0.15)
    ax.plot(k, m, "s--", color="C3", ms=4,
            label=f"law, N = inf, {law['size']} px (+-1 std)")
    ax.errorbar(k - 0.06, [n["ssim"] for n in r["nets"]],
                yerr=[n["se"] for n in r["nets"]], fmt="o-", color="C0",
                ms=4, capsize=2, label=f"{law['nets']} nets, {law['size']} px")
    full = stats.get(row) or []
    if full and all(s is not None for s in full):
      ax.plot(k + 0.06, [s["ssim"] for s in full], "^:", color="C2", ms=4,
              label=f"Fig. 7's nets, {size} px")
    ax.set_xticks(k)
    ax.set_xticklabels([f"Conv{i}" for i in k])
    ax.set_title(f"{row} (row {rows.index(row) + 1})", fontsize=9)
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("SSIM with the cat")
  axes[0][0].legend(fontsize=7)
  fig.suptitle("Fig. 7 at infinite width: each ConvK-DeConvK net's "
               "Gaussian-process limit", fontsize=9)
  return str(save_figure(fig, path, caption=(
      f"SSIM of the cat's reconstruction against depth K: the infinite-"
      f"width law at {law['size']} px (red, +-1 std over draws), "
      f"{law['nets']} library nets at {law['size']} px (blue, +-1 SE) and "
      f"Fig. 7's nets at {size} px (green), per row of Fig. 7.")))
