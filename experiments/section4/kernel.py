"""Section 4.3 (S4f): rrVGG Conv1_1-DeConv1_1 with kernel 1, 3, 5, ...: its
cells, their per-kernel numbers, the curve and the claim."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.section4 import plots
from experiments.section4.cells import kernel_post, logged, run_cells, scores
from experiments.section4.rules import RANK_RISE, rounded
from randconv.metrics import spearman
from randconv.repro.registry import ClaimResult, claim_text
from randconv.rundir import RunDir
from randconv.spec import make_spec


def kernel_cells(log: RunDir, kernels, keys, x) -> tuple[int, int]:
  """Every (kernel, net) cell on ``x``, named ``k{kernel}/n{net}``.
  Returns (cells done, cells)."""
  total = done = 0
  for k in kernels:
    spec = make_spec("vgg16", "conv1_1", kernel_size=k)
    d, t = run_cells(log, spec, keys, x, kernel_post,
                     lambda i, k=k: f"k{k}/n{i}",
                     lambda res, k=k: {"kernel": k, **scores(res)})
    done, total = done + d, total + t
  return done, total


def kernel_stats(log: RunDir, kernels, n_nets: int) -> dict:
  """Per kernel whose nets are all logged: SSIM over the nets (mean, std)
  and the mean |r|."""
  ks, mean, std, rmean = [], [], [], []
  for k in kernels:
    recs = logged(log, f"k{k}", n_nets)
    if len(recs) < n_nets:
      continue
    s = np.array([r["ssim_mean"] for r in recs])
    ks.append(k)
    mean.append(float(s.mean()))
    std.append(float(s.std()))
    rmean.append(float(np.mean([r["r_abs_mean"] for r in recs])))
  return {"kernel": ks, "ssim_mean": mean, "ssim_std": std,
          "r_abs_mean": rmean}


def kernel_figures(st: dict, workdir: Path) -> list[str]:
  """The kernel-size curve (none before a kernel is done)."""
  if not st["kernel"]:
    return []
  return [str(plots.kernel_curve(
      st["kernel"], np.array(st["ssim_mean"]), np.array(st["ssim_std"]),
      Path(workdir) / "kernel_size.png", np.array(st["r_abs_mean"])))]


def claim_s4f(st: dict, note, status, figures) -> ClaimResult:
  """S4f from :func:`kernel_stats`."""
  ks, mean = st["kernel"], st["ssim_mean"]
  measured = {"kernel": ks, "ssim_mean": [rounded(v) for v in mean],
              "ssim_std": [rounded(v) for v in st["ssim_std"]],
              "r_abs_mean": [rounded(v) for v in st["r_abs_mean"]], **note}
  if len(ks) < 3:
    return ClaimResult("S4f", claim_text("S4f"), measured, None, status,
                       figures)
  rho = spearman(ks, mean)
  holds = rho <= -RANK_RISE and mean[-1] < mean[0]
  rule = (f"falls: Spearman(kernel, mean SSIM) <= -{RANK_RISE} and the "
          "largest kernel's SSIM below the smallest's")
  measured.update({"spearman_ssim_vs_kernel": rounded(rho), "rule": rule})
  return ClaimResult(
      "S4f", claim_text("S4f"), measured, bool(holds), status, figures,
      summary=(f"SSIM {mean[0]:.3f} at kernel {ks[0]} and {mean[-1]:.3f} at "
               f"{ks[-1]}, Spearman {rho:+.2f} (needs <= -{RANK_RISE})"),
      rule=rule, deciding={"kernels": ks,
                           "mean SSIM": [rounded(v) for v in mean],
                           "Spearman(kernel, SSIM)": rounded(rho)})
