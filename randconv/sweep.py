"""The hot path of Section 4: many random CNN-DCN nets on one image batch.

:func:`sweep_outputs` evaluates ``post(images, outputs)`` for every net key
with the fastest settings measured for the backend (README, "Section 4",
speed), or with the direct convolution when asked (the reference):

* 3x3 stride-1 convs by Winograd F(4x4, 3x3) on a CPU (``conv_impl='auto'``,
  :mod:`randconv.fastconv`);
* the seed strategy chosen per net size (:func:`pick_strategy`): a cheap net
  is dominated by per-call dispatch and thin convs, so the nets are vmapped
  together; under ``vmap`` the first conv of all nets, which share their
  input, becomes one conv with ``nets x width`` output channels (JAX's
  batching rule for an unbatched input) and the Winograd matmuls gain a batch
  axis. A costly net runs one net per call, which keeps memory low and the
  matmuls big.

Compiled functions are cached per (spec, post, impl), so a sweep that calls
this once per cell compiles once per width.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math

import jax
import numpy as np

from randconv import nets, seeds
from randconv.spec import Conv, NetSpec, conv_flops

# Up to this many multiply-adds per image per net, nets are vmapped together
# on a CPU. Measured on the 64 px sweep, 8 nets x 8 images (README): with
# the per-shape jitted weight draw, vmap ties with the loop at width 4
# (2 M MACs) and loses from width 16 (22 M MACs) on.
CPU_VMAP_MAX_MACS = 5e6


def pick_strategy(spec: NetSpec, height: int, width: int,
                  backend: str | None = None) -> str:
  """``vmap`` for cheap nets on a CPU (dispatch-bound), ``loop`` for costly
  ones; elsewhere the backend's default (:data:`seeds.DEFAULT_STRATEGY`)."""
  backend = backend or jax.default_backend()
  if backend == "cpu":
    macs = conv_flops(spec, height, width) / 2
    return "vmap" if macs <= CPU_VMAP_MAX_MACS else "loop"
  return seeds.default_strategy(backend)


def keep_freed_memory() -> bool:
  """Asks glibc's malloc to keep freed memory instead of unmapping it.

  XLA's CPU runtime allocates each call's buffers afresh; with glibc's
  defaults every buffer over 32 MiB is a new ``mmap`` whose pages fault in
  on first touch, which can cost as much as the convolution itself. Keeping
  the heap (``M_MMAP_MAX = 0``, no trimming) removes those faults; the peak
  memory is the same, it is just not given back to the system.

  Returns:
    Whether glibc accepted the settings (False on other C libraries).
  """
  name = ctypes.util.find_library("c")
  if not name:
    return False
  try:
    libc = ctypes.CDLL(name)
    m_trim_threshold, m_mmap_max = -1, -4
    ok = libc.mallopt(m_mmap_max, 0) and libc.mallopt(
        m_trim_threshold, 1 << 40)
  except (OSError, AttributeError):
    return False
  return bool(ok)


@functools.lru_cache(maxsize=32)
def compiled(spec: NetSpec, post=None, conv_impl: str = "auto",
             rescale: bool = True, many: bool = False):
  """The jitted ``f(params, images) -> post(images, outputs)``; with
  ``many``, vmapped over params stacked on a leading net axis. ``post`` must
  be hashable (a module-level function).

  The weights are drawn outside (:func:`draw`): one sampler per weight
  shape, reused across specs and widths, whereas a jitted ``init``
  recompiles every draw of every layer for every spec (16 s of compile for
  VGG16 at Conv5 here, against 1.3 s for ``apply``)."""

  def f(params, images):
    y = nets.apply(params, spec, images, rescale=rescale,
                   conv_impl=conv_impl)[0]
    return y if post is None else post(images, y)

  return jax.jit(jax.vmap(f, in_axes=(0, None)) if many else f)


@functools.lru_cache(maxsize=256)
def _sampler(dist: nets.Distribution, shape: tuple[int, ...], fan_in: int,
             many: bool):
  def one(key, index):
    return dist.sample(jax.random.fold_in(key, index), shape, fan_in)
  return jax.jit(jax.vmap(one, in_axes=(0, None)) if many else one)


def draw(spec: NetSpec, distribution, keys: jax.Array, many: bool = False):
  """The params of the nets in ``keys``: :func:`randconv.nets.init`'s draws
  (layer ``i`` from ``fold_in(key, i)``) up to float rounding; ``many``: stacked on a leading
  axis, else ``keys`` holds one key and the params are unstacked.

  One jitted sampler per weight shape, shared by every spec and width: one
  dispatch per layer, each compiled once (eager ``init`` dispatches ~10
  primitives per layer, ~30 ms per net here; a jitted ``init`` recompiles
  every layer's draw for every spec).
  """
  dist = nets.parse_distribution(distribution)
  keys = jax.numpy.asarray(keys)
  key = keys if many else keys[0]
  params = {}
  for i, layer in enumerate(spec.layers):
    if isinstance(layer, Conv):
      sample = _sampler(dist, layer.weight_shape, layer.fan_in, many)
      params[layer.name] = {"w": sample(key, i)}
  return params


def plan(spec: NetSpec, n_seeds: int, n_images: int, height: int, width: int,
         strategy: str, conv_impl: str = "auto",
         budget: int | None = None) -> seeds.Plan:
  """Seed and image chunks under ``budget`` bytes (:func:`seeds.plan_chunks`);
  Winograd holds its tile buffers too, counted as 3x the activations."""
  p = seeds.plan_chunks(spec, n_seeds, n_images, height, width, strategy,
                        budget=budget)
  if conv_impl != "direct" and jax.default_backend() == "cpu":
    scale = 3
    return seeds.Plan(max(1, p.seed_chunk // (scale if strategy == "vmap"
                                              else 1)),
                      max(1, math.ceil(p.image_chunk / scale)))
  return p


