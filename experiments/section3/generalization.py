"""S3d and S3e: validation against training-set losses, per layer (VGG) and
at Conv3 (VGG and AlexNet)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.section3 import reading as rd
from experiments.section3.plots import plot_bars, preset_tag, pretrained_name
from experiments.section3.runs import (
  ALEX,
  Run,
  Section3Config,
  find_weights,
  spread,
  with_seeds,
)
from randconv.deadline import Deadline
from randconv.repro.registry import ClaimResult

# --------------------------------------------------------------------------
# S3d, S3e: validation against training-set losses.

def _gap(n: dict) -> float:
  return abs(n["val_loss"] - n["train_eval_loss"]) / n["train_eval_loss"]


def _s3d_reading(r: rd.Reading, layers) -> tuple[dict, bool]:
  lower = {k: rd.every(a["val_loss"] < b["val_loss"] and a["train_eval_loss"] <
                   b["train_eval_loss"] for a, b in zip(
                       r.num[f"random {k}"], r.num[f"pre {k}"], strict=True))
           for k in layers}
  growth = {e: float(np.mean([b["val_loss"] / a["val_loss"] for a, b in zip(
      r.num[f"{e} {layers[0]}"], r.num[f"{e} {layers[-1]}"], strict=True)]))
            for e in ("random", "pre")}
  gaps = {k: max(_gap(n) for n in ns) for k, ns in r.num.items()}
  holds = (all(lower.values()) and growth["pre"] > growth["random"]
           and all(v <= 0.3 for v in gaps.values()))
  return {"random_lower": lower, "val_growth_first_to_last": growth,
          "largest_relative_train_val_gap": gaps}, bool(holds)


def _s3d_bars(r: rd.Reading, layers, path: Path, cfg, w) -> str:
  series, errors = {}, {}
  for enc in ("random", "pre"):
    for what, short in (("train_eval_loss", "train"), ("val_loss", "val")):
      if f"{enc} {layers[0]}" in r.num:
        stats = [spread(r.each(f"{enc} {k}", what)) for k in layers]
        series[f"{enc} {short}"] = [s["mean"] for s in stats]
        errors[f"{enc} {short}"] = [s["sd"] for s in stats]
  return plot_bars(list(layers), series, path,
                   f"VGG train vs validation loss, {r.scale} features "
                   f"({preset_tag(cfg)})\npre-trained VGG: "
                   f"{pretrained_name(w.vgg)}",
                   "Sec. 3.2: the final train and validation loss per image "
                   f"of the decoders of VGG {', '.join(layers)}, "
                   f"{r.scale} features, random"
                   + (" and pre-trained encoders." if w.vgg else " encoders "
                      "(pre-trained: not run, no weights)."),
                   errors if len(r.seeds) > 1 else None)


@rd.experiment("S3d", title="generalization: train vs validation, "
               "Conv1..Conv5, "
             "random and pre-trained VGG", name="s3d_generalization")
def run_s3d(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  layers = cfg.layers
  w = find_weights(cfg.weights)
  runs = {f"random {k}": Run("vgg16", k) for k in layers}
  if w.vgg:
    runs.update({f"pre {k}": Run("vgg16", k, w.vgg) for k in layers})
  out, figs = {}, []
  for scale, seeds in (("rms", cfg.seeds), ("raw", cfg.raw_seeds)):
    r = rd.reading(with_seeds(runs, seeds), cfg, workdir, deadline, scale)
    figs.append(_s3d_bars(r, layers, workdir / f"s3d_bars_{scale}.png", cfg,
                          w))
    checks, holds = _s3d_reading(r, layers) if w.vgg else ({}, None)
    out[scale] = rd.Verdict.of(r, holds, checks=checks)
  r, checks, holds = out["rms"].reading, out["rms"]["checks"], out["rms"].holds
  m = {"pretrained_vgg": w.vgg_note, "checks": checks,
       "raw_checks": out["raw"]["checks"], "split": rd.split_record(cfg)}
  rd.write_json(workdir, "s3d.json", m)
  if not w.vgg:
    return [rd.claim_result(
        "S3d", m, None, r, figs, "no pre-trained VGG16",
        status="needs weights")]
  lower, growth = checks["random_lower"], checks["val_growth_first_to_last"]
  gaps = checks["largest_relative_train_val_gap"]
  summary = (f"random below pre-trained in every seed at "
             f"{', '.join(k for k, v in lower.items() if v) or 'no layer'}; "
             f"mean val(last)/val(first) random {growth['random']:.3g} vs "
             f"pre-trained {growth['pre']:.3g}; largest |val - train| / "
             f"train {max(gaps.values()):.2f} (needs <= 0.3)")
  raw_lower = out["raw"]["checks"].get("random_lower", {})
  sens = rd.sensitivity_row(
      out["rms"], out["raw"], "raw: random below pre-trained at "
      + (", ".join(k for k, v in raw_lower.items() if v) or "no layer"))
  return [rd.claim_result(
      "S3d", m, holds, r, figs, summary,
      {"random below pre-trained": lower, "val growth": growth,
       "max train/val gap": max(gaps.values())}, sensitivity=sens)]


@rd.experiment("S3e", title="Conv3: VGG vs AlexNet, random vs pre-trained",
             name="s3e_conv3")
def run_s3e(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  w = find_weights(cfg.weights)
  layer = cfg.s3e_layer
  runs = {"VGG random": Run("vgg16", layer),
          "AlexNet random": Run(ALEX, layer)}
  if w.vgg:
    runs["VGG pre-trained"] = Run("vgg16", layer, w.vgg)
  if w.alexnet:
    runs["AlexNet pre-trained"] = Run(ALEX, layer, w.alexnet)
  out, figs = {}, []
  for scale, seeds in (("rms", cfg.seeds), ("raw", cfg.raw_seeds)):
    r = rd.reading(with_seeds(runs, seeds), cfg, workdir, deadline, scale)
    series, errors = {}, {}
    for what, short in (("train_eval_loss", "train"), ("val_loss", "val")):
      stats = [spread(r.each(k, what)) for k in r.labels]
      series[short] = [s["mean"] for s in stats]
      errors[short] = [s["sd"] for s in stats]
    figs.append(plot_bars(
        r.labels, series, workdir / f"s3e_bars_{scale}.png",
        f"{layer} train vs validation loss, {scale} features "
        f"({preset_tag(cfg)})\npre-trained VGG: {pretrained_name(w.vgg)}; "
        f"pre-trained AlexNet: {pretrained_name(w.alexnet)}",
        f"Sec. 3.2: the final train and validation loss per image of the "
        f"{layer} decoders ({', '.join(r.labels)}), {scale} features.",
        errors if len(r.seeds) > 1 else None))
    ar = r.num["AlexNet random"]
    m = {"alexnet_random_train_val_gap": [_gap(n) for n in ar]}
    holds = None
    if w.alexnet:
      ap = r.num["AlexNet pre-trained"]
      m["alexnet_pretrained_train_val_gap"] = [_gap(n) for n in ap]
      m["alexnet_random_pretrained_gap"] = [
          abs(b["val_loss"] - a["val_loss"]) / a["val_loss"]
          for a, b in zip(ar, ap, strict=True)]
      holds = (all(v <= 0.3 for v in m["alexnet_random_train_val_gap"])
               and all(v <= 0.3 for v in
                       m["alexnet_pretrained_train_val_gap"])
               and all(v <= 0.2 for v in m["alexnet_random_pretrained_gap"]))
    out[scale] = rd.Verdict.of(r, holds, measured=m)
  r, m, holds = out["rms"].reading, out["rms"]["measured"], out["rms"].holds
  m = {**m, "raw": out["raw"]["measured"], "layer": layer,
       "split": rd.split_record(cfg), "pretrained_vgg": w.vgg_note,
       "pretrained_alexnet": Path(w.alexnet).name if w.alexnet
       else "none given"}
  rd.write_json(workdir, "s3e.json", m)
  gap = rd.numbers(m["alexnet_random_train_val_gap"], ".2f")
  if not w.alexnet:
    ok = all(v <= 0.3 for v in m["alexnet_random_train_val_gap"])
    half = r.only(["AlexNet random"])
    half_st, why = half.status(ok)
    part = rd.verdict_word(half_st, ok)
    rgap = m["raw"]["alexnet_random_train_val_gap"]
    raw_half = rd.Verdict.of(out["raw"].reading.only(["AlexNet random"]),
                             all(v <= 0.3 for v in rgap))
    sens = rd.sensitivity_row(
        rd.Verdict(half, ok, half_st), raw_half, "raw random AlexNet half: "
        f"|val - train| / train {rd.numbers(rgap, '.2f')}")
    return [rd.claim_result(
        "S3e", m, None, r, figs,
        f"random AlexNet half: {part} (|val - train| / train "
        f"per seed {gap}, needs <= 0.3); the pre-trained AlexNet "
        "half needs AlexNet ImageNet weights",
        status="needs weights",
        reason="the pre-trained AlexNet half needs weights"
        + (f"; the random half is {half_st}: {why}" if why else ""),
        sensitivity=sens)]
  pre_gap = rd.numbers(m["alexnet_pretrained_train_val_gap"], ".2f")
  both_gap = rd.numbers(m["alexnet_random_pretrained_gap"], ".2f")
  summary = (f"AlexNet {layer} |val - train| / train per seed {gap} "
             f"(random), {pre_gap} (pre-trained); random/pre-trained gap "
             f"{both_gap} (needs <= 0.3, 0.3, 0.2)")
  sens = rd.sensitivity_row(out["rms"], out["raw"], "raw")
  return [rd.claim_result("S3e", m, holds, r, figs, summary, sensitivity=sens)]
