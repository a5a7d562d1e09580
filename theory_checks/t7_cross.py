"""Check T7 (d): one net's outputs for different images are correlated.

A net of width N draws one set of weights for all the images it sees, so
its outputs for two images are not independent: at infinite width they are
one draw of a Gaussian process over *all* the images, whose kernel has
blocks between images (:func:`randconv.kernel_fn`). The per-image law of
(b) cannot say how one net's *mean* SSIM over the inputs spreads over nets;
this joint law can. (d) compares that spread, and the whole distribution,
with the library's nets at T7's large width, and reports what independent
per-image draws would have predicted instead.
"""

from __future__ import annotations

import math

import numpy as np

from randconv import kernels
from theory_checks import gp

KS_ALPHA = 0.01   # (b), (d): the KS tests must not reject at this
                  # family-wise level (Bonferroni over inputs x metrics)
MEAN_Z = 3.0      # (b), (c), (d): means within this many standard errors
STD_RATIO = (0.8, 1.25)  # (d): library std / joint-law std: about 4 SE of
                         # the log ratio for 200 nets and 1000 draws were
                         # SSIM Gaussian (2.8 SE at the quick preset's 100
                         # and 400); SSIM's skew makes it fewer


def joint_record(spec, x: np.ndarray, *, draws: int, samples: int,
                 seed: int) -> dict:
  """The joint law's record: per GP draw over all the images at once, the
  mean SSIM over the images (``joint_mean_ssim``), or ``unavailable`` with
  the reason when the kernel over all images is over the memory cap."""
  try:
    kernels.check_size(len(x), spec, *x.shape[1:3])
  except kernels.KernelError as e:
    return {"unavailable": str(e)}
  k = kernels.kernel_fn(spec, samples=samples, key=seed)(x)
  b, p = k.shape[:2]
  h, w = x.shape[1:3]
  out = gp.gp_samples(k.reshape(b * p, b * p), (b, h * w), draws,
                      seed=seed + 1).reshape(draws, b, h, w)
  ssim = np.stack([gp.metric_samples(x[i], out[:, i])["ssim"]
                   for i in range(b)])                      # [B, n]
  return {"joint_mean_ssim": ssim.mean(axis=0).tolist(),
          "joint_ssim_by_image": ssim.tolist()}


def distribution_test(lib: np.ndarray, gp_vals: np.ndarray,
                      alpha: float = KS_ALPHA) -> dict:
  """Two samples of one metric: mean difference in standard errors and the
  two-sample Kolmogorov-Smirnov test at level ``alpha``."""
  from scipy import stats
  a, b = np.asarray(lib, np.float64), np.asarray(gp_vals, np.float64)
  se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
  ks = stats.ks_2samp(a, b)
  return {"library_mean": round(float(a.mean()), 4),
          "gp_mean": round(float(b.mean()), 4),
          "z": round(float((a.mean() - b.mean()) / se), 2),
          "ks_stat": round(float(ks.statistic), 4),
          "ks_p": round(float(ks.pvalue), 4),
          "holds": bool(abs(a.mean() - b.mean()) <= MEAN_Z * se
                        and ks.pvalue >= alpha)}


def d_test(lib_ssim: np.ndarray, rec: dict, per_image_draws: list,
           alpha: float, mean_z: float) -> dict:
  """(d): the library's per-net mean SSIM over the inputs ([S, B] in) against
  the joint law's per-draw means: the means within ``mean_z`` SE, the KS
  test at ``alpha``, and the std ratio within :data:`STD_RATIO`. Also the
  std that independent per-image draws would predict."""
  if "unavailable" in rec:
    return {"holds": None, "unavailable": rec["unavailable"]}
  lib = np.asarray(lib_ssim, np.float64).mean(axis=1)
  joint = np.asarray(rec["joint_mean_ssim"], np.float64)
  indep = np.asarray(per_image_draws, np.float64).mean(axis=0)
  t = distribution_test(lib, joint, alpha)
  ratio = float(lib.std(ddof=1) / joint.std(ddof=1))
  in_range = STD_RATIO[0] <= ratio <= STD_RATIO[1]
  return {**t, "library_std": round(float(lib.std(ddof=1)), 4),
          "joint_std": round(float(joint.std(ddof=1)), 4),
          "independent_std": round(float(indep.std(ddof=1)), 4),
          "std_ratio": round(ratio, 3), "std_ratio_range": list(STD_RATIO),
          "z_within": mean_z,
          "holds": bool(t["holds"] and in_range)}


def plot(path, lib_ssim, rec: dict, per_image_draws, nets: int, width: int
         ) -> str | None:
  """CDFs of one net's mean SSIM over the inputs: library nets, the joint
  law, and independent per-image draws."""
  if "unavailable" in rec:
    return None
  from randconv.plotting import _plt, save_figure
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.2, 3.4))
  series = [
      (np.asarray(lib_ssim).mean(axis=1), f"{nets} library nets, N = "
       f"{width}", "C0", "-"),
      (np.asarray(rec["joint_mean_ssim"]), "joint law over the inputs "
       "(N = inf)", "C3", "-"),
      (np.asarray(per_image_draws).mean(axis=0), "independent per-image "
       "draws (wrong)", "grey", "--")]
  for v, label, c, ls in series:
    ax.plot(np.sort(v), np.linspace(0, 1, len(v)), color=c, ls=ls,
            label=f"{label}, std {np.std(v, ddof=1):.4f}")
  ax.set_xlabel("a net's mean SSIM over the inputs")
  ax.set_ylabel("empirical CDF")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=6.5)
  ax.set_title("T7 (d): one net's outputs for different inputs are "
               "correlated", fontsize=9)
  return str(save_figure(fig, path, caption=(
      "T7 (d): the distribution over nets of one net's mean SSIM over the "
      "inputs, library nets against the joint Gaussian-process law over all "
      "the inputs; independent per-image draws (dashed) understate or "
      "overstate its spread.")))


def summary(d: dict) -> str:
  if d.get("holds") is None:
    return "(d) not computed"
  return (f"(d) a net's mean SSIM over the inputs: std {d['library_std']:.3f}"
          f" (nets) vs {d['joint_std']:.3f} (joint law; independent draws "
          f"{d['independent_std']:.3f}), KS p {d['ks_p']:.3f}")


__all__ = ["KS_ALPHA", "MEAN_Z", "STD_RATIO", "distribution_test",
           "joint_record", "d_test", "plot", "summary"]
