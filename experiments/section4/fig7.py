"""Fig. 7 (S4a, S4b): the cat through rrVGG Conv1..Conv5 (row 1) and
through the simplified ConvK nets (row 2), several nets; SSIM, |r| and the
edge correlation of the cat, against a chance level made of the same nets'
outputs for other images.

Its cells, their per-layer numbers, the figure, and the two claims; the
infinite-width law of each net is :mod:`experiments.section4.law`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.section4 import plots
from experiments.section4.cells import fig7_post, logged, run_cells, run_group
from experiments.section4.configs import LAYERS
from experiments.section4.rules import (
  RANK_RISE,
  S4A_RULE,
  S4B_RULE,
  SIMILAR_ROWS,
  rounded,
  s4a_decision,
)
from randconv import engine
from randconv.metrics import spearman
from randconv.repro.registry import ClaimResult, claim_text
from randconv.rundir import RunDir
from randconv.spec import make_spec

# Fig. 7's deep nets run the direct reference convs: compiling the Winograd
# path of their 26 convs costs far more than the little compute Fig. 7
# needs (docs/performance.md, "Section 4's fixed choices").
FIG7_IMPL = "direct"
ROWS = {"original": False, "simplified": True}  # row -> simplified nets


def fig7_cells(log: RunDir, x, cfg, keys, rows: dict, prefix: str = ""
               ) -> tuple[int, int]:
  """Every (row, layer, net) cell of Fig. 7 on ``x`` (cells named
  ``{prefix}{row}/{layer}/n{net}``), one net per call with the direct
  convs (:data:`FIG7_IMPL`). Returns (cells done, cells)."""
  total = done = 0
  for k, layer in enumerate(LAYERS, start=1):
    for row, simplified in rows.items():
      spec = make_spec("vgg16", layer, simplified=simplified,
                       width=cfg.width)
      d, t = run_cells(
          log, spec, keys, x, fig7_post,
          lambda i, row=row, layer=layer: f"{prefix}{row}/{layer}/n{i}",
          lambda res, row=row, layer=layer, k=k: {
              "row": row, "layer": layer, "k": k,
              **{m: [float(v) for v in res[m]] for m in res if m != "grey"}},
          group_size=1, chunks=engine.Plan(1, len(x)), policy=FIG7_IMPL)
      done, total = done + d, total + t
  return done, total


def fig7_stats(log: RunDir, row: str, n_nets: int) -> list[dict | None]:
  """Per layer: the cat's numbers over the nets and the chance level (the
  same nets' outputs for the other images, compared with the cat)."""
  out = []
  for layer in LAYERS:
    recs = logged(log, f"{row}/{layer}", n_nets)
    if not recs:
      out.append(None)
      continue
    ssim = np.array([r["ssim"][0] for r in recs])
    er = np.array([r["edge_r"][0] for r in recs])
    chance = np.array([r["edge_r_vs_first"][1:] for r in recs]).ravel()
    chance_ssim = np.array([r["ssim_vs_first"][1:] for r in recs]).ravel()
    cstd = float(chance.std()) if chance.size > 1 else float("nan")
    out.append({
        "ssim": float(ssim.mean()), "ssim_std": float(ssim.std()),
        "r_abs": float(np.mean([abs(r["pearson"][0]) for r in recs])),
        "edge_r": float(er.mean()),
        "chance_edge_r": float(chance.mean()),
        "chance_ssim": float(chance_ssim.mean()),
        "contour_z": float((er.mean() - chance.mean()) / cstd)
        if cstd > 0 else float("nan"),
        "nets": len(recs)})
  return out


def fig7_figure(log, x, cfg, keys, rows, stats, workdir) -> str:
  """Per row and layer, the net closest to the mean SSIM of the cat."""
  pictures = {row: [] for row in rows}
  shown = {row: [] for row in rows}
  nets = {row: [] for row in rows}
  for row, simplified in rows.items():
    for layer, s in zip(LAYERS, stats[row]):
      spec = make_spec("vgg16", layer, simplified=simplified,
                       width=cfg.width)
      ssims = [log.get(f"{row}/{layer}/n{i}")["ssim"][0]
               for i in range(len(keys))]
      best = int(np.argmin(np.abs(np.array(ssims) - s["ssim"])))
      out = run_group(spec, keys[best:best + 1], x, fig7_post,
                      chunks=engine.Plan(1, len(x)), policy=FIG7_IMPL)
      pictures[row].append(out["grey"][0, 0])
      shown[row].append(float(out["ssim"][0, 0]))
      nets[row].append(best)
  return str(plots.fig7(
      x[0], pictures, shown, Path(workdir) / "fig7.png",
      [f"Conv{k}" for k in range(1, 6)], nets, len(keys)))


