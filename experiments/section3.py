"""Section 3 of the paper: decoders trained on random and pre-trained
encoders, S3a-S3g (Fig. 5, the generalization and reconstruction figures,
Fig. 6).

Commands (docs/section3.md has the protocol, the pilot and their measured
times):

  randconv reproduce --preset quick --only S3a S3b S3c S3d S3e S3f S3g --out DIR
  randconv reproduce --preset cpu --only S3a S3b S3c S3d S3e S3f S3g --out DIR
  randconv reproduce --preset cpu --weights alexnet-owt-7be5be79.pth --out DIR
  RANDCONV_TIME_BUDGET_S=480 randconv reproduce --preset paper --only S3a \\
      --out DIR        # one GPU, ImageNet through tfds; stops with a checkpoint

Every claim is its own registered experiment, but they share their
training runs (experiments/section3_runs.py): each run (arch, layer,
encoder, distribution, seed, feature reading) trains once in
``OUT/section3_runs/<preset>/<run>/`` and resumes when the command is run
again. Figures go to each experiment's folder.

The protocol (docs/section3.md): 64 px crops at the cpu preset (AlexNet's
Conv3-5 maps are 3x3 there; VGG and AlexNet at the same size), decoders on
cached features, Adam at a constant rate until 80% of each layer's step
budget (chosen from a pilot), 3 seeds. Claims that compare encoders or
distributions read ``rms`` features (each encoder's and layer's features
divided by their RMS over the training crops: a scalar changes no
information); the paper's raw reading is each claim's sensitivity row,
decided by the same rule. S3b and S3g's badly scaled sigmas are claims
about scale and stay raw. A claim is decided only when every deciding run
converged and learned (section3_runs.CONVERGENCE_RULE); the rules below
hold "in every seed" unless said.

* S3a: random < pre-trained at the end (final training loss) and on the
  smoothed curve at 10%, 25% and 50% of the steps, for VGG and for AlexNet;
  the mean relative gap larger on VGG; random VGG < random AlexNet and
  pre-trained VGG < pre-trained AlexNet. Without AlexNet ImageNet weights
  the VGG half (VGG's random < pre-trained, random VGG < random AlexNet) is
  decided and said so; the claim stays "needs weights".
* S3b (raw): the first losses span more than a factor 2, the final losses
  lie within a factor 10, and every sigma's decoder learned (one that
  cannot use its features is the scale's effect: it counts against).
* S3c: the four final losses lie within a factor 1.25.
* S3d: at every layer random VGG's validation and training-set losses are
  below pre-trained VGG's; the mean val(Conv5) / val(Conv1) is larger for
  the pre-trained VGG; |val - train| / train <= 0.3 for every run.
* S3e: at Conv3 AlexNet's |val - train| / train <= 0.3 (random and
  pre-trained) and its |pre - random| / random validation gap <= 0.2.
* S3f: mean SSIM over three held-out images (the cat first), averaged over
  seeds, falls from Conv1 to Conv5 and never rises by more than 0.02 per
  layer, for VGG and AlexNet; VGG's SSIM above AlexNet's at every layer.
* S3g: the four paper-scale distributions' SSIMs on the cat lie within
  0.05 of each other, and a badly scaled Gaussian (raw, sigma 0.001 or 1)
  is more than 0.05 below all four.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from experiments.section3_plots import (
  figure_images,
  plot_bars,
  plot_curves,
  preset_tag,
  pretrained_name,
  recon_words,
  reconstructions,
)
from experiments.section3_runs import (
  ALEX,
  CONVERGENCE_RULE,
  PAPER_DISTS,
  Run,
  Section3Config,
  config_for,
  data_config,
  find_weights,
  run_numbers,
  spread,
  train_runs,
  with_seeds,
)
from randconv import distributed, plotting
from randconv.deadline import Deadline
from randconv.repro.registry import ClaimResult, Table, claim_text
from randconv.training import data as data_lib

EXPERIMENTS = Table()
RAW = "raw features (the paper's reading: no rescaling)"


def _experiment(cid: str, title: str, name: str):
  return EXPERIMENTS.add(cid, title=title, name=name, configure=config_for,
                         smoke_presets=("quick",))


RULES = {
    "S3a": "random < pre-trained (final training loss and smoothed curve at"
           " 10/25/50%) for VGG and AlexNet, in every seed; mean relative "
           "gap larger on VGG; random VGG < random AlexNet and pre-trained "
           "VGG < pre-trained AlexNet",
    "S3b": "raw features; in every seed the first losses span more than a "
           "factor 2, the final losses lie within a factor 10 and every "
           "sigma's decoder learned",
    "S3c": "in every seed the four final losses lie within a factor 1.25",
    "S3d": "at every layer, in every seed, random VGG's validation and "
           "training-set losses below pre-trained VGG's; mean val(Conv5)/"
           "val(Conv1) larger for pre-trained; |val - train| / train <= 0.3 "
           "for every run",
    "S3e": "at Conv3 AlexNet's |val - train| / train <= 0.3 (random and "
           "pre-trained) and its random/pre-trained validation gap <= 0.2, "
           "in every seed",
    "S3f": "seed-mean SSIM over 3 held-out images falls from Conv1 to Conv5,"
           " never rising by more than 0.02 per layer, for VGG and AlexNet; "
           "VGG above AlexNet at every layer in every seed",
    "S3g": "in every seed the four paper-scale distributions' SSIMs on the "
           "cat within 0.05; a raw badly scaled Gaussian more than 0.05 below"
           " all four",
}


# --------------------------------------------------------------------------
# Readings: one claim's runs under one feature reading, and its verdict.

class Reading:
  """The runs of one claim under one reading (``rms`` or ``raw``):
  ``res[(label, seed)]`` results and ``num[label]`` their per-seed
  numbers."""

  def __init__(self, runs: dict, cfg: Section3Config, workdir: Path,
               deadline: Deadline, scale: str):
    self.scale, self.runs = scale, runs
    done = train_runs(list(runs.values()), cfg, workdir, deadline)
    self.res = {k: done[r] for k, r in runs.items()}
    self.labels = list(dict.fromkeys(k for k, _ in runs))
    self.seeds = sorted({s for _, s in runs})
    self.num = {k: [run_numbers(self.res[(k, s)]) for s in self.seeds]
                for k in self.labels}

  def only(self, labels) -> "Reading":
    """The reading of ``labels`` alone (one half of a claim)."""
    part = object.__new__(Reading)
    part.scale, part.seeds, part.labels = self.scale, self.seeds, list(labels)
    part.runs = {k: v for k, v in self.runs.items() if k[0] in labels}
    part.res = {k: v for k, v in self.res.items() if k[0] in labels}
    part.num = {k: self.num[k] for k in labels}
    return part

  def joined(self, other: "Reading") -> "Reading":
    """One reading of both runs (one claim decided on both)."""
    both = object.__new__(Reading)
    both.scale, both.seeds = self.scale, self.seeds
    both.runs, both.res = {**self.runs, **other.runs}, {**self.res,
                                                         **other.res}
    both.labels, both.num = self.labels + other.labels, {**self.num,
                                                         **other.num}
    return both

  def each(self, label: str, key: str) -> list:
    return [n[key] for n in self.num[label]]

  def results(self, label: str) -> list:
    return [self.res[(label, s)] for s in self.seeds]

  def status(self, holds: bool | None, exempt=()) -> tuple[str, str]:
    """(status, reason): partial if a run stopped early; inconclusive if
    a run did not converge, or did not learn (``exempt`` labels: not
    learning is a measured outcome there)."""
    if not all(n["done"] for ns in self.num.values() for n in ns):
      return "partial", "a run stopped at the time budget; run again to " \
          "resume"
    if holds is None:
      return "measured", ""
    bad = []
    for label, ns in self.num.items():
      for seed, n in zip(self.seeds, ns, strict=True):
        if not n["converged"]:
          bad.append(f"{label} seed {seed} not converged (val at 80% / at "
                     f"40% = {_f(n['convergence_ratio'])})")
        elif not n["learned"] and label not in exempt:
          bad.append(f"{label} seed {seed} did not learn (val "
                     f"{_f(n['val_loss'])} vs constant image "
                     f"{_f(n['baseline_val_loss'])})")
    if bad:
      return "inconclusive", "; ".join(bad)
    return "measured", ""


def _f(v) -> str:
  return "?" if v is None else f"{v:.4g}"


def _reading(runs: dict, cfg, workdir, deadline, scale) -> Reading:
  return Reading({k: _as(r, scale) for k, r in runs.items()}, cfg, workdir,
                 deadline, scale)


def _as(run: Run, scale: str) -> Run:
  from dataclasses import replace
  return replace(run, scale=scale)


def _verdict_word(status: str, holds: bool | None) -> str:
  if status != "measured" or holds is None:
    return status
  return "holds" if holds else "does not hold"


def _sensitivity(main: tuple, raw: tuple, words: str) -> list[dict]:
  """The raw reading's row: its status and whether the verdict flips."""
  (ms, mh), (rs, rh) = main, raw
  a, b = _verdict_word(ms, mh), _verdict_word(rs, rh)
  return [{"reading": RAW, "status": b, "summary": f"{words} (verdict "
           f"{'flips' if a != b else 'unchanged'}: {a} with rms features, "
           f"{b} raw)"}]


