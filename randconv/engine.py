"""One engine for many random nets: draw them, run them, stay in memory.

* :func:`run_nets` evaluates ``post(images, outputs)`` for every net key of
  a spec (Section 4, T7, the CLI): the nets are :class:`randconv.modules.
  CNNDCN` modules whose params are drawn outside the compiled forward pass
  (:func:`draw`, exactly ``model.init(key, method="draw")``), then run by
  the strategy the backend's table picks for the net's size
  (:func:`pick_strategy`):

  - ``loop``: one compiled call per net (a costly net: big matmuls, low
    memory);
  - ``map``: a chunk of nets as one compiled executable, ``lax.map`` over
    their stacked params, so per-call overhead stops dominating cheap nets;
  - ``vmap``: ``jax.vmap`` over the stacked params (a GPU batches it well;
    on a CPU each conv becomes a grouped conv, which XLA runs several times
    slower than one conv per net);
  - ``shard``: the nets split over the devices.

* :func:`run_keys` evaluates any ``fn(key, images)`` for every key (the
  theory checks' Monte Carlo functions, the CLI's ``invert``), with the
  same four strategies.

Both, and :func:`net_fn`, share :class:`randconv.modules.CNNDCN`'s
defaults: no RMS rescaling (``rescale=False``) and the backend's conv
policy (``policy="auto"``); docs/design.md §4 says why.

One memory planner serves both: a first guess from the two largest maps
(:func:`plan_chunks`), then, on any backend but the CPU, XLA's own memory
analysis of the compiled chunk (:func:`fit_chunks`). Net keys come from
:func:`seed_keys`: net ``i`` never depends on how many nets are drawn, so
runs resume and grow.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from randconv.distributions import Distribution, parse_distribution
from randconv.memory import (  # noqa: F401 - part of the engine's API
  BUDGET_ENV,
  DEFAULT_BUDGET,
  Plan,
  activation_bytes,
  default_budget,
  param_bytes,
  plan_chunks,
  program_bytes,
)
from randconv.modules import CNNDCN
from randconv.policy import ConvPolicy
from randconv.spec import NetSpec, conv_flops

KEY_STRATEGIES = ("loop", "vmap", "map", "shard")
NET_STRATEGIES = KEY_STRATEGIES
# The strategy tables (benchmarks/many_nets.py; the timings are in
# docs/performance.md, "Many nets"). run_keys: one strategy per backend.
# run_nets: per backend, (largest multiply-adds per image per net, strategy)
# in increasing order. On a CPU a cheap net's time is mostly the cost of one
# compiled call, which ``map`` pays once per chunk; vmap's grouped convs
# lose there at every width. Past MAP_MAX_MACS the nets are compute-bound,
# ``map`` gains nothing, and one call per net keeps the memory low.
KEY_STRATEGY = {"cpu": "loop", "gpu": "vmap", "tpu": "vmap"}
MAP_MAX_MACS = 1e9
NET_STRATEGY = {"cpu": ((MAP_MAX_MACS, "map"), (math.inf, "loop")),
                "gpu": ((math.inf, "vmap"),), "tpu": ((math.inf, "vmap"),)}
def default_strategy(backend: str | None = None) -> str:
  """:func:`run_keys`'s strategy for the backend (:data:`KEY_STRATEGY`);
  ``shard`` (over :func:`sweep_devices`) in a job of several processes."""
  if jax.process_count() > 1:
    return "shard"
  return KEY_STRATEGY.get(backend or jax.default_backend(), "loop")


def sweep_devices() -> list:
  """The devices that many nets are split over (``shard``): every device
  of the job, but on CPUs one per process. Several CPU devices of one
  process share its thread pool, and the theory checks' Gram sampler was
  measured to hang there (jax 0.10.2, 2 forced CPU devices, with or
  without other processes); one CPU device per process does not."""
  devices = jax.devices()
  if jax.default_backend() != "cpu":
    return devices
  first = {}
  for d in devices:
    first.setdefault(d.process_index, d)
  return [first[p] for p in sorted(first)]


def _global(array: np.ndarray, sharding) -> jax.Array:
  """A host array that every process holds whole, placed by ``sharding``
  (which may span other processes' devices)."""
  array = np.asarray(array)
  return jax.make_array_from_callback(array.shape, sharding,
                                      lambda index: array[index])


def _gather(tree):
  """Every process gets the whole of each output split over the devices,
  as numpy: one gather of the whole tree, in a program of its own. (A
  replicated output sharding would gather inside the computing program;
  on CPU devices whose programs block on a collective while others still
  need the shared thread pool, that can hang: the theory checks' Gram
  sampler did, on 2 processes x 2 CPU devices.)"""
  if jax.process_count() == 1:
    return jax.tree_util.tree_map(np.asarray, tree)
  from jax.experimental import multihost_utils
  return jax.tree_util.tree_map(
      np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def seed_keys(seed: int, n: int, start: int = 0) -> jax.Array:
  """Keys of nets ``start..start+n-1`` under root ``seed``: net i's key never
  depends on how many nets are drawn, so runs can resume and grow."""
  root = jax.random.PRNGKey(seed)
  return jnp.stack([jax.random.fold_in(root, i)
                    for i in range(start, start + n)])


def _concat(trees: list, axis: int):
  """The leaves of same-shaped pytrees of numpy arrays, concatenated."""
  return jax.tree_util.tree_map(lambda *a: np.concatenate(a, axis=axis),
                                *trees)


def _pad_keys(keys: np.ndarray, multiple: int) -> np.ndarray:
  """``keys`` padded to a multiple of ``multiple`` with repeats of the last
  key (whose results the callers drop)."""
  pad = -len(keys) % multiple
  return np.concatenate([keys, np.repeat(keys[-1:], pad, 0)]) if pad \
      else keys


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
  split, whole = NamedSharding(mesh, P("seeds")), NamedSharding(mesh, P())
  mapped = jax.jit(jax.shard_map(
      lambda ks, x: lax.map(lambda k: fn(k, x), ks, batch_size=batch_size),
      mesh=mesh, in_specs=(P("seeds"), P()), out_specs=P("seeds")))

  def run(ks, x):
    n = ks.shape[0]
    ks = _pad_keys(np.asarray(ks), len(devices))
    out = _gather(mapped(_global(ks, split), _global(x, whole)))
    return jax.tree_util.tree_map(lambda a: a[:n], out)

  return run


def run_keys(fn: Callable, keys: jax.Array, images, *,
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
    devices: devices for ``shard`` (default: :func:`sweep_devices`).

  Returns:
    The pytree with leaves [S, B, ...] as numpy arrays.
  """
  if strategy == "auto":
    strategy = default_strategy()
  if strategy not in KEY_STRATEGIES:
    raise ValueError(f"unknown key strategy {strategy!r}; choose one of "
                     f"{', '.join(KEY_STRATEGIES)} or auto")
  keys = np.asarray(keys)
  images = np.asarray(images)
  n_seeds, n_images = keys.shape[0], images.shape[0]
  devices = tuple(devices or sweep_devices())
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
    from randconv import progress as progress_lib
    bar = progress_lib.bar(n_seeds * n_images, progress if isinstance(
        progress, str) else strategy, "net-img")
  rows = []
  for ss in seed_slices:
    cols = []
    for sl in image_slices:
      out = jax.device_get(run(keys[ss], images[sl]))
      cols.append(out)
      if bar is not None:
        bar.update((ss.stop - ss.start) * (sl.stop - sl.start))
    rows.append(_concat(cols, axis=1))
  if bar is not None:
    bar.close()
  return _concat(rows, axis=0)


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


def pick_strategy(spec: NetSpec, height: int, width: int,
                  backend: str | None = None) -> str:
  """:func:`run_nets`'s strategy for one net's size on the backend
  (:data:`NET_STRATEGY`)."""
  backend = backend or jax.default_backend()
  macs = conv_flops(spec, height, width) / 2
  for limit, strategy in NET_STRATEGY.get(backend, NET_STRATEGY["gpu"]):
    if macs <= limit:
      return strategy
  raise AssertionError("every table ends at infinity")


@functools.lru_cache(maxsize=32)
def compiled(spec: NetSpec, post=None, policy: ConvPolicy | str = "auto",
             rescale: bool = False, strategy: str = "loop"):
  """The jitted ``f(params, images) -> post(images, outputs)`` of a
  :class:`CNNDCN`; for ``map`` and ``vmap`` the params carry a leading net
  axis. ``post`` must be hashable (a module-level function)."""
  model = CNNDCN(spec, rescale=rescale, policy=ConvPolicy.named(policy))

  def f(params, images):
    y = model.apply({"params": params}, images)
    return y if post is None else post(images, y)

  if strategy == "vmap":
    return jax.jit(jax.vmap(f, in_axes=(0, None)))
  if strategy == "map":
    return jax.jit(lambda ps, x: lax.map(lambda p: f(p, x), ps))
  return jax.jit(f)


def _given_key(key: jax.Array, shape, dtype=None) -> jax.Array:
  """A kernel initializer that returns its key in place of a kernel, so
  that ``init`` reports the key Flax derives for each layer."""
  del shape, dtype
  return key


@functools.lru_cache(maxsize=64)
def _layer_keys(spec: NetSpec, many: bool):
  """``keys -> {layer: {"kernel": key}}``: the key Flax gives each kernel
  initializer in ``CNNDCN(spec, kernel_init).init(key, method="draw")``
  (the same for every ``kernel_init``: Flax derives it from the net's key
  and the layer's name)."""
  model = CNNDCN(spec, kernel_init=_given_key)

  def one(key):
    return model.init(key, method="draw")["params"]

  return jax.jit(jax.vmap(one) if many else one)


@functools.lru_cache(maxsize=256)
def _sampler(dist: Distribution, shape: tuple[int, ...], many: bool):
  init = dist.initializer()

  def one(key):
    return init(key, shape, jnp.float32)

  return jax.jit(jax.vmap(one) if many else one)


def draw(spec: NetSpec, distribution: Distribution | str, keys: jax.Array,
         many: bool = False):
  """The params of the nets in ``keys``: ``CNNDCN(spec, dist.initializer())
  .init(key, method="draw")["params"]`` for each key, with ``dist`` the
  :class:`Distribution` (or its ``name[:scale]`` text); ``many``: stacked
  on a leading axis, else ``keys`` holds one key and the params are
  unstacked.

  Each kernel is drawn by its initializer from the key Flax derives for its
  layer (:func:`_layer_keys`), but outside one program per spec: one jitted
  sampler per weight shape, shared by every spec and width, because a
  jitted ``init`` of a deep pair compiles for long, and again for every
  spec (docs/performance.md, "Drawing weights")."""
  dist = parse_distribution(distribution)
  keys = jnp.asarray(keys)
  layer_keys = _layer_keys(spec, many)(keys if many else keys[0])
  return {c.name: {"kernel": _sampler(dist, c.weight_shape, many)(
      layer_keys[c.name]["kernel"])} for c in spec.convs}


def uses_winograd(spec: NetSpec, policy: ConvPolicy, height: int,
                  width: int) -> bool:
  """Whether ``policy`` runs any conv of ``spec`` by Winograd at this input
  size."""
  enc, dec = spec.shapes(height, width)
  out_hw = {s.name: (s.height, s.width) for s in enc + dec}
  return any(policy.uses_winograd(c.kernel, c.stride, c.groups,
                                  c.in_channels, c.out_channels,
                                  out_hw[c.name]) for c in spec.convs)


def plan(spec: NetSpec, n_seeds: int, n_images: int, height: int, width: int,
         strategy: str, policy: ConvPolicy | str = "auto",
         budget: int | None = None) -> Plan:
  """:func:`run_nets`'s net and image chunks under ``budget`` bytes
  (:func:`plan_chunks`); where the policy runs a conv by Winograd, its tile
  buffers count as 3x the activations."""
  p = plan_chunks(spec, n_seeds, n_images, height, width, strategy,
                  budget=budget, params_drawn=True)
  if uses_winograd(spec, ConvPolicy.named(policy), height, width):
    scale = 3
    return Plan(max(1, p.seed_chunk // (scale if strategy == "vmap" else 1)),
                max(1, math.ceil(p.image_chunk / scale)))
  return p


def param_shapes(spec: NetSpec, n_nets: int | None = None) -> dict:
  """The abstract params of :func:`draw` (a leading net axis with
  ``n_nets``), for compiling without drawing."""
  lead = () if n_nets is None else (n_nets,)
  return {c.name: {"kernel": jax.ShapeDtypeStruct(lead + c.weight_shape,
                                                  np.float32)}
          for c in spec.convs}


@functools.lru_cache(maxsize=64)
def fit_chunks(spec: NetSpec, post, policy: ConvPolicy | str, rescale: bool,
               strategy: str, image_shape: tuple[int, int, int],
               chunks: Plan, budget: int,
               measure=program_bytes) -> tuple[Plan, int | None]:
  """Shrinks ``chunks`` until the compiled program of one chunk needs at
  most ``budget`` bytes (:func:`program_bytes`), and returns the plan with
  its bytes.

  :func:`plan`'s estimate (the largest maps) is only a first guess; the
  compiled program also holds the convs' workspaces, the grouped convs of a
  vmap and the post function's buffers. Each try compiles the chunk once
  (cached per shape); the larger of the net and image chunks shrinks in
  proportion to the overshoot.

  Raises:
    MemoryError: when one net on one image is over the budget, or no chunk
      fits within ``max_tries`` compiles.
  """
  fn = compiled(spec, post, policy, rescale, strategy)
  many = strategy != "loop"
  s, b = chunks.seed_chunk, chunks.image_chunk
  max_tries = 12
  for tries in range(1, max_tries + 1):
    need = measure(fn, param_shapes(spec, s if many else None),
                   jax.ShapeDtypeStruct((b,) + image_shape, np.float32))
    if need is None or need <= budget:
      return Plan(s, b), need
    if (s == 1 and b == 1) or tries == max_tries:
      what = (f"one {spec.arch} {spec.layer} net on one" if s == b == 1
              else f"{s} {spec.arch} {spec.layer} nets on {b}")
      raise MemoryError(
          f"{what} {image_shape[0]}x{image_shape[1]} image(s) need "
          f"{need / 2**30:.1f} GiB, over the memory budget of "
          f"{budget / 2**30:.1f} GiB (set ${BUDGET_ENV})")
    shrink = 0.9 * budget / need
    if many and s >= b:
      s = max(1, min(s - 1, int(s * shrink)))
    else:
      b = max(1, min(b - 1, int(b * shrink)))
  raise AssertionError("the last try returns or raises")


def net_fn(spec: NetSpec, distribution: Distribution | str = "gaussian:0.015",
           rescale: bool = False, policy: ConvPolicy | str = "auto"):
  """``f(key, images) -> outputs``: a fresh random net per key, drawn and run
  in one function (``CNNDCN(spec, dist.initializer()).init(key,
  method="draw")`` then ``apply``), for :func:`run_keys` and the theory
  checks. Give ``policy="direct"`` where forward-mode derivatives
  (``jax.jvp``) must pass through: some of ``auto``'s rewrites have a
  custom VJP only."""
  model = CNNDCN(spec, parse_distribution(distribution).initializer(),
                 rescale=rescale, policy=ConvPolicy.named(policy))

  def f(key, images):
    return model.apply(model.init(key, method="draw"), images)

  return f


def _planned(spec: NetSpec, post, policy: ConvPolicy, rescale: bool,
             strategy: str, n_nets: int, images: np.ndarray,
             budget: int | None, check_memory: bool | None) -> Plan:
  """:func:`plan`'s chunks for ``n_nets`` nets on ``images`` under
  ``budget`` (default: the backend's), then, where ``check_memory``
  (default: on any backend but the CPU), :func:`fit_chunks`'s."""
  budget = budget or default_budget()
  h, w = images.shape[1:3]
  chunks = plan(spec, n_nets, len(images), h, w, strategy, policy, budget)
  if check_memory is None:
    check_memory = jax.default_backend() != "cpu"
  if check_memory:
    chunks, _ = fit_chunks(spec, post, policy, rescale, strategy,
                           tuple(images.shape[1:]), chunks, budget)
  return chunks


def run_nets(spec: NetSpec, distribution: Distribution | str,
             keys: jax.Array, images, *,
             post=None, policy: ConvPolicy | str = "auto",
             strategy: str = "auto", budget: int | None = None,
             rescale: bool = False, chunks: Plan | None = None,
             check_memory: bool | None = None):
  """``post(images, outputs)`` for every net in ``keys``: a pytree of numpy
  arrays [S, B, ...].

  Args:
    spec: the network.
    distribution: the weight distribution (a :class:`Distribution` or its
      ``name[:scale]`` text).
    keys: [S, 2] net keys (:func:`seed_keys`).
    images: [B, H, W, C].
    post: maps (images, outputs) to a per-image pytree; default: outputs.
      Must be hashable (a module-level function) for the compile cache.
    policy: the conv algorithms (:class:`ConvPolicy` or its name; ``auto``
      is the backend's default, ``direct`` the reference).
    strategy: ``loop``, ``map``, ``vmap``, ``shard`` (the nets split
      over every device of the job, :func:`run_sharded`) or ``auto``
      (``shard`` on several devices, else :func:`pick_strategy`).
    budget: memory budget in bytes for the chunks (default: the backend's).
    rescale: RMS-normalise after every conv (docs/design.md §4); off by
      default, as in :class:`CNNDCN`.
    chunks: explicit chunk sizes (default: :func:`plan`, then
      :func:`fit_chunks` where ``check_memory``).
    check_memory: shrink the planned chunks until XLA's memory analysis of
      the compiled chunk fits ``budget``; default: on any backend but the
      CPU (where :func:`plan`'s estimate is measured to hold).
  """
  keys = np.asarray(keys)
  images = np.asarray(images, np.float32)
  n_seeds, n_images = keys.shape[0], images.shape[0]
  h, w = images.shape[1:3]
  policy = ConvPolicy.named(policy)
  if strategy == "auto":
    strategy = "shard" if len(sweep_devices()) > 1 else pick_strategy(
        spec, h, w)
  if strategy not in NET_STRATEGIES:
    raise ValueError(f"unknown net strategy {strategy!r}; choose one of "
                     f"{', '.join(NET_STRATEGIES)} or auto")
  if strategy == "shard":
    return run_sharded(spec, distribution, keys, images, post=post,
                       policy=policy, budget=budget, rescale=rescale,
                       chunks=chunks, check_memory=check_memory)
  many = strategy != "loop"
  if chunks is None:
    chunks = _planned(spec, post, policy, rescale, strategy, n_seeds, images,
                      budget, check_memory)
  fn = compiled(spec, post, policy, rescale, strategy)
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
    rows.append(_concat(cols, axis=1))
  return _concat(rows, axis=0)


def _draw_sharded(spec: NetSpec, distribution, keys: np.ndarray,
                  sharding) -> dict:
  """The params of the nets in ``keys`` as global arrays split over the
  nets: each process draws only the nets of its own devices."""
  shapes = param_shapes(spec, len(keys))
  some = jax.tree_util.tree_leaves(shapes)[0].shape
  index = sharding.addressable_devices_indices_map(some)
  local = {d: draw(spec, distribution, keys[ix[0]], many=True)
           for d, ix in index.items()}
  return {c.name: {"kernel": jax.make_array_from_single_device_arrays(
      shapes[c.name]["kernel"].shape, sharding,
      [jax.device_put(local[d][c.name]["kernel"], d) for d in index])}
      for c in spec.convs}


@functools.lru_cache(maxsize=32)
def _sharded_fn(spec: NetSpec, post, policy: ConvPolicy, rescale: bool,
                inner: str, mesh: Mesh):
  fn = compiled(spec, post, policy, rescale, inner)
  return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(P("nets"), P()),
                               out_specs=P("nets")))


def run_sharded(spec: NetSpec, distribution, keys, images, *, post=None,
                policy: ConvPolicy | str = "auto", budget: int | None = None,
                rescale: bool = False, chunks: Plan | None = None,
                devices: Sequence[jax.Device] | None = None,
                check_memory: bool | None = None):
  """:func:`run_nets` with the nets split over ``devices`` (default:
  :func:`sweep_devices`, on every process of the job): each device runs
  its share of the nets (padded with repeats of the last key, dropped
  after) on every image, by ``vmap`` where the backend's table says so,
  else one net after the other (``lax.map``); every process gets all the
  results.

  ``chunks``: nets per device and images per call (default: :func:`plan`
  for one device's share, then, where ``check_memory`` (default: on any
  backend but the CPU), :func:`fit_chunks` of one device's program).
  """
  keys = np.asarray(keys)
  images = np.asarray(images, np.float32)
  devices = list(devices or sweep_devices())
  n, h, w = len(keys), images.shape[1], images.shape[2]
  per = -(-n // len(devices))
  policy = ConvPolicy.named(policy)
  inner = "vmap" if pick_strategy(spec, h, w) == "vmap" else "map"
  if chunks is None:
    chunks = _planned(spec, post, policy, rescale, inner, per, images,
                      budget, check_memory)
  chunk = max(1, min(per, chunks.seed_chunk))  # nets per device per call
  step = chunk * len(devices)
  keys = _pad_keys(keys, step)
  mesh = Mesh(np.array(devices), ("nets",))
  fn = _sharded_fn(spec, post, policy, rescale, inner, mesh)
  split, whole = NamedSharding(mesh, P("nets")), NamedSharding(mesh, P())
  rows = []
  for s0 in range(0, len(keys), step):
    params = _draw_sharded(spec, distribution, keys[s0:s0 + step], split)
    cols = [_gather(fn(params, _global(images[i0:i0 + chunks.image_chunk],
                                       whole)))
            for i0 in range(0, len(images), max(1, chunks.image_chunk))]
    rows.append(_concat(cols, axis=1))
  out = _concat(rows, axis=0)
  return jax.tree_util.tree_map(lambda a: a[:n], out)


__all__ = ["run_nets", "run_sharded", "run_keys", "net_fn", "draw",
           "compiled", "plan", "plan_chunks", "fit_chunks", "program_bytes",
           "sweep_devices", "param_shapes", "pick_strategy",
           "default_strategy", "default_budget", "seed_keys", "Plan",
           "keep_freed_memory", "KEY_STRATEGIES", "NET_STRATEGIES",
           "BUDGET_ENV"]
