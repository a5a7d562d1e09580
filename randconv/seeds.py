"""Running one network over many random seeds: the seed-batching switch.

``run_seeds(fn, keys, images, strategy=...)`` evaluates ``fn(key, images)``
for every key (one random net per key) and stacks the results to
``[seeds, images, ...]``. The strategies give the same numbers and differ only
in speed and memory:

* ``loop``: one jit-compiled call per seed (and image chunk), from Python.
  On CPU this is the fastest: the convs stay ordinary convs.
* ``vmap``: ``jax.vmap`` over a chunk of seeds. A vmap over weights turns
  each conv into a grouped conv, which XLA's CPU backend runs 6-17x slower
  than a loop (benchmarks/seeds.py); on a GPU it batches well.
* ``map``: ``jax.lax.map`` over the seeds inside one jit, ``batch_size``
  seeds vmapped at a time.
* ``shard``: the seed axis split over all local devices (``jax.shard_map``),
  each device mapping over its own seeds with ``lax.map``.

``auto`` picks the fastest measured for the backend (:data:`DEFAULT_STRATEGY`).
Memory stays under a budget by chunking the seeds and the images
(:func:`plan_chunks`).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from randconv.spec import NetSpec

STRATEGIES = ("loop", "vmap", "map", "shard")
# Measured with benchmarks/seeds.py (README, "Seed batching"): on this CPU
# the loop beats vmap at every width; on an H100 vmap wins.
DEFAULT_STRATEGY = {"cpu": "loop", "gpu": "vmap", "tpu": "vmap"}
DEFAULT_BUDGET = {"cpu": 4 << 30, "gpu": 40 << 30, "tpu": 12 << 30}
BUDGET_ENV = "RANDCONV_MEMORY_BUDGET_GB"


def default_budget(backend: str | None = None) -> int:
  """The memory budget of a chunk plan in bytes: ``$RANDCONV_MEMORY_BUDGET_GB``
  (GiB) where set, else the backend's :data:`DEFAULT_BUDGET` (40 GiB on a
  GPU: half of an 80 GB card)."""
  env = os.environ.get(BUDGET_ENV)
  if env:
    try:
      gib = float(env)
    except ValueError:
      gib = -1.0
    if not gib > 0:
      raise ValueError(f"{BUDGET_ENV}={env!r}: give a positive number of GiB")
    return int(gib * (1 << 30))
  return DEFAULT_BUDGET.get(backend or jax.default_backend(), 4 << 30)


def default_strategy(backend: str | None = None) -> str:
  return DEFAULT_STRATEGY.get(backend or jax.default_backend(), "loop")


def seed_keys(seed: int, n: int, start: int = 0) -> jax.Array:
  """Keys of nets ``start..start+n-1`` under root ``seed``: net i's key never
  depends on how many nets are drawn, so runs can resume and grow."""
  root = jax.random.PRNGKey(seed)
  return jnp.stack([jax.random.fold_in(root, i)
                    for i in range(start, start + n)])


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
                batch_size: int | None = None) -> Plan:
  """Largest seed and image chunks whose memory stays under ``budget``."""
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
  return Plan(seed_chunk=seeds_live, image_chunk=int(images))


def _chunks(n: int, size: int) -> list[slice]:
  return [slice(i, min(n, i + size)) for i in range(0, n, size)]


@functools.lru_cache(maxsize=64)
def _runner(fn: Callable, strategy: str, batch_size: int | None,
            devices: tuple) -> Callable:
  """The compiled ``(keys, images) -> results`` of a strategy, cached so that
  repeated calls with the same ``fn`` compile once."""
  if strategy == "loop":
    call = jax.jit(fn)
    return lambda ks, x: jax.tree_util.tree_map(lambda a: a[None],
                                                call(ks[0], x))
  if strategy == "vmap":
    return jax.jit(jax.vmap(fn, in_axes=(0, None)))
  if strategy == "map":
    return jax.jit(lambda ks, x: lax.map(lambda k: fn(k, x), ks,
                                         batch_size=batch_size))
  mesh = Mesh(np.array(devices), ("seeds",))
  mapped = jax.jit(jax.shard_map(
      lambda ks, x: lax.map(lambda k: fn(k, x), ks, batch_size=batch_size),
      mesh=mesh, in_specs=(P("seeds"), P()), out_specs=P("seeds")))

  def run(ks, x):
    n = ks.shape[0]
    if n % len(devices):  # pad with repeats of the last key, dropped below
      pad = len(devices) - n % len(devices)
      ks = jnp.concatenate([ks, jnp.repeat(ks[-1:], pad, 0)])
    return jax.tree_util.tree_map(lambda a: a[:n], mapped(ks, x))

  return run


def run_seeds(fn: Callable, keys: jax.Array, images, *,
              strategy: str = "auto", plan: Plan | None = None,
              batch_size: int | None = None, progress: bool | str = False,
              devices: Sequence[jax.Device] | None = None):
  """Evaluates ``fn(key, images) -> pytree [b, ...]`` for every key.

  Args:
    fn: a pure function of one PRNG key and a [b, H, W, C] image batch,
      returning a pytree whose leaves have the image axis first. It must not
      mix images (per-image results), so image chunking changes nothing.
    keys: [S, 2] PRNG keys, one per net.
    images: [B, H, W, C].
    strategy: ``loop``, ``vmap``, ``map``, ``shard`` or ``auto``.
    plan: seed and image chunk sizes (default: everything in one chunk;
      for shard, ``seed_chunk`` counts seeds per device).
    batch_size: seeds vmapped together inside ``map``.
    progress: show a tqdm bar on stderr (a string gives its label).
    devices: devices for ``shard`` (default: all local devices).

  Returns:
    The pytree with leaves [S, B, ...] as numpy arrays.
  """
  if strategy == "auto":
    strategy = default_strategy()
  if strategy not in STRATEGIES:
    raise ValueError(f"unknown seed strategy {strategy!r}; choose one of "
                     f"{', '.join(STRATEGIES)} or auto")
  keys = jnp.asarray(keys)
  images = jnp.asarray(images)
  n_seeds, n_images = keys.shape[0], images.shape[0]
  devices = tuple(devices or jax.local_devices())
  if plan is None:
    plan = Plan(seed_chunk={"loop": 1, "shard": -(-n_seeds // len(devices))
                            }.get(strategy, n_seeds), image_chunk=n_images)
  image_slices = _chunks(n_images, max(1, plan.image_chunk))

  if strategy == "loop":
    seed_slices = [slice(i, i + 1) for i in range(n_seeds)]
  else:
    seed_slices = _chunks(n_seeds, max(1, plan.seed_chunk) * (
        len(devices) if strategy == "shard" else 1))
  run = _runner(fn, strategy, batch_size, devices)

  bar = None
  if progress:
    from tqdm.auto import tqdm
    bar = tqdm(total=n_seeds * n_images, unit="net-img",
               desc=progress if isinstance(progress, str) else strategy,
               leave=False)
  rows = []
  for ss in seed_slices:
    cols = []
    for sl in image_slices:
      out = jax.device_get(run(keys[ss], images[sl]))
      cols.append(out)
      if bar is not None:
        bar.update((ss.stop - ss.start) * (sl.stop - sl.start))
    rows.append(jax.tree_util.tree_map(
        lambda *a: np.concatenate(a, axis=1), *cols))
  if bar is not None:
    bar.close()
  return jax.tree_util.tree_map(lambda *a: np.concatenate(a, axis=0), *rows)
