"""Section 4's configs and what every experiment of it records.

The cpu preset's values are the defaults of each config dataclass; each
preset overrides some fields (:data:`OVERRIDES`, through
:func:`randconv.repro.registry.preset_config`). ``preset`` decides only whether
the verdicts are smoke and which preset a run folder records.
"""

from __future__ import annotations

from dataclasses import dataclass

from randconv.repro.registry import preset_config

DIST = "gaussian:0.015"
ROOT_SEED = 4
LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5"]
# How a net's weights are drawn from its key, recorded in every config so
# that a run folder of older draws is refused rather than mixed:
# ``CNNDCN(spec).init(key, method="draw")`` (randconv.engine.draw).
WEIGHTS = "flax-init"
SMOKE = ("quick",)  # presets whose verdicts only show the machinery ran


@dataclass(frozen=True)
class Fig7Config:
  """Fig. 7 (S4a, S4b): the cat and ``others`` more photos at ``size`` px
  through ``nets`` random nets; ``width`` narrows every layer (None: the
  paper's); ``sensitivity_size``: the other size of S4a's sensitivity rows
  (None: no rows); ``law_size``: the size of the infinite-width law of
  each net (``experiments.section4.law``; None: not computed), with
  ``law_draws`` draws of its Gaussian process and ``law_pool_samples``
  joint samples per max pool."""

  preset: str = "cpu"
  size: int = 227
  nets: int = 6
  others: int = 3
  width: int | None = None
  sensitivity_size: int | None = 128
  law_size: int | None = 64
  law_draws: int = 200
  law_pool_samples: int = 8192

  def record(self) -> dict:
    """The fields that decide the cells (config.json)."""
    d = {"size": self.size, "nets": self.nets, "others": self.others}
    return d if self.width is None else {**d, "width": self.width}


@dataclass(frozen=True)
class WidthConfig:
  """Figs. 8-10 (S4c-S4e): ``images`` images at ``size`` px from
  ``source`` (``experiments.section4.data.sample_images``) through
  ``nets`` nets per width; Fig. 10 shows ``fig10_images`` images at
  ``fig10_widths``; ``t7``: T7's infinite-width predictions beside the
  curves (off: the sweep alone, for a quick look or a test)."""

  preset: str = "cpu"
  size: int = 64
  widths: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256, 512, 1024)
  nets: int = 10
  images: int = 16
  fig10_images: int = 4
  fig10_widths: tuple[int, ...] = (4, 16, 64, 256, 1024)
  source: str = "photos"
  sensitivity_size: int | None = 128
  t7: bool = True

  def record(self) -> dict:
    return {k: getattr(self, k) for k in (
        "size", "widths", "nets", "images", "fig10_images", "fig10_widths")}


@dataclass(frozen=True)
class KernelConfig:
  """Section 4.3 (S4f): Conv1_1-DeConv1_1 with each kernel size."""

  preset: str = "cpu"
  size: int = 128
  kernels: tuple[int, ...] = (1, 3, 5, 7, 9, 11, 13, 15)
  nets: int = 10
  images: int = 20
  source: str = "photos"

  def record(self) -> dict:
    return {k: getattr(self, k) for k in ("size", "kernels", "nets",
                                          "images")}


_QUICK = dict(preset="quick", size=32, nets=3, images=4)
OVERRIDES = {
    Fig7Config: {
        "quick": dict(preset="quick", size=64, nets=2, others=2,
                      sensitivity_size=None, law_size=32, law_draws=100),
        "cpu": {},
        "paper": dict(preset="paper", nets=30, others=8,
                      sensitivity_size=None)},
    WidthConfig: {
        "quick": dict(_QUICK, widths=(4, 16, 64), fig10_images=3,
                      fig10_widths=(4, 16, 64), sensitivity_size=None),
        "cpu": {},
        "paper": dict(preset="paper", size=227, widths=(
            4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048), nets=30,
            images=50, fig10_images=5,
            fig10_widths=(4, 16, 64, 256, 1024, 2048), source="auto",
            sensitivity_size=None)},
    KernelConfig: {
        "quick": dict(_QUICK, kernels=(1, 3, 5, 7)),
        "cpu": {},
        "paper": dict(preset="paper", size=227, nets=30, images=50,
                      source="auto")},
}


def config_for(cls, preset: str, **fields):
  """The ``cls`` config of ``preset`` (fields override it further, as the
  tests do for their small runs)."""
  return preset_config(cls(), OVERRIDES[cls], preset, **fields)


def configure(cls):
  """The registry's ``configure(preset, settings)`` for ``cls``."""
  return lambda preset, settings: config_for(cls, preset)
