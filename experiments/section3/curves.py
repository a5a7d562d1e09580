"""S3a-S3c: the training curves (Fig. 5): random against pre-trained
encoders, Gaussian sigmas, and the four distributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.section3 import reading as rd
from experiments.section3.plots import plot_curves, preset_tag, pretrained_name
from experiments.section3.runs import (
  ALEX,
  PAPER_DISTS,
  Run,
  Section3Config,
  find_weights,
  spread,
  with_seeds,
)
from randconv.deadline import Deadline
from randconv.repro.registry import ClaimResult

# --------------------------------------------------------------------------
# S3a.

def _lower_faster(r: rd.Reading, rand: str, pre: str) -> dict:
  """Per seed: random below pre-trained at the end and at 10/25/50%."""
  out = {"lower_final": [], "converges_faster": [], "relative_gap": []}
  for a, b in zip(r.num[rand], r.num[pre], strict=True):
    out["lower_final"].append(a["final_loss"] < b["final_loss"])
    out["converges_faster"].append(all(
        a[f"smoothed_at_{p}pct"] < b[f"smoothed_at_{p}pct"]
        for p in (10, 25, 50)))
    out["relative_gap"].append((b["final_loss"] - a["final_loss"])
                               / b["final_loss"])
  out["holds"] = (rd.every(out["lower_final"])
                  and rd.every(out["converges_faster"]))
  return out


def _s3a_reading(r: rd.Reading, w) -> tuple[dict, bool | None, bool | None]:
  """(checks, VGG half's verdict, the whole claim's verdict)."""
  fin = {k: r.each(k, "final_loss") for k in r.labels}
  checks: dict = {"vgg_random_below_alexnet_random": [
      a < b for a, b in zip(fin["VGG random"], fin["AlexNet random"],
                            strict=True)]}
  vgg_half = whole = None
  if w.vgg:
    checks["vgg"] = _lower_faster(r, "VGG random", "VGG pre-trained")
    vgg_half = checks["vgg"]["holds"] and rd.every(
        checks["vgg_random_below_alexnet_random"])
  if w.alexnet:
    checks["alexnet"] = _lower_faster(r, "AlexNet random",
                                      "AlexNet pre-trained")
  if w.vgg and w.alexnet:
    checks["vgg_pretrained_below_alexnet_pretrained"] = [
        a < b for a, b in zip(fin["VGG pre-trained"],
                              fin["AlexNet pre-trained"], strict=True)]
    checks["gap_larger_on_vgg"] = bool(
        np.mean(checks["vgg"]["relative_gap"]) >
        np.mean(checks["alexnet"]["relative_gap"]))
    whole = (vgg_half and checks["alexnet"]["holds"]
             and checks["gap_larger_on_vgg"]
             and rd.every(checks["vgg_pretrained_below_alexnet_pretrained"]))
  return checks, vgg_half, whole


@rd.experiment("S3a", title="Fig. 5a: Conv2-DeConv2 loss curves, VGG vs "
               "AlexNet, "
             "random vs pre-trained", name="s3a_loss_curves")
def run_s3a(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  w = find_weights(cfg.weights)
  runs = {"VGG random": Run("vgg16", "conv2"),
          "AlexNet random": Run(ALEX, "conv2")}
  if w.vgg:
    runs["VGG pre-trained"] = Run("vgg16", "conv2", w.vgg)
  if w.alexnet:
    runs["AlexNet pre-trained"] = Run(ALEX, "conv2", w.alexnet)
  main = rd.reading(with_seeds(runs, cfg.seeds), cfg, workdir, deadline, "rms")
  raw = rd.reading(with_seeds(runs, cfg.raw_seeds), cfg, workdir, deadline,
                 "raw")
  title = (f"pre-trained VGG: {pretrained_name(w.vgg)}; pre-trained "
           f"AlexNet: {pretrained_name(w.alexnet)}")
  figs = [plot_curves({k: r.results(k) for k in r.labels},
                      workdir / f"s3a_loss_{r.scale}.png",
                      f"Conv2-DeConv2, {r.scale} features "
                      f"({preset_tag(cfg)})\n{title}",
                      f"Fig. 5a: the Conv2-DeConv2 decoders' training loss "
                      f"(smoothed) against the step, {r.scale} features, one"
                      f" curve per encoder ({', '.join(r.labels)}).")
          for r in (main, raw)]
  out = {}
  for r in (main, raw):
    checks, half, whole = _s3a_reading(r, w)
    st, why = r.status(half)
    # Judged on the whole claim where both halves ran, else on the VGG
    # half; the status is the VGG half's.
    out[r.scale] = rd.Verdict(
        r, half if whole is None else whole, st,
        {"checks": checks, "half": half, "whole": whole, "why": why, "fin": {
            k: spread(r.each(k, "final_loss"))["mean"] for k in r.labels}})
  rms, raw_v = out["rms"], out["raw"]
  checks, half, whole = rms["checks"], rms["half"], rms["whole"]
  fin, st, why = rms["fin"], rms.status, rms["why"]
  m = {"pretrained_vgg": w.vgg_note, "split": rd.split_record(cfg),
       "pretrained_alexnet": Path(w.alexnet).name if w.alexnet
       else "none given", "checks": checks, "raw_checks": raw_v["checks"]}
  rd.write_json(workdir, "s3a.json", m)
  words = "mean final loss " + ", ".join(f"{k} {v:.4g}"
                                         for k, v in fin.items())
  raw_words = "raw mean final loss " + ", ".join(
      f"{k} {v:.4g}" for k, v in raw_v["fin"].items())
  sens = rd.sensitivity_row(rms, raw_v, raw_words)
  if w.vgg and not w.alexnet:
    half_word = rd.verdict_word(st, half)
    return [rd.claim_result(
        "S3a", m, None, main, figs,
        f"VGG half: {half_word} (random VGG below pre-trained "
        "VGG and below random AlexNet in every seed); AlexNet "
        "half: needs weights (give --weights alexnet-owt-*.pth;"
        f" docs/weights.md); {words}",
        {"VGG half": half_word, **fin}, status="needs weights",
        reason="the AlexNet half needs AlexNet ImageNet weights"
        + (f"; the VGG half is {st}: {why}" if why else ""),
        sensitivity=sens)]
  if not w.vgg:
    return [rd.claim_result(
        "S3a", m, None, main, figs, words + " (no pre-trained weights)",
        fin, status="needs weights", sensitivity=sens)]
  return [rd.claim_result(
      "S3a", m, bool(whole), main, figs, words, fin, sensitivity=sens)]


# --------------------------------------------------------------------------
# S3b, S3c: training curves of one architecture.

def _span(values) -> float:
  return max(values) / min(values)


@rd.experiment("S3b", title="Fig. 5b: random VGG Conv2, several Gaussian "
               "sigmas",
             name="s3b_sigmas")
def run_s3b(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  runs = {f"sigma {s:g}": Run("vgg16", "conv2", dist=f"gaussian:{s:g}")
          for s in cfg.sigmas}
  r = rd.reading(with_seeds(runs, cfg.seeds), cfg, workdir, deadline, "raw")
  fig = plot_curves({k: r.results(k) for k in r.labels},
                    workdir / "s3b_loss.png",
                    f"random VGG Conv2, Gaussian sigmas, raw features "
                    f"({preset_tag(cfg)})",
                    "Fig. 5b: the random VGG Conv2 decoders' training loss "
                    "(smoothed) against the step, raw features, one curve "
                    "per sigma of the encoder's Gaussian weights.")
  first = [_span([r.num[k][i]["first_loss"] for k in r.labels])
           for i in range(len(r.seeds))]
  final = [_span([r.num[k][i]["final_loss"] for k in r.labels])
           for i in range(len(r.seeds))]
  learned = {k: r.each(k, "learned") for k in r.labels}
  holds = (all(v > 2 for v in first) and all(v <= 10 for v in final)
           and all(rd.every(v) for v in learned.values()))
  m = {"first_loss_ratio": first, "final_loss_ratio": final,
       "learned": learned, "split": rd.split_record(cfg)}
  rd.write_json(workdir, "s3b.json", m)
  no = [k for k, v in learned.items() if not rd.every(v)]
  span = lambda vs: rd.numbers(vs, ".3g").replace(",", "x,") + "x"  # noqa: E731
  summary = (f"per seed, first losses span {span(first)} (needs > 2), final"
             f" losses {span(final)} (needs <= 10); did not learn: "
             f"{', '.join(no) or 'none'}")
  return [rd.claim_result(
      "S3b", m, bool(holds), r, [fig], summary,
      {f"final loss, {k}": spread(r.each(k, "final_loss"))["mean"]
       for k in r.labels}, exempt=tuple(r.labels))]


@rd.experiment("S3c", title="Fig. 5c: gaussian, uniform, logistic, laplace",
             name="s3c_distributions")
def run_s3c(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  runs = {d: Run("vgg16", "conv2", dist=d) for d in PAPER_DISTS}
  out, figs = {}, []
  for scale, seeds in (("rms", cfg.seeds), ("raw", cfg.raw_seeds)):
    r = rd.reading(with_seeds(runs, seeds), cfg, workdir, deadline, scale)
    figs.append(plot_curves(
        {k: r.results(k) for k in r.labels},
        workdir / f"s3c_loss_{scale}.png",
        f"random VGG Conv2 per distribution, {scale} features "
        f"({preset_tag(cfg)})",
        "Fig. 5c: the random VGG Conv2 decoders' training loss (smoothed) "
        f"against the step, {scale} features, one curve per distribution of"
        " the encoder's weights."))
    ratio = [_span([r.num[k][i]["final_loss"] for k in r.labels])
             for i in range(len(r.seeds))]
    out[scale] = rd.Verdict.of(r, all(v <= 1.25 for v in ratio),
                               ratio=ratio)
  r, ratio, holds = out["rms"].reading, out["rms"]["ratio"], out["rms"].holds
  raw_ratio = out["raw"]["ratio"]
  m = {"final_loss_ratio": ratio, "raw_final_loss_ratio": raw_ratio,
       "split": rd.split_record(cfg)}
  rd.write_json(workdir, "s3c.json", m)
  fin = {k: spread(r.each(k, "final_loss"))["mean"] for k in r.labels}
  summary = (f"mean final losses {rd.numbers(fin.values(), '.3g')}; per "
             f"seed ratio {rd.numbers(ratio, '.2f')} (needs <= 1.25)")
  sens = rd.sensitivity_row(out["rms"], out["raw"], "raw final-loss ratio "
                            f"{rd.numbers(raw_ratio, '.2f')}")
  return [rd.claim_result(
      "S3c", m, bool(holds), r, figs, summary,
      {f"final loss, {k}": v for k, v in fin.items()},
      sensitivity=sens)]