def _result(cid: str, m: dict, holds, reading: Reading, figures, summary,
            deciding=None, status=None, reason="", sensitivity=(),
            exempt=()) -> ClaimResult:
  st, why = reading.status(holds, exempt)
  if status and st not in ("partial",):
    st, why = status, reason or why
  m["runs"] = {k: v for k, v in reading.num.items()}
  return ClaimResult(cid, claim_text(cid), _r3(m), holds, status=st,
                     figures=[str(f) for f in figures], summary=summary,
                     rule=f"{RULES[cid]}; {CONVERGENCE_RULE}", reason=why,
                     deciding=_r3(deciding or {}),
                     sensitivity=list(sensitivity))


def _r3(d):
  """Rounds floats for the claims file."""
  if isinstance(d, dict):
    return {str(k): _r3(v) for k, v in d.items()}
  if isinstance(d, (list, tuple)):
    return [_r3(v) for v in d]
  if isinstance(d, float):
    return float(f"{d:.5g}")
  if isinstance(d, (np.floating, np.integer, np.bool_)):
    return _r3(d.item())
  return d


def _write(workdir: Path, name: str, payload: dict) -> None:
  if not distributed.is_main():
    return
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / name).write_text(json.dumps(_r3(payload), indent=1) + "\n")


def _split(cfg: Section3Config) -> dict:
  train, val = data_lib.image_split(data_config(cfg))
  return {"train": train, "validation": val}


