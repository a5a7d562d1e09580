"""Memory plans for many nets: how many nets and images one call may hold
under a byte budget, from the spec's shapes (:func:`plan_chunks`) or from
XLA's own analysis of a compiled program (:func:`program_bytes`). Pure
arithmetic, apart from the budget's setting; :mod:`randconv.engine` uses
it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax

from randconv import settings
from randconv.spec import NetSpec

DEFAULT_BUDGET = {"cpu": 4 << 30, "gpu": 40 << 30, "tpu": 12 << 30}
BUDGET_ENV = "RANDCONV_MEMORY_BUDGET_GB"


def default_budget(backend: str | None = None) -> int:
  """The memory budget of a chunk plan in bytes: ``$RANDCONV_MEMORY_BUDGET_GB``
  (GiB) where set, else the backend's :data:`DEFAULT_BUDGET` (40 GiB on a
  GPU: half of an 80 GB card)."""
  gib = settings.current().memory_budget_gb
  if gib is not None:
    if not gib > 0:
      raise ValueError(f"{BUDGET_ENV}={gib!r}: give a positive number of GiB")
    return int(gib * (1 << 30))
  return DEFAULT_BUDGET.get(backend or jax.default_backend(), 4 << 30)


@dataclass(frozen=True)
class Plan:
  seed_chunk: int
  image_chunk: int


def param_bytes(spec: NetSpec, itemsize: int = 4) -> int:
  return itemsize * sum(math.prod(c.weight_shape) for c in spec.convs)


def activation_bytes(spec: NetSpec, height: int, width: int,
                     itemsize: int = 4) -> int:
  """Peak bytes of one image's forward pass: the two largest consecutive
  maps (a layer's input and output live together), times 2 for XLA's
  temporaries."""
  enc, dec = spec.shapes(height, width)
  sizes = [height * width * spec.in_channels] + [
      s.height * s.width * s.channels for s in enc + dec]
  peak = max(a + b for a, b in zip(sizes, sizes[1:]))
  return 2 * itemsize * peak


def plan_chunks(spec: NetSpec, n_seeds: int, n_images: int, height: int,
                width: int, strategy: str, budget: int | None = None,
                batch_size: int | None = None, *,
                params_drawn: bool = False) -> Plan:
  """Largest seed and image chunks whose memory stays under ``budget``.

  ``params_drawn``: the chunk's params are drawn before the call and passed
  in (:func:`run_nets`), so under ``map`` they are what grows with the seed
  chunk; otherwise (:func:`run_keys`, whose ``fn`` draws each net itself) a
  ``map`` chunk holds ``batch_size`` nets."""
  budget = budget or default_budget()
  act = activation_bytes(spec, height, width)
  par = param_bytes(spec)
  if strategy in ("loop", "shard"):
    seeds_live = 1
  elif strategy == "map":
    seeds_live = batch_size or 1
  else:
    seeds_live = min(n_seeds, batch_size or n_seeds)
  room = budget - seeds_live * par
  images = max(1, min(n_images, room // max(1, seeds_live * act)))
  if strategy == "vmap" and not batch_size:
    # Fit as many seeds as the budget allows with all chunked images.
    seeds_live = max(1, min(n_seeds, budget // max(1, par + images * act)))
  elif strategy == "map" and params_drawn:
    # One net runs at a time; the chunk's params are what grows.
    seeds_live = max(1, min(n_seeds, (budget - images * act) // max(1, par)))
  return Plan(seed_chunk=seeds_live, image_chunk=int(images))


def program_bytes(fn, params, images) -> int | None:
  """Bytes one call of the jitted ``fn(params, images)`` holds on its
  device, from XLA's own memory analysis of the compiled program: arguments,
  outputs and temporaries (convolution workspaces, the grouped convs of a
  vmap, the post function's buffers). None where the backend does not say.
  """
  compiled_fn = fn.lower(params, images).compile()  # errors propagate
  try:
    m = compiled_fn.memory_analysis()
  except (AttributeError, NotImplementedError, RuntimeError):
    return None  # a backend without the analysis
  if m is None:
    return None
  return int(m.argument_size_in_bytes + m.output_size_in_bytes
             + m.temp_size_in_bytes - m.alias_size_in_bytes)
