"""Section 3's figures: loss curves (the mean over seeds with their range
shaded), grouped bars (the mean with the seeds' SD), reconstructions beside
their inputs, and the words every figure carries (the preset, a smoke run
said as such, the steps trained, never "None")."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.section3.runs import Section3Config, smoothed
from randconv import images, metrics, plotting
from randconv.training import data as data_lib
from randconv.training import train as train_lib


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
  return "quick: a smoke run, not evidence"


def steps_trained(results) -> str:
  """"N training steps" of ``results`` (a range where runs differ)."""
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


def plot_curves(results: dict, path: Path, title: str, caption: str) -> str:
  """The smoothed training loss of each label: one run, or the mean over
  a list of runs (seeds) with their range shaded; every curve visible
  where they coincide; log y axis only across decades."""
  curves, bands = {}, {}
  for name, runs in results.items():
    runs = runs if isinstance(runs, list) else [runs]
    per = [train_lib.loss_curve(r.metrics) for r in runs]
    n = min(len(v) for _, v in per)
    if not n:
      curves[name] = (np.zeros(0), np.zeros(0))
      continue
    sm = np.stack([smoothed(v[:n]) for _, v in per])
    curves[name] = (per[0][0][:n], sm.mean(axis=0))
    if len(runs) > 1:
      bands[name] = (sm.min(axis=0), sm.max(axis=0))
  scale = plotting.y_scale(np.concatenate([c[1] for c in curves.values()]))
  seeds = (" Lines: the mean over seeds; shaded: their range."
           if bands else "")
  return str(plotting.line_chart(
      curves, path, title=title, xlabel="step",
      ylabel="training loss (smoothed)", yscale=scale, bands=bands,
      caption=caption + seeds + _axis_words(scale)))


def plot_bars(groups: list[str], series: dict[str, list[float | None]],
              path: Path, title: str, caption: str,
              errors: dict | None = None) -> str:
  """Grouped bars with their values written on them (``errors``: the SD
  over seeds, drawn as error bars; None for one seed); linear y axis unless
  the values span decades."""
  scale = plotting.y_scale([v for vs in series.values() for v in vs])
  words = " Bars: the mean over seeds; error bars: their SD." if errors \
      else ""
  return str(plotting.bar_chart(groups, series, path, title=title,
                                ylabel="loss per image", yscale=scale,
                                errors=errors,
                                caption=caption + words + _axis_words(scale)))


def figure_images(p: Section3Config) -> tuple[list[str], np.ndarray]:
  """The cat, then two held-out images, at the training crop's size (the
  size the decoders trained at)."""
  size = p.crop
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
  """(outputs clipped to [0, 1], SSIM per image) of a trained run, its
  features divided as in training."""
  cfg = res.config
  spec = cfg.spec()
  enc = train_lib.build_encoder(cfg, spec)
  y = jax.jit(lambda d, e, x: train_lib.reconstruct(
      d, replace(enc, params=e), spec, x, cfg.impl, res.divisor))(
          res.params, enc.params, jnp.asarray(x))
  y = np.clip(np.asarray(y), 0.0, 1.0)
  ssim = np.asarray(metrics.ssim(jnp.asarray(x), jnp.asarray(y)))
  return y, ssim