def param_shapes(spec: NetSpec, n_nets: int | None = None) -> dict:
  """The abstract params of :func:`draw` (a leading net axis with
  ``n_nets``), for compiling without drawing."""
  lead = () if n_nets is None else (n_nets,)
  return {c.name: {"w": jax.ShapeDtypeStruct(lead + c.weight_shape,
                                             np.float32)}
          for c in spec.convs}


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


@functools.lru_cache(maxsize=64)
def fit_chunks(spec: NetSpec, post, conv_impl: str, rescale: bool,
               many: bool, image_shape: tuple[int, int, int],
               chunks: seeds.Plan, budget: int,
               measure=program_bytes) -> tuple[seeds.Plan, int | None]:
  """Shrinks ``chunks`` until the compiled program of one chunk needs at
  most ``budget`` bytes (:func:`program_bytes`), and returns the plan with
  its bytes.

  :func:`plan`'s estimate (the largest maps) is only a first guess; the
  compiled program also holds the convs' workspaces, the grouped convs of a
  vmap and the post function's buffers. Each try compiles the chunk once
  (cached per shape); the larger of the seed and image chunks shrinks in
  proportion to the overshoot.

  Raises:
    MemoryError: when one net on one image is over the budget, or no chunk
      fits within ``max_tries`` compiles.
  """
  fn = compiled(spec, post, conv_impl, rescale, many)
  s, b = chunks.seed_chunk, chunks.image_chunk
  max_tries = 12
  for tries in range(1, max_tries + 1):
    need = measure(fn, param_shapes(spec, s if many else None),
                   jax.ShapeDtypeStruct((b,) + image_shape, np.float32))
    if need is None or need <= budget:
      return seeds.Plan(s, b), need
    if (s == 1 and b == 1) or tries == max_tries:
      what = (f"one {spec.arch} {spec.layer} net on one" if s == b == 1
              else f"{s} {spec.arch} {spec.layer} nets on {b}")
      raise MemoryError(
          f"{what} {image_shape[0]}x{image_shape[1]} image(s) need "
          f"{need / 2**30:.1f} GiB, over the memory budget of "
          f"{budget / 2**30:.1f} GiB (set ${seeds.BUDGET_ENV})")
    shrink = 0.9 * budget / need
    if many and s >= b:
      s = max(1, min(s - 1, int(s * shrink)))
    else:
      b = max(1, min(b - 1, int(b * shrink)))
  raise AssertionError("the last try returns or raises")


def sweep_outputs(spec: NetSpec, distribution, keys: jax.Array, images, *,
                  post=None, conv_impl: str = "auto", strategy: str = "auto",
                  budget: int | None = None, rescale: bool = True,
                  chunks: seeds.Plan | None = None,
                  check_memory: bool | None = None):
  """``post(images, outputs)`` for every net in ``keys``: a pytree of numpy
  arrays [S, B, ...].

  Args:
    spec: the network.
    distribution: the weight distribution (str or Distribution).
    keys: [S, 2] net keys (:func:`randconv.seeds.seed_keys`).
    images: [B, H, W, C].
    post: maps (images, outputs) to a per-image pytree; default: outputs.
      Must be hashable (a module-level function) for the compile cache.
    conv_impl: ``auto``, ``winograd`` or ``direct`` (the reference).
    strategy: ``loop``, ``vmap`` or ``auto`` (:func:`pick_strategy`).
    budget: memory budget in bytes for the chunks (default: the backend's).
    rescale: RMS-normalise after every conv (docs/design.md §4).
    chunks: explicit chunk sizes (default: :func:`plan`, then
      :func:`fit_chunks` where ``check_memory``).
    check_memory: shrink the planned chunks until XLA's memory analysis of
      the compiled chunk fits ``budget``; default: on any backend but the
      CPU (where :func:`plan`'s estimate is measured to hold, README).
  """
  keys = np.asarray(keys)
  images = np.asarray(images, np.float32)
  n_seeds, n_images = keys.shape[0], images.shape[0]
  h, w = images.shape[1:3]
  if strategy == "auto":
    strategy = pick_strategy(spec, h, w)
  if strategy not in ("loop", "vmap"):
    raise ValueError(f"unknown sweep strategy {strategy!r}; choose loop, "
                     "vmap or auto")
  many = strategy == "vmap"
  if chunks is None:
    budget = budget or seeds.default_budget()
    chunks = plan(spec, n_seeds, n_images, h, w, strategy, conv_impl, budget)
    if check_memory is None:
      check_memory = jax.default_backend() != "cpu"
    if check_memory:
      chunks, _ = fit_chunks(spec, post, conv_impl, rescale, many,
                             tuple(images.shape[1:]), chunks, budget)
  fn = compiled(spec, post, conv_impl, rescale, many)
  seed_size = max(1, chunks.seed_chunk) if many else 1
  rows = []
  for s0 in range(0, n_seeds, seed_size):
    params = draw(spec, distribution, keys[s0:s0 + seed_size], many)
    cols = []
    for i0 in range(0, n_images, max(1, chunks.image_chunk)):
      out = fn(params, images[i0:i0 + chunks.image_chunk])
      if not many:
        out = jax.tree_util.tree_map(lambda a: a[None], out)
      cols.append(jax.device_get(out))
    rows.append(jax.tree_util.tree_map(
        lambda *a: np.concatenate(a, axis=1), *cols))
  return jax.tree_util.tree_map(lambda *a: np.concatenate(a, axis=0), *rows)


__all__ = ["sweep_outputs", "compiled", "draw", "plan", "fit_chunks",
           "program_bytes", "param_shapes", "pick_strategy",
           "keep_freed_memory"]
