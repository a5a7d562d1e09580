"""The infinite-width law of a random CNN-DCN with max pooling (check T7).

Section 5 of the paper gives the limit of the *channel-mean* network with L2
pooling (Theorem 5.1) and average pooling (Theorem A.7). The experiments of
Section 4 (Figs. 8-9) use *max* pooling and, in panel (a), a random *conv*
output layer. The library's kernel recursion (:mod:`randconv.kernels`: a
conv sums the kernel over its taps, ReLU is the arc-cosine map, a max pool
is sampled jointly, an average pool is exact) gives the law of both
(README.md beside this file, "T7"):

* a **conv output** (no activation) given the last hidden layer is exactly
  Gaussian with covariance ``sigma^2 sum_n sum_t d_n(p + t) d_n(p' + t)``,
  which over N converges to ``S_out``: the output converges in distribution
  to the Gaussian process GP(0, S_out), not to an image;
* a **channel-mean output** converges to the image ``c1 sqrt(S(p, p))`` of
  its last pre-activation kernel.

This module turns that law into T7's predictions for one image: the
:class:`Law`, GP draws and the distribution of their SSIM and |r|. The
full kernels are [HW, HW] float64 matrices, so :func:`full_law` works up to
``RANDCONV_GP_MAX_PIXELS`` pixels (64x64 by default). The channel-mean
limit needs only a band of the kernel and runs at any size through
:func:`theory_checks.limits.covariance_limit`, which samples the max pool
window by window (:func:`randconv.kernels.window_pool_diag`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from randconv import kernels
from randconv.kernels import POOL_SAMPLES, WINDOW_SAMPLES  # noqa: F401
from randconv.spec import ChannelMean, Conv, NetSpec, Pool
from theory_checks.limits import TheoryError

WRONG = ("avg_for_max", "no_relu")  # deliberately wrong kernels (controls)


@dataclass
class Law:
  """The infinite-width law of a network's output for one input image.

  ``kernel`` [HW, HW]: the covariance of each output channel (conv output;
  the grey output has the same kernel up to a positive factor).
  ``limit`` [H, W]: the limit image (channel-mean output).
  ``pool_rel_se``: per sampled pool, the relative standard error of its
  kernel estimate (Frobenius norm of the entries' errors over the norm).
  """

  hw: tuple[int, int]
  output: str
  kernel: np.ndarray | None = None
  limit: np.ndarray | None = None
  pool_rel_se: list[float] = field(default_factory=list)


def law_steps(spec: NetSpec, height: int, width: int):
  """``[(layer, in_hw, out_hw)]`` of a network the law covers: the
  library's kernels (:func:`randconv.kernels.steps`) where every run of
  pools follows a ReLU conv (T7's and Fig. 7's networks).

  Raises:
    TheoryError: a layer the law does not cover.
  """
  steps = kernels.steps(spec, height, width)
  last = None
  for layer, _, _ in steps:
    if isinstance(layer, Pool) and not isinstance(last, Pool) and not (
        isinstance(last, Conv) and last.activation == "relu"):
      raise TheoryError(f"{layer.name}: a pool must follow a ReLU conv "
                        "(or pools right after one)")
    last = layer
  return steps


def _output_kind(spec: NetSpec) -> str:
  return "mean" if any(isinstance(l, ChannelMean) for l in spec.layers) \
      else "conv"


def wrong_spec(spec: NetSpec, wrong: str) -> NetSpec:
  """A deliberately wrong network for the controls: ``avg_for_max``
  (average pools in place of max pools, their exact map) or ``no_relu``
  (no ReLU where no pool follows; a pool still sees ReLU maps)."""
  if wrong not in WRONG:
    raise TheoryError(f"unknown wrong kernel {wrong!r}; choose {WRONG}")
  layers = spec.layers

  def change(i, l):
    nxt = layers[i + 1] if i + 1 < len(layers) else None
    if wrong == "avg_for_max" and isinstance(l, Pool) and l.pooling == "max":
      return dataclasses.replace(l, pooling="avg")
    if (wrong == "no_relu" and isinstance(l, Conv) and l.activation
        and not isinstance(nxt, (Pool, ChannelMean))):
      return dataclasses.replace(l, activation=None)
    return l

  return spec.map_layers(change)


def full_law(spec: NetSpec, x: np.ndarray, *, samples: int = POOL_SAMPLES,
             seed: int = 0, wrong: str | None = None,
             sample_avg: bool = False) -> Law:
  """The infinite-width law of ``spec``'s output for one image ``x``
  [H, W, C], by the library's full-kernel recursion
  (:func:`randconv.kernels.walk`).

  Args:
    spec: a CNN-DCN with ReLU convs, max/L2/avg pools, unpools and a conv
      or channel-mean output (:func:`law_steps`).
    x: the input as the network sees it.
    samples: joint samples per sampled pool.
    seed: the pools' sampling seed (pool i uses ``seed + i``).
    wrong: a deliberately wrong recursion, for controls
      (:func:`wrong_spec`).
    sample_avg: sample average pools too (tests the sampler against the
      exact map).

  Raises:
    TheoryError: a map over the full-kernel cap (the message gives the
      memory it would need), or a layer :func:`law_steps` refuses.
  """
  x = np.asarray(x, np.float64)
  if x.ndim == 2:
    x = x[..., None]
  h, w, _ = x.shape
  law_steps(spec, h, w)
  if wrong is not None:
    spec = wrong_spec(spec, wrong)
  kernels.check_size(1, spec, h, w)
  res = kernels.walk(spec, x[None], samples=samples, key=seed,
                     sample_avg=sample_avg)
  return _law(spec, res, (h, w))


def _law(spec: NetSpec, res: kernels.Walk, hw) -> Law:
  """One image's :class:`Law` from a :class:`randconv.kernels.Walk`."""
  law = Law(tuple(hw), _output_kind(spec), pool_rel_se=res.pool_rel_se)
  if res.limit is not None:
    law.limit = res.limit[0]
  else:
    p = res.hw[0] * res.hw[1]
    law.kernel = res.kernel.reshape(p, p)
  return law


def output_kernel(spec: NetSpec, hidden: np.ndarray,
                  hw: tuple[int, int]) -> np.ndarray:
  """The conv output's covariance given its input's kernel ``hidden``
  [HW', HW'] (e.g. the empirical ``sum_n d_n(p) d_n(p')`` of a finite net's
  last hidden layer): the output conv's map and the crop."""
  steps = law_steps(spec, *hw)
  at = max(i for i, (l, _, _) in enumerate(steps) if isinstance(l, Conv))
  if steps[at][0].activation is not None:
    raise TheoryError("output_kernel needs a conv-output network")
  h_in, w_in = steps[at][1]
  start = np.asarray(hidden, np.float64).reshape(1, h_in, w_in, 1, h_in, w_in)
  res = kernels.walk(spec, np.zeros((1,) + tuple(hw) + (spec.in_channels,)),
                     start=start, from_layer=at)
  return _law(spec, res, hw).kernel


# --------------------------------------------------------------------------
# The conv output's law: samples and the metrics' distribution.

def gp_samples(kernel: np.ndarray, hw: tuple[int, int], n: int, *,
               seed: int = 0) -> np.ndarray:
  """``n`` draws of GP(0, kernel) as [n, H, W] float32 images."""
  root = kernels.psd_root(kernel)
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


__all__ = ["Law", "full_law", "output_kernel", "law_steps", "wrong_spec",
           "gp_samples", "metric_samples", "predict_conv", "summarise",
           "best_scale_error", "WRONG"]