def _all(xs) -> bool:
  return bool(all(xs))


# --------------------------------------------------------------------------
# S3a.

def _lower_faster(r: Reading, rand: str, pre: str) -> dict:
  """Per seed: random below pre-trained at the end and at 10/25/50%."""
  out = {"lower_final": [], "converges_faster": [], "relative_gap": []}
  for a, b in zip(r.num[rand], r.num[pre], strict=True):
    out["lower_final"].append(a["final_loss"] < b["final_loss"])
    out["converges_faster"].append(all(
        a[f"smoothed_at_{p}pct"] < b[f"smoothed_at_{p}pct"]
        for p in (10, 25, 50)))
    out["relative_gap"].append((b["final_loss"] - a["final_loss"])
                               / b["final_loss"])
  out["holds"] = _all(out["lower_final"]) and _all(out["converges_faster"])
  return out


def _s3a_reading(r: Reading, w) -> tuple[dict, bool | None, bool | None]:
  """(checks, VGG half's verdict, the whole claim's verdict)."""
  fin = {k: r.each(k, "final_loss") for k in r.labels}
  checks: dict = {"vgg_random_below_alexnet_random": [
      a < b for a, b in zip(fin["VGG random"], fin["AlexNet random"],
                            strict=True)]}
  vgg_half = whole = None
  if w.vgg:
    checks["vgg"] = _lower_faster(r, "VGG random", "VGG pre-trained")
    vgg_half = checks["vgg"]["holds"] and _all(
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
             and _all(checks["vgg_pretrained_below_alexnet_pretrained"]))
  return checks, vgg_half, whole


