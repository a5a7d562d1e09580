"""How Section 4's claims are decided: the thresholds, the rules in words,
and the statistics the rules read (docs/reproduction.md, "Section 4").

Pure functions of the experiments' summary numbers: the sensitivity rows
decide a claim under another reading with the same functions as the claim
itself.
"""

from __future__ import annotations

import math

import numpy as np

from randconv.metrics import spearman

RANK_RISE = 0.8        # Spearman rho that counts as "rises"/"falls"
RISE_T = 3.0           # Welch t of the width sweep's rise, smallest->largest
RISE_RULE = (f"rises: the mean SSIM at the largest width exceeds the "
             f"smallest width's by Welch t >= {RISE_T} (std over nets); "
             "Spearman over all widths reported, not deciding: a curve that "
             "converges has a noisy plateau")
CONTOUR_Z = 3.0        # edge r this many chance stds above chance: contours
ROUGH_CONTOUR_Z = 1.0  # ... for the "rough contour" of Conv4
SIMILAR_ROWS = 0.5     # rows of Fig. 7 differ by < this x row 1's range

S4A_RULE = (f"decays: Spearman(K, SSIM) <= -{RANK_RISE} and SSIM(Conv1) > "
            f"SSIM(Conv5); contours: the cat's edge r (Sobel magnitudes) >= "
            f"chance + {CONTOUR_Z} chance std at Conv1-3, >= "
            f"{ROUGH_CONTOUR_Z} std at Conv4")
S4B_RULE = (f"similar: mean |row 1 - row 2| SSIM < {SIMILAR_ROWS} x row 1's "
            f"range over K, and row 2 also falls with K (Spearman <= "
            f"-{RANK_RISE})")


def rounded(v) -> float:
  """A number as claims.json shows it (4 decimals)."""
  return round(float(v), 4)


def s4a_decision(orig: list[dict]) -> dict:
  """S4a's verdict and sentence from Fig. 7 row 1's per-layer stats."""
  ssim = [s["ssim"] for s in orig]
  z = [s["contour_z"] for s in orig]
  rho = spearman(range(1, 6), ssim)
  decays = rho <= -RANK_RISE and ssim[0] > ssim[4]
  contours = all(v >= CONTOUR_Z for v in z[:3])
  rough = z[3] >= ROUGH_CONTOUR_Z
  return {"holds": bool(decays and contours and rough), "ssim": ssim,
          "z": z, "rho": rho, "decays": decays, "contours": contours,
          "rough": rough,
          "summary": (f"SSIM Conv1..5 {', '.join(f'{v:.3f}' for v in ssim)}"
                      f" (Spearman {rho:+.2f}, needs <= -{RANK_RISE}); edge-r"
                      f" z {', '.join(f'{v:.1f}' for v in z)} (needs >= "
                      f"{CONTOUR_Z:g} at Conv1-3, >= {ROUGH_CONTOUR_Z:g} at "
                      "Conv4)")}


def rise(s: dict, key: str = "ssim") -> dict:
  """The rise from the smallest to the largest width: its Welch t (per-net
  means, std over nets) decides; Spearman over all widths is reported."""
  m, sd, n = s[key + "_mean"], s[key + "_std"], s["nets"]
  se = math.sqrt(sd[0] ** 2 / n[0] + sd[-1] ** 2 / n[-1])
  gain = m[-1] - m[0]
  return {"spearman": spearman(s["width"], m), "gain": gain,
          "t": gain / se if se > 0 else float("inf") * np.sign(gain)}


def rise_summary(s: dict) -> str:
  """The rise's deciding numbers in words."""
  rs = rise(s)
  return (f"SSIM {s['ssim_mean'][0]:.3f} at width {s['width'][0]:,} and "
          f"{s['ssim_mean'][-1]:.3f} at {s['width'][-1]:,}, Welch t = "
          f"{rs['t']:.2f} ({'>=' if rs['t'] >= RISE_T else '<'} "
          f"{RISE_T:g})")


def plateau_z(s: dict, t: dict, from_width: int = 64) -> list[float]:
  """z of the measured mean SSIM against T7's prediction at each width >=
  ``from_width`` (SE: std over nets / sqrt(nets), and the prediction's)."""
  zs = []
  for w, m, sd, n in zip(s["width"], s["ssim_mean"], s["ssim_std"],
                         s["nets"]):
    if w >= from_width:
      se = math.sqrt(sd * sd / max(n - 1, 1) + t.get("ssim_se", 0.0) ** 2)
      zs.append((m - t["ssim_mean"]) / se if se > 0 else float("inf"))
  return zs


def converge(m: list[float]) -> float:
  """The last doubling's gain as a fraction of the whole rise."""
  total = m[-1] - m[0]
  return (m[-1] - m[-2]) / total if total > 0 else float("nan")


def snr(s: dict) -> float:
  """The rise over the mean std over nets (S4d's "clearer")."""
  return (s["ssim_mean"][-1] - s["ssim_mean"][0]) / max(
      1e-12, float(np.mean(s["ssim_std"])))


def sharpening(f: dict) -> dict:
  """Fig. 10's shown numbers and how they rank with the width (S4e)."""
  rho_s = [spearman(f["widths"], s) for s in f["ssim"]]
  rho_e = [spearman(f["widths"], e) for e in f["edge_r"]]
  return {"widths": f["widths"],
          "shown_ssim": [[rounded(v) for v in row] for row in f["ssim"]],
          "shown_edge_r": [[rounded(v) for v in row] for row in f["edge_r"]],
          "mean_spearman_ssim_vs_width": rounded(np.mean(rho_s)),
          "mean_spearman_edge_r_vs_width": rounded(np.mean(rho_e))}
