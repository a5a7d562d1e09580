"""Monte Carlo of the Section 5 network at finite width.

Two engines draw random networks; both are ``fn(key, images) -> [B, H, W]``
functions that :func:`randconv.engine.run_keys` batches over seeds:

* :func:`library_fn`: the library's own network (:class:`randconv.modules.
  CNNDCN` with N(0, 1) weights and ``rescale=True``). The Section 5 network's
  1/sqrt(N_l) factors and the library's per-image rescaling are both
  positive per-layer constants, so its output has the right direction (all
  that an angle sees) but not the Section 5 scale.
* :func:`sampler_fn`: an exact sampler of the same network, on the exact
  Section 5 scale (sigma = 1, 1/sqrt(N_l) on every conv map but the one the
  mean averages). Given the previous layer's maps X (C channels), the
  pre-activations of a conv with i.i.d. N(0, 1) weights are, channel by
  channel, i.i.d. N(0, S) over the output positions with
  ``S(j, j') = sum_t <X(j + t), X(j' + t)>`` (sum over the kernel taps t).
  Sampling ``z = L g`` (``S = L L^T``, Cholesky; g standard normal
  [HW, N]) costs ``O(HW^2 N)`` per layer instead of the conv's
  ``O(HW k^2 N^2)``: at 16x16 and N = 4096 about 70 times less, which is
  what lets the cpu preset reach N = 4096 with 20 nets per width. Where the
  layer's fan-in ``k^2 C`` is at most ``HW`` the sampler convolves with
  drawn weights instead (the same distribution, cheaper). Pooling, unpooling
  and the crop act on the sampled maps with the library's own ops, so max
  pooling works too (check T6). Each image's output has exactly the
  network's distribution; the images of one key share the Gaussian draws
  but not the weights (only per-image statistics are used).

``tests/test_theory_montecarlo.py`` checks that the two engines agree in
distribution.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from randconv import distributed
from randconv.deadline import NO_DEADLINE, Deadline
from randconv.errors import RandconvError
from randconv.rundir import RunDir, read_jsonl
from randconv.spec import ChannelMean, Conv, Crop, LRN, NetSpec, Pool, Unpool
from theory_checks.limits import TheoryError, angle
from theory_checks.routes import tap_indices


JITTER = 1e-4


def _check(spec: NetSpec) -> int:
  layers = spec.layers
  kinds = [type(l) for l in layers]
  if ChannelMean not in kinds:
    raise TheoryError("the Section 5 network ends in the channel mean")
  mean_at = kinds.index(ChannelMean)
  if not isinstance(layers[mean_at - 1], Conv):
    raise TheoryError("the channel mean must average the ReLU maps of a conv")
  for l in layers:
    if isinstance(l, LRN):
      raise TheoryError("LRN is not part of the Section 5 network")
    if isinstance(l, Conv) and (l.groups != 1 or l.activation != "relu"):
      raise TheoryError(f"{l.name}: the sampler needs ReLU convs without "
                        "groups")
  return mean_at - 1


def _sampler_plan(spec: NetSpec, height: int, width: int) -> list[tuple]:
  """Per layer ``(index, layer, in_hw, out_hw, gram, taps)``: ``gram`` where
  the sampler draws a conv from its Gram matrix (fan-in > output pixels),
  with :func:`theory_checks.routes.tap_indices` as ``taps``."""
  enc, dec = spec.shapes(height, width)
  sizes = [(height, width)] + [(s.height, s.width) for s in enc + dec]
  plan = []
  for i, layer in enumerate(spec.layers):
    in_hw, out_hw = sizes[i], sizes[i + 1]
    if isinstance(layer, Conv):
      gram = layer.fan_in > out_hw[0] * out_hw[1]
      idx = tap_indices(layer, in_hw, out_hw) if gram else None
      plan.append((i, layer, in_hw, out_hw, gram, idx))
    else:
      plan.append((i, layer, in_hw, out_hw, False, None))
  return plan


def _layer_key_fn(prng: str):
  """``layer_key(key, i)``: the key of layer i under ``prng`` (``rbg``,
  ``threefry`` or ``auto``; see :func:`sampler_fn`)."""
  import jax
  import jax.numpy as jnp
  if prng == "auto":
    # By the backend's one-process strategy, so that a job of several
    # processes draws the same nets as one process on the same backend.
    from randconv.engine import KEY_STRATEGY
    prng = "rbg" if KEY_STRATEGY.get(jax.default_backend(),
                                      "loop") == "loop" else "threefry"

  def layer_key(key, i):
    if prng == "threefry":
      return jax.random.fold_in(key, i)
    # The rbg state (128 bits) from two threefry-derived words per layer.
    a = jax.random.fold_in(key, 2 * i)
    b = jax.random.fold_in(key, 2 * i + 1)
    return jax.random.wrap_key_data(jnp.concatenate([a, b]), impl="rbg")

  return layer_key


def _gram_draw(x, k, idx, n: int, out_hw):
  """Pre-activations [H', W', n] of a conv with N(0, 1) weights on the
  maps ``x`` [H, W, C], drawn from their Gram matrix: z = L g with
  S = L L^T, S summed over the taps ``idx`` (module docstring)."""
  import jax
  import jax.numpy as jnp
  from jax import lax
  flat = x.reshape(-1, x.shape[-1])
  kx = jnp.dot(flat, flat.T, precision=lax.Precision.HIGHEST)
  kx = jnp.pad(kx, ((0, 1), (0, 1)))  # the padding row reads zeros
  s = jnp.sum(kx[idx[:, :, None], idx[:, None, :]], axis=0)
  # S is positive semi-definite; the jitter (1e-4 of its mean diagonal)
  # keeps float32 Cholesky from failing on round-off and moves the
  # energies by 1e-4 relative: angles of 1e-5 rad.
  jitter = JITTER * jnp.mean(jnp.diag(s)) + jnp.finfo(s.dtype).tiny
  root = jnp.linalg.cholesky(s + jitter * jnp.eye(s.shape[0]))
  g = jax.random.normal(k, (root.shape[1], n))
  z = jnp.dot(root, g, precision=lax.Precision.HIGHEST)
  return z.reshape(out_hw[0], out_hw[1], n)


def _conv_draw(x, k, layer: Conv, out_hw):
  """Pre-activations of ``layer`` on ``x`` [H, W, C] with drawn N(0, 1)
  weights."""
  import jax

  from randconv import ops
  w = jax.random.normal(k, layer.weight_shape)
  if layer.transpose:
    return ops.conv_transpose2d(x[None], w, layer.stride, layer.padding,
                                out_hw)[0]
  return ops.conv2d(x[None], w, layer.stride, layer.padding)[0]


def _resample(x, layer, out_hw):
  """A pool, unpool or crop on one image's maps ``x`` [H, W, C]."""
  from randconv import ops
  if isinstance(layer, Pool):
    return ops.pool2d(x[None], layer.pooling, layer.window, layer.stride,
                      layer.ceil_mode)[0]
  if isinstance(layer, Unpool):
    return ops.unpool2d(x[None], layer.stride, out_hw)[0]
  if isinstance(layer, Crop):
    return x[:out_hw[0], :out_hw[1]]
  return x


