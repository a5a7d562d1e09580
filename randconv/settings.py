"""Every environment variable the project reads, mapped to one field of
:class:`Settings` in one place (:data:`ENV`); command-line flags override
the same fields (:func:`current` with keyword arguments).

* ``RANDCONV_TIME_BUDGET_S`` -> ``time_budget_s``: seconds for one whole
  invocation (``--time-budget``; :mod:`randconv.deadline`);
* ``RANDCONV_WEIGHTS`` -> ``weights``: pre-trained weights files, separated
  by ``os.pathsep`` (``reproduce --weights``);
* ``RANDCONV_WEIGHTS_DIR`` -> ``weights_dir``: the weights cache that
  ``randconv weights fetch`` fills and ``--weights hed`` reads first
  (default ``weights/`` in the cache folder below; docs/weights.md);
* ``RANDCONV_DATA_DIR`` -> ``data_dir``: the tfds data folder (prepared
  datasets are read there; unset: tfds' own, ``~/tensorflow_datasets``);
* ``RANDCONV_CACHE_DIR`` -> ``cache_dir``: the project's cache folder
  (:func:`cache_folder`, default ``~/.cache/randconv``): the photos or
  image folders packed for training (``tfds/``, unless ``data_dir`` is
  set), the compiled programs (``jax/``, unless ``jax_cache`` is set) and
  the fetched weights (``weights/``, unless ``weights_dir`` is set);
  everything in it can be deleted and is made again;
* ``RANDCONV_PAPER_DATA`` -> ``paper_data``: Section 3's dataset at the
  paper preset;
* ``RANDCONV_IMAGES`` / ``RANDCONV_IMAGE_DIR`` -> ``images`` / ``image_dir``:
  Section 4's image source, and a folder of images for it;
* ``RANDCONV_MEMORY_BUDGET_GB`` -> ``memory_budget_gb``: the engine's chunk
  budget;
* ``RANDCONV_JAX_CACHE`` -> ``jax_cache``: the compiled-program cache;
* ``RANDCONV_GP_MAX_PIXELS`` -> ``gp_max_pixels``: T7's largest full kernel.

The budgets and counts must be positive: a zero or negative value is bad
input (a :class:`~randconv.errors.RandconvError`), not a run that stops at
once or a division by zero later. One exception: ``RANDCONV_TIME_BUDGET_S
=0`` is a budget already spent (every experiment stops before its first
unit of work and the same command resumes), which the tests use to make a
partial run; the ``--time-budget`` flag takes positive seconds only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from randconv.errors import RandconvError


@dataclass(frozen=True)
class Settings:
  time_budget_s: float | None = None
  weights: tuple[str, ...] = ()
  weights_dir: str | None = None
  data_dir: str | None = None
  cache_dir: str | None = None
  paper_data: str | None = None
  images: str | None = None
  image_dir: str | None = None
  memory_budget_gb: float | None = None
  jax_cache: str | None = None
  gp_max_pixels: int = 64 * 64


def _paths(text: str) -> tuple[str, ...]:
  return tuple(p for p in text.split(os.pathsep) if p)


def _positive(kind, zero: bool = False):
  """A parser of a ``kind`` number that must be positive, or with ``zero``
  at least 0 (NaN is neither)."""
  def parse(text: str):
    value = kind(text)
    if not (value >= 0 if zero else value > 0):
      raise ValueError(f"{value} is out of range")
    return value
  parse.__name__ = f"{'non-negative' if zero else 'positive'} " \
      f"{kind.__name__}"
  return parse


# variable -> (field, parser)
ENV = {
    "RANDCONV_TIME_BUDGET_S": ("time_budget_s",
                               _positive(float, zero=True)),
    "RANDCONV_WEIGHTS": ("weights", _paths),
    "RANDCONV_WEIGHTS_DIR": ("weights_dir", str),
    "RANDCONV_DATA_DIR": ("data_dir", str),
    "RANDCONV_CACHE_DIR": ("cache_dir", str),
    "RANDCONV_PAPER_DATA": ("paper_data", str),
    "RANDCONV_IMAGES": ("images", str),
    "RANDCONV_IMAGE_DIR": ("image_dir", str),
    "RANDCONV_MEMORY_BUDGET_GB": ("memory_budget_gb", _positive(float)),
    "RANDCONV_JAX_CACHE": ("jax_cache", str),
    "RANDCONV_GP_MAX_PIXELS": ("gp_max_pixels", _positive(int)),
}


def current(**overrides) -> Settings:
  """The settings from the environment now; ``overrides`` (CLI flags) win
  where they are not None."""
  values = {}
  for name, (fld, parse) in ENV.items():
    text = os.environ.get(name)
    if text:
      try:
        values[fld] = parse(text)
      except ValueError:
        raise RandconvError(f"{name}={text!r} is not a valid "
                            f"{parse.__name__}") from None
  values.update({k: v for k, v in overrides.items() if v is not None})
  try:
    return Settings(**values)
  except TypeError as e:
    raise RandconvError(f"unknown setting: {e}") from None


def cache_folder(settings: Settings | None = None) -> str:
  """The project's cache folder: ``cache_dir``, else ``~/.cache/randconv``
  (the folder a user clears to free its space)."""
  s = settings or current()
  return s.cache_dir or os.path.join(os.path.expanduser("~"), ".cache",
                                     "randconv")


__all__ = ["Settings", "ENV", "cache_folder", "current"]
