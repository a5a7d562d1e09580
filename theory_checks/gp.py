"""The infinite-width law of a random CNN-DCN with max pooling (check T7).

Section 5 of the paper gives the limit of the *channel-mean* network with L2
pooling (Theorem 5.1) and average pooling (Theorem A.7). The experiments of
Section 4 (Figs. 8-10) use *max* pooling and, in panel (a), a random *conv*
output layer. This module gives the limit of both, by the kernel recursion
of the Gaussian-process view of wide networks (README.md beside this file,
"T7"):

* every hidden layer's maps, channel-averaged, have a deterministic kernel
  ``k(p, p') = lim (1/N) sum_n f_n(p) f_n(p')`` in the limit;
* a conv maps it to the pre-activation kernel ``S(p, p') = sum_t k(p + t,
  p' + t)`` (same tap t for both: different taps have independent weights);
  given the layer below, each channel's pre-activation is Gaussian GP(0, S);
* ReLU maps S to the arc-cosine kernel (:func:`limits.arccos_relu`);
* a pool of ReLU maps has no closed form for max (or L2) pooling: the
  kernel after it is ``E[pool(relu(z)) pool(relu(z))^T]`` for z ~ N(0, S),
  estimated here from samples of z (:func:`sampled_pool_kernel`), with its
  standard error; average pooling is exact (``P k P^T``);
* an unpool re-indexes with zeros, a crop slices;
* a **conv output** (no activation) given the last hidden layer is exactly
  Gaussian with covariance ``sigma^2 sum_n sum_t d_n(p + t) d_n(p' + t)``,
  which over N converges to ``S_out``: the output converges in distribution
  to the Gaussian process GP(0, S_out), not to an image;
* a **channel-mean output** converges to the image ``c1 sqrt(S(p, p))`` of
  its last pre-activation kernel.

The full kernels are [HW, HW] float64 matrices, so :func:`full_law` works up
to :data:`MAX_FULL_PIXELS` pixels (64x64 by default). The channel-mean limit
needs only a band of the kernel and runs at any size through
:func:`theory_checks.limits.covariance_limit`, which samples the max pool
window by window (:func:`window_pool_diag`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from randconv.spec import ChannelMean, Conv, Crop, LRN, NetSpec, Pool, Unpool
from randconv import settings
from theory_checks.limits import C1, TheoryError, arccos_relu
from theory_checks.routes import placement, pool_matrix, tap_indices

# The full kernels are [HW, HW] float64: 4096 pixels is 128 MiB a matrix and
# the recursion holds about four. RANDCONV_GP_MAX_PIXELS raises the cap on a
# machine with more memory (51,529 pixels at 227x227 is 21 GB a matrix).
MAX_FULL_PIXELS = settings.current().gp_max_pixels
POOL_SAMPLES = 1 << 16    # joint samples of a whole pre-pool map
WINDOW_SAMPLES = 1 << 16  # samples of each pool window (diagonal only)
CHUNK = 1024              # samples per batch (the standard error's unit)
WRONG = ("avg_for_max", "no_relu")  # deliberately wrong kernels (controls)


@dataclass
class Law:
  """The infinite-width law of a network's output for one input image.

  ``kernel`` [HW, HW]: the covariance of each output channel (conv output;
  the grey output has the same kernel up to a positive factor).
  ``limit`` [H, W]: the limit image (channel-mean output).
  ``hidden`` [HW', HW']: the kernel of the last hidden layer's maps.
  ``pool_rel_se``: per sampled pool, the relative standard error of its
  kernel estimate (Frobenius norm of the entries' errors over the norm).
  """

  hw: tuple[int, int]
  output: str
  kernel: np.ndarray | None = None
  limit: np.ndarray | None = None
  hidden: np.ndarray | None = None
  pool_rel_se: list[float] = field(default_factory=list)


def law_steps(spec: NetSpec, height: int, width: int):
  """``[(layer, in_hw, out_hw)]`` of a network the recursion covers.

  Raises:
    TheoryError: LRN, grouped convs, an activation other than ReLU, a pool
      that does not follow a ReLU conv, or no output the law covers.
  """
  enc, dec = spec.shapes(height, width)
  steps, prev, last = [], (height, width), None
  for layer, s in zip(spec.layers, enc + dec):
    out = (s.height, s.width)
    if isinstance(layer, LRN):
      raise TheoryError(f"{layer.name}: LRN is not covered (not homogeneous)")
    if isinstance(layer, Conv):
      if layer.groups != 1:
        raise TheoryError(f"{layer.name}: grouped convs are not covered")
      if layer.activation not in ("relu", None):
        raise TheoryError(f"{layer.name}: the law needs ReLU, not "
                          f"{layer.activation}")
    if isinstance(layer, Pool) and not (isinstance(last, Conv)
                                        and last.activation == "relu"):
      raise TheoryError(f"{layer.name}: a pool must follow a ReLU conv")
    if isinstance(layer, ChannelMean) and not (
        isinstance(last, Conv) and last.activation == "relu"):
      raise TheoryError("the channel mean must average a ReLU conv's maps")
    steps.append((layer, prev, out))
    prev, last = out, layer
  return steps


def _output_kind(spec: NetSpec) -> str:
  return "mean" if any(isinstance(l, ChannelMean) for l in spec.layers) \
      else "conv"


# --------------------------------------------------------------------------
# The layers' maps of a full kernel [HW, HW].

def conv_kernel(k: np.ndarray, layer: Conv, in_hw, out_hw) -> np.ndarray:
  """``S(o, o') = sum_t k(i_t(o), i_t(o'))`` (zero where a tap reads
  padding): the pre-activation kernel of a conv whose input has kernel k."""
  if layer.stride == 1:
    # One 4-D slice per tap: S = sum_t kp[o + t, o' + t] on [H, W, H, W].
    off = layer.kernel - 1 - layer.padding if layer.transpose \
        else layer.padding
    (hi, wi), (ho, wo) = in_hw, out_hw
    pad_y = (off, max(0, ho + layer.kernel - 1 - off - hi))
    pad_x = (off, max(0, wo + layer.kernel - 1 - off - wi))
    kp = np.pad(k.reshape(hi, wi, hi, wi), (pad_y, pad_x, pad_y, pad_x))
    s = np.zeros((ho, wo, ho, wo))
    for ty in range(layer.kernel):
      for tx in range(layer.kernel):
        s += kp[ty:ty + ho, tx:tx + wo, ty:ty + ho, tx:tx + wo]
    return s.reshape(ho * wo, ho * wo)
  idx = tap_indices(layer, in_hw, out_hw)  # stride > 1: gather per tap
  kp = np.pad(k, ((0, 1), (0, 1)))
  return sum(kp[i[:, None], i[None, :]] for i in idx)


def relu_kernel(s: np.ndarray) -> np.ndarray:
  """The arc-cosine map of a full kernel (:func:`limits.arccos_relu`), in
  float64 XLA: six times numpy's speed on a 4096^2 kernel here."""
  import jax
  with jax.enable_x64(True):
    return np.asarray(_relu_kernel_x64()(s))