def _by_layer(stats: list[dict | None]) -> list[dict | None]:
  """A row's per-layer stats as a cut run shows them (None: not done)."""
  return [s and {k: rounded(v) if isinstance(v, float) else v
                 for k, v in s.items()} for s in stats]


def claim_s4a(orig, n_nets, size, note, status, figures) -> ClaimResult:
  """S4a from row 1's per-layer stats (:func:`fig7_stats`)."""
  if any(s is None for s in orig):
    return ClaimResult("S4a", claim_text("S4a"), {
        "by_layer": _by_layer(orig), **note},
        None, status, figures, rule=S4A_RULE)
  d = s4a_decision(orig)
  return ClaimResult("S4a", claim_text("S4a"), {
      "ssim_conv1_to_conv5": [rounded(v) for v in d["ssim"]],
      "spearman_ssim_vs_depth": rounded(d["rho"]),
      "edge_r_conv1_to_conv5": [rounded(s["edge_r"]) for s in orig],
      "chance_edge_r": [rounded(s["chance_edge_r"]) for s in orig],
      "contour_z_conv1_to_conv5": [rounded(v) for v in d["z"]],
      "decays": bool(d["decays"]), "contours_conv1_3": bool(d["contours"]),
      "rough_contour_conv4": bool(d["rough"]), "rule": S4A_RULE,
      "nets": n_nets, "size": size, **note},
      d["holds"], status, figures, summary=d["summary"], rule=S4A_RULE,
      deciding={"SSIM Conv1..5": [rounded(v) for v in d["ssim"]],
                "Spearman(K, SSIM)": rounded(d["rho"]),
                "edge-r z Conv1..5": [round(v, 1) for v in d["z"]]})


def claim_s4b(stats, note, status, figures) -> ClaimResult:
  """S4b from both rows' per-layer stats (:func:`fig7_stats`)."""
  orig, simp = stats["original"], stats["simplified"]
  if any(s is None for s in orig + simp):
    return ClaimResult("S4b", claim_text("S4b"), {
        "by_layer": _by_layer(simp), **note},
        None, status, figures, rule=S4B_RULE)
  a = np.array([s["ssim"] for s in orig])
  b = np.array([s["ssim"] for s in simp])
  rho_b = spearman(range(1, 6), b)
  diff = float(np.mean(np.abs(a - b)))
  spread = float(a.max() - a.min())
  similar = diff < SIMILAR_ROWS * spread
  explanation = ""
  if similar and rho_b > -RANK_RISE:
    explanation = (
        "Half of it holds: the rows are similar (width matters more than "
        "depth), but row 2 does not fall with K. Not settled: the simplified"
        " net is our reading of Fig. 7's second row (one conv, K - 1 pools; "
        "docs/design.md §2), and no other reading was run.")
  return ClaimResult("S4b", claim_text("S4b"), {
      "ssim_simplified_conv1_to_conv5": [rounded(v) for v in b],
      "ssim_original_conv1_to_conv5": [rounded(v) for v in a],
      "spearman_simplified_vs_k": rounded(rho_b),
      "mean_abs_row_difference": rounded(diff),
      "row1_range_over_k": rounded(spread), "rule": S4B_RULE, **note},
      bool(similar and rho_b <= -RANK_RISE), status, figures,
      summary=(f"row 2 SSIM {', '.join(f'{v:.3f}' for v in b)}; mean "
               f"|row 1 - row 2| {diff:.3f} vs {SIMILAR_ROWS} x {spread:.3f};"
               f" row 2's Spearman {rho_b:+.2f} (needs <= -{RANK_RISE})"),
      rule=S4B_RULE,
      deciding={"mean |row1 - row2|": rounded(diff),
                "row 1 range": rounded(spread),
                "Spearman(K, row 2 SSIM)": rounded(rho_b)},
      explanation=explanation)
