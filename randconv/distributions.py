"""The weight distributions of docs/design.md §4, as JAX initializers.

``Distribution.initializer()`` is an ``init(key, shape, dtype)`` function of
the kind Flax modules take: ``jax.nn.initializers.normal`` for Gaussian,
``variance_scaling(2, "fan_in", "normal")`` for MSRA, and small ones of our
own for uniform on [-a, a), logistic and Laplace. A module takes it as its
``kernel_init`` (:mod:`randconv.modules`); the ``name[:scale]`` text of the
CLI and of experiment configs becomes a :class:`Distribution` at that edge,
by :func:`parse_distribution`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from randconv.errors import RandconvError


@dataclass(frozen=True)
class Distribution:
  """A weight distribution of docs/design.md §4.

  ``name`` is gaussian (``scale`` = sigma), uniform (``scale`` = a, on
  [-a, a)), logistic (``scale`` = s), laplace (``scale`` = b) or msra
  (N(0, 2 / fan_in), no scale).
  """

  name: str = "gaussian"
  scale: float | None = 0.015

  def __str__(self) -> str:
    return self.name if self.scale is None else f"{self.name}:{self.scale:g}"

  def std(self, fan_in: int) -> float:
    """The standard deviation of one weight."""
    s = self.scale
    return {"gaussian": lambda: s, "uniform": lambda: s / math.sqrt(3),
            "logistic": lambda: s * math.pi / math.sqrt(3),
            "laplace": lambda: s * math.sqrt(2),
            "msra": lambda: math.sqrt(2 / fan_in)}[self.name]()

  def initializer(self):
    """``init(key, shape, dtype=float32)`` drawing HWIO kernels i.i.d. from
    this distribution (the fan-in of MSRA is ``H * W * I``)."""
    s = self.scale
    if self.name == "gaussian":
      return jax.nn.initializers.normal(s)
    if self.name == "msra":
      return jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")
    sampler = {"uniform": lambda k, sh: jax.random.uniform(
        k, sh, minval=-s, maxval=s),
               "logistic": lambda k, sh: s * jax.random.logistic(k, sh),
               "laplace": lambda k, sh: s * jax.random.laplace(k, sh)
               }[self.name]

    def init(key, shape, dtype=jnp.float32):
      return sampler(key, tuple(shape)).astype(dtype)

    return init


class DistributionError(RandconvError):
  """An unknown weight distribution or a bad scale."""


DEFAULT_SCALES = {"gaussian": 0.015, "uniform": 0.04, "logistic": 0.015,
                  "laplace": 0.015 / math.sqrt(2), "msra": None}


def parse_distribution(text: str | Distribution) -> Distribution:
  """Parses ``name[:scale]``, e.g. ``gaussian:0.015``, ``uniform``, ``msra``.

  Raises:
    DistributionError: unknown name, or a scale that is not a positive
      number.
  """
  if isinstance(text, Distribution):
    return text
  name, _, scale = text.partition(":")
  name = name.strip().lower()
  if name not in DEFAULT_SCALES:
    raise DistributionError(
        f"unknown distribution {text!r}; choose one of "
        f"{', '.join(DEFAULT_SCALES)} (e.g. gaussian:0.015)")
  if name == "msra":
    if scale:
      raise DistributionError("msra takes no scale: it is N(0, 2 / fan_in)")
    return Distribution("msra", None)
  if not scale:
    return Distribution(name, DEFAULT_SCALES[name])
  try:
    value = float(scale)
  except ValueError:
    raise DistributionError(
        f"distribution scale {scale!r} is not a number") from None
  if not value > 0 or not math.isfinite(value):
    raise DistributionError(f"distribution scale must be positive, got {scale}")
  return Distribution(name, value)


__all__ = ["Distribution", "DistributionError", "DEFAULT_SCALES",
           "parse_distribution"]