@functools.cache
def _relu_kernel_x64():
  import jax
  import jax.numpy as jnp

  @jax.jit
  def f(s):
    d = jnp.diag(s)
    norm = jnp.sqrt(d[:, None] * d[None, :])
    c = jnp.clip(s / jnp.where(norm > 0, norm, 1.0), -1.0, 1.0)
    k = norm * (jnp.sqrt(1.0 - c * c) + (jnp.pi - jnp.arccos(c)) * c)
    return jnp.where(norm > 0, k / (2 * jnp.pi), 0.0)

  return f


def _root(s: np.ndarray) -> np.ndarray:
  """A square root R with ``R R^T = s`` (s positive semi-definite): Cholesky
  with a jitter of 1e-10 of the mean diagonal, raised until it succeeds."""
  scale = float(np.mean(np.diag(s))) or 1.0
  for jitter in (1e-10, 1e-8, 1e-6):
    try:
      return np.linalg.cholesky(s + jitter * scale * np.eye(len(s)))
    except np.linalg.LinAlgError:
      continue
  w, v = np.linalg.eigh(s)
  return v * np.sqrt(np.clip(w, 0, None))


def sampled_pool_kernel(pre: np.ndarray, layer: Pool, in_hw, out_hw, *,
                        samples: int = POOL_SAMPLES, seed: int = 0,
                        chunk: int = CHUNK) -> tuple[np.ndarray, float]:
  """``E[pool(relu(z)) pool(relu(z))^T]`` for z ~ N(0, pre) on the map.

  The pool is the library's own op (:func:`randconv.ops.pool2d`), so ceil
  mode and the window match the network. Samples are drawn in float32
  batches of ``chunk``; the batch means give the standard error.

  Returns:
    (the kernel [HW_out, HW_out] float64, its relative standard error).
  """
  import jax
  import jax.numpy as jnp
  root = jnp.asarray(_root(pre), jnp.float32)
  p_out = out_hw[0] * out_hw[1]
  pool = (layer.pooling, layer.window, layer.stride, layer.ceil_mode)
  key = jax.random.PRNGKey(seed)
  n = max(2, -(-samples // chunk))
  total = np.zeros((p_out, p_out))
  sq = np.zeros((p_out, p_out))
  for i in range(n):
    est = np.asarray(_pool_batch()(root, jax.random.fold_in(key, i),
                                   chunk=chunk, hw=tuple(in_hw), pool=pool),
                     np.float64)
    total += est
    sq += est * est
  mean = total / n
  var = np.clip(sq / n - mean * mean, 0, None) * n / (n - 1)
  rel_se = math.sqrt(float(np.sum(var)) / n) / float(np.linalg.norm(mean))
  return mean, rel_se


@functools.cache
def _pool_batch():
  """One batch's kernel estimate, compiled once per shape (the root is an
  argument, not a constant baked into the program)."""
  import jax
  import jax.numpy as jnp

  from randconv import ops

  def batch(root, key, *, chunk, hw, pool):
    z = jnp.dot(root, jax.random.normal(key, (root.shape[1], chunk)),
                precision=jax.lax.Precision.HIGHEST)
    a = jax.nn.relu(z).T.reshape(chunk, hw[0], hw[1], 1)
    v = ops.pool2d(a, *pool).reshape(chunk, -1)
    return jnp.dot(v.T, v, precision=jax.lax.Precision.HIGHEST) / chunk

  return jax.jit(batch, static_argnames=("chunk", "hw", "pool"))


def pool_kernel(k: np.ndarray, pre: np.ndarray, layer: Pool, in_hw, out_hw,
                *, samples: int, seed: int, wrong: str | None = None,
                sample_avg: bool = False) -> tuple[np.ndarray, float | None]:
  """The kernel after a pool: exact for average pooling (``P k P^T``),
  sampled for max and L2 (and for average with ``sample_avg``)."""
  if (layer.pooling == "avg" and not sample_avg) or wrong == "avg_for_max":
    p = pool_matrix(layer, in_hw, out_hw, mean=True)
    return np.asarray(p @ (p @ k).T), None
  return sampled_pool_kernel(pre, layer, in_hw, out_hw, samples=samples,
                             seed=seed)


def full_law(spec: NetSpec, x: np.ndarray, *, samples: int = POOL_SAMPLES,
             seed: int = 0, wrong: str | None = None,
             sample_avg: bool = False) -> Law:
  """The infinite-width law of ``spec``'s output for one image ``x``
  [H, W, C], by the full-kernel recursion (module docstring).

  Args:
    spec: a CNN-DCN with ReLU convs, max/L2/avg pools, unpools and a conv
      or channel-mean output (:func:`law_steps`).
    x: the input as the network sees it.
    samples: joint samples per sampled pool.
    seed: the pools' sampling seed (pool i uses ``seed + i``).
    wrong: a deliberately wrong recursion, for controls: ``avg_for_max``
      (average pooling's exact map in place of the max pool) or
      ``no_relu`` (the ReLU's arc-cosine map dropped where no pool follows;
      a sampled pool still applies its ReLU).
    sample_avg: sample average pools too (tests the sampler against the
      exact map).

  Raises:
    TheoryError: a map over :data:`MAX_FULL_PIXELS` pixels (the message
      gives the memory it would need), or a layer :func:`law_steps` refuses.
  """
  if wrong is not None and wrong not in WRONG:
    raise TheoryError(f"unknown wrong kernel {wrong!r}; choose {WRONG}")
  x = np.asarray(x, np.float64)
  if x.ndim == 2:
    x = x[..., None]
  h, w, c = x.shape
  steps = law_steps(spec, h, w)
  biggest = max([h * w] + [o[0] * o[1] for _, _, o in steps])
  if biggest > MAX_FULL_PIXELS:
    gb = biggest ** 2 * 8 / 1e9
    raise TheoryError(
        f"the full kernel of a {biggest}-pixel map is {gb:.1f} GB of float64 "
        f"(about 4 of them at once); the limit is {MAX_FULL_PIXELS} pixels "
        "(RANDCONV_GP_MAX_PIXELS raises it on a larger machine)")
  law = Law((h, w), _output_kind(spec))
  flat = x.reshape(h * w, c)
  return _walk(steps, flat @ flat.T, law, samples=samples, seed=seed,
               wrong=wrong, sample_avg=sample_avg)


def output_kernel(spec: NetSpec, hidden: np.ndarray,
                  hw: tuple[int, int]) -> np.ndarray:
  """The conv output's covariance given its input's kernel ``hidden``
  [HW', HW'] (e.g. the empirical ``sum_n d_n(p) d_n(p')`` of a finite net's
  last hidden layer): the output conv's map and the crop."""
  steps = law_steps(spec, *hw)
  at = max(i for i, (l, _, _) in enumerate(steps) if isinstance(l, Conv))
  if steps[at][0].activation is not None:
    raise TheoryError("output_kernel needs a conv-output network")
  law = _walk(steps[at:], np.asarray(hidden, np.float64), Law(hw, "conv"))
  return law.kernel


def _walk(steps, k, law: Law, *, samples: int = POOL_SAMPLES, seed: int = 0,
          wrong: str | None = None, sample_avg: bool = False) -> Law:
  """Runs the recursion over ``steps`` from the kernel ``k`` of their
  input, filling ``law``."""
  pre = None
  for i, (layer, in_hw, out_hw) in enumerate(steps):
    nxt = steps[i + 1][0] if i + 1 < len(steps) else None
    if isinstance(layer, Conv):
      law.hidden = k
      s = conv_kernel(k, layer, in_hw, out_hw)
      if layer.activation is None:
        k = law.kernel = s
      elif isinstance(nxt, ChannelMean):
        k = law.limit = C1 * np.sqrt(np.clip(np.diag(s), 0, None))
      else:
        pre, k = s, (s if wrong == "no_relu" else relu_kernel(s))
    elif isinstance(layer, Pool):
      k, se = pool_kernel(k, pre, layer, in_hw, out_hw, samples=samples,
                          seed=seed + i, wrong=wrong, sample_avg=sample_avg)
      if se is not None:
        law.pool_rel_se.append(se)
    elif isinstance(layer, (Unpool, Crop)):
      stride = layer.stride if isinstance(layer, Unpool) else 1
      u = placement(in_hw, out_hw, stride)
      if law.limit is not None:
        k = law.limit = np.asarray(u @ law.limit.ravel())
      else:
        k = np.asarray(u @ (u @ k).T)
        if law.kernel is not None:
          law.kernel = k
  if law.limit is not None:
    law.limit = law.limit.reshape(law.hw)
  return law


# --------------------------------------------------------------------------
# The max pool of the banded recursion: its diagonal, window by window.

def window_pool_diag(pre_band: np.ndarray, layer: Pool, out_hw, *,
                     samples: int = WINDOW_SAMPLES, seed: int = 0,
                     chunk: int = 4096) -> tuple[np.ndarray, float]:
  """``E[pool(relu(z))(a)^2]`` per pool window a, z ~ N(0, S) on the map.

  Only the window's own cells enter, so this needs the banded pre-activation
  kernel ``pre_band[i, j, dy, dx] = S((i, j), (i + dy, j + dx))`` with
  offsets up to ``window - 1`` (what :func:`limits.required_offsets` keeps
  before a pool). Cells of a ceil-mode window past the edge are absent; a
  ReLU output is at least 0, so a zero stands in for them. Each batch uses
  the draws g and -g (antithetic pairs, unbiased, less variance).

  Returns:
    (the diagonal [H', W'], its relative standard error over the map).
  """
  h, w, by, bx = pre_band.shape
  cy, cx = (by - 1) // 2, (bx - 1) // 2
  win, st = layer.window, layer.stride
  if cy < win - 1 or cx < win - 1:
    raise TheoryError(f"{layer.name}: the band must reach offset {win - 1}")
  ho, wo = out_hw
  cells = [(u, v) for u in range(win) for v in range(win)]
  a_y = np.arange(ho)[:, None] * st
  a_x = np.arange(wo)[None, :] * st
  m = len(cells)
  cov = np.zeros((ho, wo, m, m))
  inside = np.zeros((ho, wo, m), bool)
  for i, (u1, v1) in enumerate(cells):
    y1, x1 = a_y + u1, a_x + v1
    ok1 = (y1 < h) & (x1 < w)
    inside[..., i] = ok1
    for j, (u2, v2) in enumerate(cells):
      ok = ok1 & (a_y + u2 < h) & (a_x + v2 < w)
      val = pre_band[np.minimum(y1, h - 1), np.minimum(x1, w - 1),
                     cy + u2 - u1, cx + v2 - v1]
      cov[..., i, j] = np.where(ok, val, 0.0)
  diag = np.diagonal(cov, axis1=-2, axis2=-1)
  scale = max(float(diag[inside].mean()), 1e-300)
  absent = ~inside[..., None, :] & ~inside[..., :, None]
  cov = (cov + scale * np.eye(m) * absent) / scale  # absent: unit, masked
  root = np.linalg.cholesky(cov + 1e-10 * np.eye(m))
  # A batch holds [H', W', m, chunk] float32 draws: at most 2^24 of them.
  chunk = max(256, min(chunk, (1 << 24) // (ho * wo * m)))
  n = max(2, -(-samples // (2 * chunk)))
  est = np.stack([np.asarray(b, np.float64) for b in _window_batches(
      root.astype(np.float32), inside, layer.pooling, chunk, n, seed)])
  est *= scale
  mean = est.mean(0)
  se = est.std(0, ddof=1) / math.sqrt(len(est))
  return mean, float(np.linalg.norm(se) / np.linalg.norm(mean))


def _window_batches(root, inside, pooling: str, chunk: int, n: int,
                    seed: int):
  """``n`` batch estimates [H', W'] of E[pool(relu(z))^2], each over
  ``chunk`` antithetic pairs (z = root g and -root g)."""
  import jax
  import jax.numpy as jnp
  inside = jnp.asarray(inside, jnp.float32)[..., None]    # [H', W', m, 1]
  key = jax.random.PRNGKey(seed)
  return [_window_batch()(root, inside, jax.random.fold_in(key, i),
                          chunk=chunk, pooling=pooling) for i in range(n)]


@functools.cache
def _window_batch():
  import jax
  import jax.numpy as jnp

  def batch(root, inside, key, *, chunk, pooling):
    count = jnp.maximum(inside.sum(-2), 1.0)                # [H', W', 1]
    reduce = {"max": lambda a: a.max(-2),
              "avg": lambda a: a.sum(-2) / count,
              "l2": lambda a: jnp.sqrt((a * a).sum(-2))}[pooling]
    g = jax.random.normal(key, root.shape[:-1] + (chunk,))
    z = jnp.einsum("abij,abjc->abic", root, g,
                   precision=jax.lax.Precision.HIGHEST)
    sq = [reduce(jnp.maximum(sign * z, 0.0) * inside) ** 2
          for sign in (1.0, -1.0)]
    return 0.5 * (sq[0] + sq[1]).mean(-1)

  return jax.jit(batch, static_argnames=("chunk", "pooling"))


# --------------------------------------------------------------------------
# The conv output's law: samples and the metrics' distribution.

def gp_samples(kernel: np.ndarray, hw: tuple[int, int], n: int, *,
               seed: int = 0) -> np.ndarray:
  """``n`` draws of GP(0, kernel) as [n, H, W] float32 images."""
  root = _root(kernel)
  rng = np.random.default_rng(seed)
  g = rng.standard_normal((root.shape[1], n))
  return (root @ g).T.reshape(n, *hw).astype(np.float32)


def metric_samples(x: np.ndarray, outputs: np.ndarray) -> dict[str, np.ndarray]:
  """SSIM and |r| (the library's metrics) of grey outputs [n, H, W] against
  one input [H, W, C]: ``{"ssim": [n], "pearson_abs": [n]}``."""
  import jax.numpy as jnp
  out = _metrics()(jnp.asarray(x, jnp.float32),
                   jnp.asarray(outputs, jnp.float32))
  return {"ssim": np.asarray(out["ssim"], np.float64),
          "pearson_abs": np.abs(np.asarray(out["pearson"], np.float64))}


@functools.cache
def _metrics():
  import jax
  import jax.numpy as jnp

  from randconv import metrics

  def both(x, outputs):
    y = outputs[..., None]
    xb = jnp.broadcast_to(x, (outputs.shape[0],) + x.shape)
    return metrics.reconstruction_metrics(xb, y)

  return jax.jit(both)


def predict_conv(spec: NetSpec, x: np.ndarray, *, n: int = 500,
                 samples: int = POOL_SAMPLES, seed: int = 0,
                 wrong: str | None = None) -> dict:
  """The infinite-width distribution of SSIM and |r| of a conv-output net
  against its input ``x``: the metrics of ``n`` GP samples.

  Returns:
    ``{"ssim", "pearson_abs"}`` arrays [n], plus ``law`` (the :class:`Law`)
    and ``samples`` [n, H, W].
  """
  law = full_law(spec, x, samples=samples, seed=seed, wrong=wrong)
  if law.kernel is None:
    raise TheoryError("predict_conv needs a conv-output network")
  draws = gp_samples(law.kernel, law.hw, n, seed=seed + 1)
  return {**metric_samples(x, draws), "law": law, "samples": draws}


def summarise(values: np.ndarray) -> dict[str, float]:
  v = np.asarray(values, np.float64)
  return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1
          else 0.0, "se": float(v.std(ddof=1) / math.sqrt(v.size))
          if v.size > 1 else 0.0}


def best_scale_error(sigma: np.ndarray, k: np.ndarray) -> float:
  """``min_c ||c sigma - k||_F / ||k||_F``: the relative Frobenius error of
  an empirical kernel after its best positive scale (the library's RMS
  rescaling leaves the scale undetermined). Equals the sine of the angle
  between the two as vectors."""
  a = np.asarray(sigma, np.float64).ravel()
  b = np.asarray(k, np.float64).ravel()
  c = float(a @ b) / float(a @ a)
  return float(np.linalg.norm(c * a - b) / np.linalg.norm(b))


__all__ = ["Law", "full_law", "output_kernel", "law_steps", "conv_kernel",
           "relu_kernel",
           "sampled_pool_kernel", "window_pool_diag", "gp_samples",
           "metric_samples", "predict_conv", "summarise", "best_scale_error",
           "MAX_FULL_PIXELS", "WRONG"]