def sampler_fn(spec: NetSpec, height: int, width: int, *,
               every_depth: bool = False, prng: str = "auto"):
  """``fn(key, images [B, H, W, C]) -> [B, H, W]``: one exact draw of the
  Section 5 network's output per image (sigma = 1).

  With ``every_depth`` (for a stack of stride-1 "same" convs, check T4) it
  returns [B, L, H, W]: entry l is the channel mean of conv l's ReLU maps,
  which is the output of the depth-(l + 2) network made of the first l + 1
  convs. The depths share their lower layers' draws (nested networks), so
  comparisons across depths are paired.

  ``prng``: ``rbg`` (XLA's RngBitGenerator: compiles in a fraction of
  threefry's time, and one compile per width is much of a CPU sweep's cost;
  but its draws change under ``jax.vmap`` over keys), ``threefry`` (exact
  under vmap) or ``auto``: rbg where seeds run in a loop (CPU), threefry
  where they are vmapped.
  """
  import jax
  import jax.numpy as jnp

  out_conv = _check(spec)
  plan = _sampler_plan(spec, height, width)
  layer_key = _layer_key_fn(prng)

  def one(key, x):  # x: [H, W, C]
    means = []
    for i, layer, in_hw, out_hw, gram, idx in plan:
      if not isinstance(layer, Conv):
        x = _resample(x, layer, out_hw)
        continue
      k = layer_key(key, i)
      n = layer.out_channels
      z = _gram_draw(x, k, idx, n, out_hw) if gram else \
          _conv_draw(x, k, layer, out_hw)
      a = jax.nn.relu(z)
      if every_depth:
        means.append(jnp.mean(a, axis=-1))
      if i == out_conv:
        x = jnp.mean(a, axis=-1, keepdims=True)
      else:
        x = a / math.sqrt(n)
    if every_depth:
      return jnp.stack(means)
    return x[..., 0]

  def fn(key, images):
    return jax.vmap(one, in_axes=(None, 0))(key, images)

  return fn


def library_fn(spec: NetSpec):
  """``fn(key, images) -> [B, H, W]``: the library's network, N(0, 1)
  weights, rescaled (the right direction, not the Section 5 scale)."""
  from randconv import engine
  _check(spec)
  net = engine.net_fn(spec, "gaussian:1.0", rescale=True, policy="direct")
  return lambda key, images: net(key, images)[..., 0]