@_experiment("S3a", title="Fig. 5a: Conv2-DeConv2 loss curves, VGG vs AlexNet, "
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
  main = _reading(with_seeds(runs, cfg.seeds), cfg, workdir, deadline, "rms")
  raw = _reading(with_seeds(runs, cfg.raw_seeds), cfg, workdir, deadline,
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
    fin = {k: spread(r.each(k, "final_loss"))["mean"] for k in r.labels}
    st, _ = r.status(half)
    out[r.scale] = (checks, half, whole, fin, st)
  checks, half, whole, fin, st = out["rms"]
  m = {"pretrained_vgg": w.vgg_note, "split": _split(cfg),
       "pretrained_alexnet": Path(w.alexnet).name if w.alexnet
       else "none given", "checks": checks, "raw_checks": out["raw"][0]}
  _write(workdir, "s3a.json", m)
  words = "mean final loss " + ", ".join(f"{k} {v:.4g}"
                                         for k, v in fin.items())
  raw_words = "raw mean final loss " + ", ".join(
      f"{k} {v:.4g}" for k, v in out["raw"][3].items())
  sens = _sensitivity((out["rms"][4], whole if whole is not None else half),
                      (out["raw"][4], out["raw"][2] if whole is not None
                       else out["raw"][1]), raw_words)
  if w.vgg and not w.alexnet:
    half_word = _verdict_word(st, half)
    return [_result("S3a", m, None, main, figs,
                    f"VGG half: {half_word} (random VGG below pre-trained "
                    "VGG and below random AlexNet in every seed); AlexNet "
                    "half: needs weights (give --weights alexnet-owt-*.pth;"
                    f" docs/weights.md); {words}",
                    {"VGG half": half_word, **fin}, status="needs weights",
                    reason="the AlexNet half needs AlexNet ImageNet weights",
                    sensitivity=sens)]
  if not w.vgg:
    return [_result("S3a", m, None, main, figs, words + " (no pre-trained "
                    "weights)", fin, status="needs weights",
                    sensitivity=sens)]
  return [_result("S3a", m, bool(whole), main, figs, words, fin,
                  sensitivity=sens)]


# --------------------------------------------------------------------------
# S3b, S3c: training curves of one architecture.

def _span(values) -> float:
  return max(values) / min(values)


@_experiment("S3b", title="Fig. 5b: random VGG Conv2, several Gaussian sigmas",
             name="s3b_sigmas")
def run_s3b(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  runs = {f"sigma {s:g}": Run("vgg16", "conv2", dist=f"gaussian:{s:g}")
          for s in cfg.sigmas}
  r = _reading(with_seeds(runs, cfg.seeds), cfg, workdir, deadline, "raw")
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
           and all(_all(v) for v in learned.values()))
  m = {"first_loss_ratio": first, "final_loss_ratio": final,
       "learned": learned, "split": _split(cfg)}
  _write(workdir, "s3b.json", m)
  no = [k for k, v in learned.items() if not _all(v)]
  xs = lambda vs: ", ".join(f"{v:.3g}x" for v in vs)  # noqa: E731
  summary = (f"per seed, first losses span {xs(first)} (needs > 2), final "
             f"losses {xs(final)} (needs <= 10); did not learn: "
             f"{', '.join(no) or 'none'}")
  return [_result("S3b", m, bool(holds), r, [fig], summary,
                  {f"final loss, {k}": spread(r.each(k, "final_loss"))["mean"]
                   for k in r.labels}, exempt=tuple(r.labels))]


@_experiment("S3c", title="Fig. 5c: gaussian, uniform, logistic, laplace",
             name="s3c_distributions")
def run_s3c(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  runs = {d: Run("vgg16", "conv2", dist=d) for d in PAPER_DISTS}
  out, figs = {}, []
  for scale, seeds in (("rms", cfg.seeds), ("raw", cfg.raw_seeds)):
    r = _reading(with_seeds(runs, seeds), cfg, workdir, deadline, scale)
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
    holds = all(v <= 1.25 for v in ratio)
    out[scale] = (r, ratio, holds, r.status(holds)[0])
  r, ratio, holds, _ = out["rms"]
  m = {"final_loss_ratio": ratio, "raw_final_loss_ratio": out["raw"][1],
       "split": _split(cfg)}
  _write(workdir, "s3c.json", m)
  fin = {k: spread(r.each(k, "final_loss"))["mean"] for k in r.labels}
  summary = (f"mean final losses {', '.join(f'{v:.3g}' for v in fin.values())}"
             f"; per seed ratio {', '.join(f'{v:.2f}' for v in ratio)} "
             "(needs <= 1.25)")
  sens = _sensitivity((out["rms"][3], holds), (out["raw"][3], out["raw"][2]),
                      "raw final-loss ratio " + ", ".join(
                          f"{v:.2f}" for v in out["raw"][1]))
  return [_result("S3c", m, bool(holds), r, figs, summary,
                  {f"final loss, {k}": v for k, v in fin.items()},
                  sensitivity=sens)]


# --------------------------------------------------------------------------
# S3d, S3e: validation against training-set losses.

def _gap(n: dict) -> float:
  return abs(n["val_loss"] - n["train_eval_loss"]) / n["train_eval_loss"]


def _s3d_reading(r: Reading, layers) -> tuple[dict, bool]:
  lower = {k: _all(a["val_loss"] < b["val_loss"] and a["train_eval_loss"] <
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


def _s3d_bars(r: Reading, layers, path: Path, cfg, w) -> str:
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
                      "(pre-trained: not run, no weights)."), errors)


@_experiment("S3d", title="generalization: train vs validation, Conv1..Conv5, "
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
    r = _reading(with_seeds(runs, seeds), cfg, workdir, deadline, scale)
    figs.append(_s3d_bars(r, layers, workdir / f"s3d_bars_{scale}.png", cfg,
                          w))
    checks, holds = _s3d_reading(r, layers) if w.vgg else ({}, None)
    out[scale] = (r, checks, holds, r.status(holds)[0])
  r, checks, holds, st = out["rms"]
  m = {"pretrained_vgg": w.vgg_note, "checks": checks,
       "raw_checks": out["raw"][1], "split": _split(cfg)}
  _write(workdir, "s3d.json", m)
  if not w.vgg:
    return [_result("S3d", m, None, r, figs, "no pre-trained VGG16",
                    status="needs weights")]
  lower, growth = checks["random_lower"], checks["val_growth_first_to_last"]
  gaps = checks["largest_relative_train_val_gap"]
  summary = (f"random below pre-trained in every seed at "
             f"{', '.join(k for k, v in lower.items() if v) or 'no layer'}; "
             f"mean val(last)/val(first) random {growth['random']:.3g} vs "
             f"pre-trained {growth['pre']:.3g}; largest |val - train| / "
             f"train {max(gaps.values()):.2f} (needs <= 0.3)")
  rl = out["raw"][1]
  sens = _sensitivity((st, holds), (out["raw"][3], out["raw"][2]),
                      "raw: random below pre-trained at " + ", ".join(
                          k for k, v in rl["random_lower"].items() if v)
                      if rl["random_lower"] else "raw")
  return [_result("S3d", m, holds, r, figs, summary, {
      "random below pre-trained": lower, "val growth": growth,
      "max train/val gap": max(gaps.values())}, sensitivity=sens)]


@_experiment("S3e", title="Conv3: VGG vs AlexNet, random vs pre-trained",
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
    r = _reading(with_seeds(runs, seeds), cfg, workdir, deadline, scale)
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
        errors))
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
    out[scale] = (r, m, holds, r.status(holds)[0])
  r, m, holds, st = out["rms"]
  m = {**m, "raw": out["raw"][1], "layer": layer, "split": _split(cfg),
       "pretrained_vgg": w.vgg_note, "pretrained_alexnet":
       Path(w.alexnet).name if w.alexnet else "none given"}
  _write(workdir, "s3e.json", m)
  gap = ", ".join(f"{v:.2f}" for v in m["alexnet_random_train_val_gap"])
  if not w.alexnet:
    ok = all(v <= 0.3 for v in m["alexnet_random_train_val_gap"])
    part = _verdict_word(r.only(["AlexNet random"]).status(ok)[0], ok)
    rgap = m["raw"]["alexnet_random_train_val_gap"]
    rok = all(v <= 0.3 for v in rgap)
    sens = _sensitivity((r.only(["AlexNet random"]).status(ok)[0], ok), (
        out["raw"][0].only(["AlexNet random"]).status(rok)[0], rok),
        "raw random AlexNet half: |val - train| / train " + ", ".join(
            f"{v:.2f}" for v in rgap))
    return [_result("S3e", m, None, r, figs,
                    f"random AlexNet half: {part} (|val - train| / train "
                    f"per seed {gap}, needs <= 0.3); the pre-trained AlexNet "
                    "half needs AlexNet ImageNet weights",
                    status="needs weights",
                    reason="the pre-trained AlexNet half needs weights",
                    sensitivity=sens)]
  summary = (f"AlexNet {layer} |val - train| / train per seed {gap} "
             f"(random), " + ", ".join(
                 f"{v:.2f}" for v in m["alexnet_pretrained_train_val_gap"])
             + " (pre-trained); random/pre-trained gap " + ", ".join(
                 f"{v:.2f}" for v in m["alexnet_random_pretrained_gap"])
             + " (needs <= 0.3, 0.3, 0.2)")
  sens = _sensitivity((st, holds), (out["raw"][3], out["raw"][2]), "raw")
  return [_result("S3e", m, holds, r, figs, summary, sensitivity=sens)]


# --------------------------------------------------------------------------
# S3f, S3g: reconstructions.

def _decays(ssims: list[float]) -> bool:
  return ssims[-1] < ssims[0] and all(
      b <= a + 0.02 for a, b in zip(ssims[:-1], ssims[1:], strict=True))


def _ssims(r: Reading, x: np.ndarray) -> tuple[dict, dict]:
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


@_experiment("S3f", title="reconstructions: Conv1..Conv5 of random VGG and "
             "random AlexNet", name="s3f_reconstructions")
def run_s3f(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  layers = cfg.layers
  runs = {f"{_arch(a)} {k}": Run(a, k) for a in ("vgg16", ALEX)
          for k in layers}
  names, x = figure_images(cfg)
  out = {}
  for scale, seeds in (("rms", cfg.seeds), ("raw", cfg.raw_seeds)):
    r = _reading(with_seeds(runs, seeds), cfg, workdir, deadline, scale)
    outs, ssim = _ssims(r, x)
    mean = {a: [float(ssim[f"{a} {k}"].mean()) for k in layers]
            for a in ("VGG", "AlexNet")}
    above = [_all(ssim[f"VGG {k}"].mean(axis=1) >
                  ssim[f"AlexNet {k}"].mean(axis=1)) for k in layers]
    holds = _decays(mean["VGG"]) and _decays(mean["AlexNet"]) and all(above)
    out[scale] = (r, outs, ssim, mean, above, bool(holds),
                  r.status(holds)[0])
  r, outs, ssim, mean, above, holds, st = out["rms"]
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
       "raw_mean_ssim": out["raw"][3], "split": _split(cfg)}
  _write(workdir, "s3f.json", m)
  summary = (f"mean SSIM Conv1..{len(layers)}: VGG "
             f"{', '.join(f'{v:.3f}' for v in mean['VGG'])}; AlexNet "
             f"{', '.join(f'{v:.3f}' for v in mean['AlexNet'])}; VGG above "
             f"in every seed at {sum(above)} of {len(layers)} layers")
  rm = out["raw"][3]
  sens = _sensitivity((st, holds), (out["raw"][6], out["raw"][5]),
                      "raw mean SSIM VGG " + ", ".join(
                          f"{v:.3f}" for v in rm["VGG"]) + "; AlexNet "
                      + ", ".join(f"{v:.3f}" for v in rm["AlexNet"]))
  return [_result("S3f", m, holds, r, [fig], summary,
                  {"VGG SSIM": mean["VGG"], "AlexNet SSIM": mean["AlexNet"]},
                  sensitivity=sens)]


@_experiment("S3g", title="Fig. 6: the cat through random VGG Conv2 per "
             "distribution", name="s3g_cat")
def run_s3g(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  bad = {f"gaussian:{s:g}": Run("vgg16", "conv2", dist=f"gaussian:{s:g}",
                                scale="raw")
         for s in cfg.sigmas if s in (0.001, 1.0)}
  good = {d: Run("vgg16", "conv2", dist=d) for d in PAPER_DISTS}
  _, x = figure_images(cfg)
  cat = x[:1]
  braw = Reading(with_seeds(bad, cfg.seeds), cfg, workdir, deadline, "raw")
  bouts, bssim = _ssims(braw, cat)
  out = {}
  for scale, seeds in (("rms", cfg.seeds), ("raw", cfg.raw_seeds)):
    r = _reading(with_seeds(good, seeds), cfg, workdir, deadline, scale)
    outs, ssim = _ssims(r, cat)
    n = len(r.seeds)
    spread_ = [max(ssim[d][i, 0] for d in r.labels) -
               min(ssim[d][i, 0] for d in r.labels) for i in range(n)]
    below = {d: [min(ssim[g][i, 0] for g in r.labels) - bssim[d][i, 0]
                 for i in range(n)] for d in braw.labels}
    holds = all(v <= 0.05 for v in spread_) and any(
        all(v > 0.05 for v in vs) for vs in below.values())
    out[scale] = (r, outs, ssim, spread_, below, bool(holds),
                  r.status(holds)[0])
  r, outs, ssim, spread_, below, holds, st = out["rms"]
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
       "raw_paper_scale_spread": out["raw"][3], "split": _split(cfg)}
  _write(workdir, "s3g.json", m)
  mean = {d: float(np.mean(m["ssim_per_seed"][d])) for d in labels}
  words = ", ".join(f"{d} {v:.3f}" for d, v in mean.items())
  summary = (f"mean SSIM on the cat {words}; paper-scale spread per seed "
             f"{', '.join(f'{v:.3f}' for v in spread_)} (needs <= 0.05)")
  sens = _sensitivity((st, holds), (out["raw"][6], out["raw"][5]),
                      "raw paper-scale spread " + ", ".join(
                          f"{v:.3f}" for v in out["raw"][3]))
  return [_result("S3g", m, holds, r.joined(braw), [fig], summary, mean,
                  sensitivity=sens, exempt=tuple(braw.labels))]
