"""S3f and S3g: reconstructions, Conv1..Conv5 of random VGG and AlexNet,
and the cat per distribution (Fig. 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.section3 import reading as rd
from experiments.section3.plots import (
  figure_images,
  recon_words,
  reconstructions,
)
from experiments.section3.runs import (
  ALEX,
  PAPER_DISTS,
  Run,
  Section3Config,
  with_seeds,
)
from randconv import plotting
from randconv.deadline import Deadline
from randconv.repro.registry import ClaimResult

# --------------------------------------------------------------------------
# S3f, S3g: reconstructions.

def _decays(ssims: list[float]) -> bool:
  return ssims[-1] < ssims[0] and all(
      b <= a + 0.02 for a, b in zip(ssims[:-1], ssims[1:], strict=True))


def _ssims(r: rd.Reading, x: np.ndarray) -> tuple[dict, dict]:
  """(seed 0's outputs per label, SSIM [seeds, images] per label)."""
  outs, ssim = {}, {}
  for k in r.labels:
    rows = []
    for i, res in enumerate(r.results(k)):
      y, s = reconstructions(res, x)
      rows.append(s)
      if i == 0:
        outs[k] = y
    ssim[k] = np.stack(rows)
  return outs, ssim


def _arch(a: str) -> str:
  return "VGG" if a == "vgg16" else "AlexNet"


@rd.experiment("S3f", title="reconstructions: Conv1..Conv5 of random VGG and "
             "random AlexNet", name="s3f_reconstructions")
def run_s3f(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  layers = cfg.layers
  runs = {f"{_arch(a)} {k}": Run(a, k) for a in ("vgg16", ALEX)
          for k in layers}
  names, x = figure_images(cfg)
  out = {}
  for scale, seeds in (("rms", cfg.seeds), ("raw", cfg.raw_seeds)):
    r = rd.reading(with_seeds(runs, seeds), cfg, workdir, deadline, scale)
    outs, ssim = _ssims(r, x)
    mean = {a: [float(ssim[f"{a} {k}"].mean()) for k in layers]
            for a in ("VGG", "AlexNet")}
    above = [rd.every(ssim[f"VGG {k}"].mean(axis=1) >
                  ssim[f"AlexNet {k}"].mean(axis=1)) for k in layers]
    holds = _decays(mean["VGG"]) and _decays(mean["AlexNet"]) and all(above)
    out[scale] = rd.Verdict.of(r, bool(holds), outs=outs, ssim=ssim,
                               mean=mean, above=above)
  v = out["rms"]
  r, holds, outs, ssim = v.reading, v.holds, v["outs"], v["ssim"]
  mean, above, raw_mean = v["mean"], v["above"], out["raw"]["mean"]
  rows = [[x[j]] + [outs[k][j] for k in r.labels] for j in range(len(names))]
  titles = [[f"input: {n}"] + [f"{k}\nSSIM {ssim[k][0, j]:.2f}"
                               for k in r.labels]
            for j, n in enumerate(names)]
  head, words = recon_words(cfg, list(r.res.values()))
  fig = plotting.image_grid(
      rows, workdir / "s3f_grid.png", titles=titles,
      suptitle="random VGG (rwVGG) and random AlexNet (rwAlexNet) with "
      f"trained decoders, rms features, seed {r.seeds[0]} {head}",
      caption="Sec. 3.3: per image (row), the input beside its "
      "reconstructions through random VGG and AlexNet "
      f"{', '.join(layers)} with trained decoders (rms features, seed "
      f"{r.seeds[0]}), clipped to [0, 1], SSIM above each; the claim uses "
      "the mean over seeds." + words)
  m = {"images": names, "layers": list(layers), "mean_ssim": mean,
       "vgg_decays": _decays(mean["VGG"]),
       "alexnet_decays": _decays(mean["AlexNet"]),
       "vgg_above_alexnet_every_seed": above,
       "ssim_per_seed": {k: v.mean(axis=1).tolist() for k, v in ssim.items()},
       "raw_mean_ssim": raw_mean, "split": rd.split_record(cfg)}
  rd.write_json(workdir, "s3f.json", m)
  summary = (f"mean SSIM Conv1..{len(layers)}: VGG "
             f"{rd.numbers(mean['VGG'])}; AlexNet "
             f"{rd.numbers(mean['AlexNet'])}; VGG above "
             f"in every seed at {sum(above)} of {len(layers)} layers")
  sens = rd.sensitivity_row(
      v, out["raw"], f"raw mean SSIM VGG {rd.numbers(raw_mean['VGG'])}; "
      f"AlexNet {rd.numbers(raw_mean['AlexNet'])}")
  return [rd.claim_result(
      "S3f", m, holds, r, [fig], summary,
      {"VGG SSIM": mean["VGG"], "AlexNet SSIM": mean["AlexNet"]},
      sensitivity=sens)]


@rd.experiment("S3g", title="Fig. 6: the cat through random VGG Conv2 per "
             "distribution", name="s3g_cat")
def run_s3g(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  bad = {f"gaussian:{s:g}": Run("vgg16", "conv2", dist=f"gaussian:{s:g}")
         for s in cfg.sigmas if s in (0.001, 1.0)}
  good = {d: Run("vgg16", "conv2", dist=d) for d in PAPER_DISTS}
  _, x = figure_images(cfg)
  cat = x[:1]
  braw = rd.reading(with_seeds(bad, cfg.seeds), cfg, workdir, deadline,
                    "raw")
  bouts, bssim = _ssims(braw, cat)
  out = {}
  for scale, seeds in (("rms", cfg.seeds), ("raw", cfg.raw_seeds)):
    r = rd.reading(with_seeds(good, seeds), cfg, workdir, deadline, scale)
    outs, ssim = _ssims(r, cat)
    n = len(r.seeds)
    spread_ = [max(ssim[d][i, 0] for d in r.labels) -
               min(ssim[d][i, 0] for d in r.labels) for i in range(n)]
    below = {d: [min(ssim[g][i, 0] for g in r.labels) - bssim[d][i, 0]
                 for i in range(n)] for d in braw.labels}
    holds = all(v <= 0.05 for v in spread_) and any(
        all(v > 0.05 for v in vs) for vs in below.values())
    out[scale] = rd.Verdict.of(r, bool(holds), outs=outs, ssim=ssim,
                               spread=spread_, below=below)
  v = out["rms"]
  r, holds, outs, ssim = v.reading, v.holds, v["outs"], v["ssim"]
  spread_, below, raw_spread = v["spread"], v["below"], out["raw"]["spread"]
  head, words = recon_words(cfg, list(r.res.values()) +
                            list(braw.res.values()))
  labels = r.labels + braw.labels
  fig = plotting.image_grid(
      [[cat[0]] + [outs[d][0] for d in r.labels] +
       [bouts[d][0] for d in braw.labels]], workdir / "s3g_grid.png",
      titles=[["input"] + [f"{d} (rms)\nSSIM {ssim[d][0, 0]:.3f}"
                           for d in r.labels] +
              [f"{d} (raw)\nSSIM {bssim[d][0, 0]:.3f}" for d in braw.labels]],
      suptitle=f"the cat through random VGG Conv2 + trained decoder, seed "
      f"{r.seeds[0]} {head}",
      caption="Fig. 6: the cat beside its reconstructions through random "
      "VGG Conv2 with a trained decoder, one per distribution (rms "
      "features) or badly scaled Gaussian (raw features), seed "
      f"{r.seeds[0]}, clipped to [0, 1], SSIM above each." + words)
  m = {"ssim_per_seed": {**{d: ssim[d][:, 0].tolist() for d in r.labels},
                         **{d: bssim[d][:, 0].tolist() for d in braw.labels}},
       "paper_scale_spread": spread_, "badly_scaled_below_by": below,
       "raw_paper_scale_spread": raw_spread, "split": rd.split_record(cfg)}
  rd.write_json(workdir, "s3g.json", m)
  mean = {d: float(np.mean(m["ssim_per_seed"][d])) for d in labels}
  words = ", ".join(f"{d} {v:.3f}" for d, v in mean.items())
  summary = (f"mean SSIM on the cat {words}; paper-scale spread per seed "
             f"{rd.numbers(spread_)} (needs <= 0.05)")
  sens = rd.sensitivity_row(v, out["raw"], "raw paper-scale spread "
                            f"{rd.numbers(raw_spread)}")
  return [rd.claim_result(
      "S3g", m, holds, r.joined(braw), [fig], summary,
      mean, sensitivity=sens,
      exempt=tuple(braw.labels))]