def draw(fn, images: np.ndarray, n_seeds: int, *, seed: int = 0,
         start: int = 0, progress: bool | str = False,
         spec: NetSpec | None = None, strategy: str = "auto") -> np.ndarray:
  """[S, B, H, W] outputs of nets ``start..start+n_seeds-1``.

  ``strategy`` is :func:`randconv.engine.run_keys`'s (``auto``: a loop on
  CPU, vmap on GPU); with ``spec`` the seeds are chunked to the memory
  budget of :func:`randconv.engine.plan_chunks`.
  """
  from randconv import engine
  keys = engine.seed_keys(seed, n_seeds, start=start)
  if strategy == "auto":
    strategy = engine.default_strategy()
  plan = None
  if spec is not None and strategy in ("vmap", "map"):
    plan = engine.plan_chunks(spec, n_seeds, images.shape[0],
                              images.shape[1], images.shape[2], strategy)
  return engine.run_keys(fn, keys, images, strategy=strategy, plan=plan,
                         progress=progress)


def angles_to(outputs: np.ndarray, limits: np.ndarray) -> np.ndarray:
  """Angles [S, B] between outputs [S, B, H, W] and limits [B, H, W]."""
  return angle(outputs, limits[None], axis=(-2, -1))


# --------------------------------------------------------------------------
# Since 2026-12-01 a library net's weights are its Flax module's init
# (randconv.engine.draw); before, they were drawn layer by layer from
# fold_in(key, layer index).
WEIGHTS = "flax-init"


class OutOfTime(RandconvError):
  """The deadline came before a check finished: its folder keeps every
  finished width, and the same command resumes it."""


def open_log(workdir: Path, config: dict,
             deadline: Deadline = NO_DEADLINE) -> RunDir:
  """A check's run folder (``config.json`` + ``metrics.jsonl``): one record
  per finished unit of work, so a rerun resumes where it stopped."""
  # How library nets draw their weights (a change invalidates old records).
  return RunDir(workdir, {**config, "weights": WEIGHTS}, deadline=deadline)


def read_norm_ratio(path: Path, tag: str, width: int):
  """||y|| / ||y_hat|| [S, B] of one width from a metrics file, or None
  (process 0's file, with many processes)."""
  found = distributed.from_main(lambda: [
      r["norm_ratio"] for r in read_jsonl(path)
      if r.get("tag") == tag and r.get("width") == width][:1])
  return np.asarray(found[0]) if found else None


def check_time(log: RunDir, what: str) -> None:
  """Raises :class:`OutOfTime` when the log's deadline has passed."""
  if log.out_of_time():
    raise OutOfTime(f"stopped by the time budget before {what}; run the "
                    "same command again to resume")


def width_sweep(log: RunDir, make_fn, limits: np.ndarray, images: np.ndarray,
                widths: list[int], seeds_for, *, tag: str = "",
                seed: int = 0, samples_dir: Path | None = None,
                keep_samples=(), spec_for=None) -> dict[int, np.ndarray]:
  """Angles [S, B, ...] to ``limits`` at each width, resuming from ``log``.

  ``make_fn(width)`` gives the engine; ``seeds_for(width)`` the number of
  nets at that width. For widths in ``keep_samples`` the first net's outputs
  go to ``samples_dir/<tag>_N<width>.npy`` (for figures).
  """
  from randconv import progress
  result = {}
  for n in progress.iterate(widths, f"widths {tag}".strip(), "width"):
    rec = log.find(tag=tag, width=n)
    if rec is None:
      check_time(log, f"width {n} {tag}".rstrip())
      start = time.time()
      out = draw(make_fn(n), images, seeds_for(n), seed=seed,
                 progress=f"{tag} N={n}",
                 spec=spec_for(n) if spec_for else None)
      if not np.all(np.isfinite(out)):
        raise FloatingPointError(f"non-finite outputs at width {n}")
      a = angles_to(out, limits)
      ratio = np.linalg.norm(out, axis=(-2, -1)) / np.linalg.norm(
          limits, axis=(-2, -1))[None]
      if samples_dir is not None and n in keep_samples and \
          distributed.is_main():
        Path(samples_dir).mkdir(parents=True, exist_ok=True)
        np.save(Path(samples_dir) / f"{tag}_N{n}.npy",
                out[0].astype(np.float32))
      rec = log.append({"tag": tag, "width": n, "angles": a.tolist(),
                     "norm_ratio": ratio.tolist(),
                     "seconds": round(time.time() - start, 2)})
    result[n] = np.asarray(rec["angles"])
  return result


def load_samples(samples_dir: Path, tag: str, widths) -> dict[int, np.ndarray]:
  """The kept outputs of each width (process 0 only: the others draw no
  figure)."""
  out = {}
  if not distributed.is_main():
    return out
  for n in widths:
    f = Path(samples_dir) / f"{tag}_N{n}.npy"
    if f.exists():
      out[n] = np.load(f)
  return out
