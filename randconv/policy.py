"""Which algorithm runs each convolution: one :class:`ConvPolicy` per use.

Every rewrite here is exact (the same result up to float rounding); a
policy only decides where each one is used. The thresholds live here, each
with the reason for it; the timings behind them are in docs/performance.md
("The conv policy").

* **Small convs as one elementwise program**
  (:func:`randconv.fastconv.small_conv`): stride-1 ungrouped convs whose
  ``k * k * C_in * C_out`` is at most ``small_max_terms``, such as every conv
  of a width-4 net. XLA's CPU conv is several times slower than a fused sum
  of shifted products on so little arithmetic, and under ``jax.vmap`` over
  nets the sum stays elementwise (no grouped conv).
* **Winograd F(4x4, 3x3)** (:func:`randconv.fastconv.winograd_conv3x3`) for
  3x3 stride-1 ungrouped convs, where ``winograd`` lists ``(largest output
  pixels, fewest channels in and out)``. Winograd saves multiplications
  but pays for its input and output transforms and its tile buffers, so it
  wins only with enough channels; on a CPU the crossover is 64 channels on
  maps up to 32x32 and 512 channels on larger ones.
* **Thin convs as one matmul** (:func:`randconv.fastconv.thin_conv3x3`):
  3x3 convs with at most ``thin_max`` channels on one side and at least
  ``thin_min`` on the other, such as a VGG's first and last layers, which
  XLA's CPU conv runs far below its matmul speed. It has a custom VJP, so
  forward-mode derivatives (``jax.jvp``) do not pass through it: use
  :data:`DIRECT` there.
* **Winograd kernel gradient** (:func:`randconv.fastconv.weight_grad3x3`,
  training only): a direct forward and input gradient, the kernel gradient by
  Winograd, for convs with at least ``wgrad_min_channels`` channels on one
  side, more than ``thin_max`` on the other and an output of at least
  ``wgrad_min_hw`` square. XLA's CPU kernel-gradient conv is much slower
  than its forward; Winograd beats it wherever there are enough channels
  and pixels to amortise the transforms, and loses on very small maps.
* **Unpooling + the next conv on the pooled map**
  (:func:`randconv.fastconv.unpool_conv3x3`): 2x unpooling then a 3x3
  padding-1 conv computes 9 of the 36 taps per 2x2 block, so skipping the
  zeros saves work on any backend. ``phases`` (four small matmuls) for
  inference; ``matmul`` (one [4C, 4C] kernel) for training, whose backward
  pass runs faster that way, and for nets of at most 8 channels, where the
  one matmul beats four tiny ones.

:func:`ConvPolicy.for_backend` gives the default of a backend;
:func:`ConvPolicy.named` maps the CLI's names (``direct``, ``auto``,
``winograd``, ``wgrad``) to policies.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import jax

from randconv import fastconv
from randconv.fastconv import direct_conv

NAMES = ("direct", "auto", "winograd", "wgrad")
@dataclass(frozen=True)
class ConvPolicy:
  """Where each exact conv rewrite runs (module docstring).

  Attributes:
    small_max_terms: the elementwise path for stride-1 convs with
      ``k * k * C_in * C_out`` at most this; None never.
    winograd: Winograd forward for 3x3 stride-1 convs: ``(max_pixels,
      min_channels)`` pairs; a conv whose output has at most ``max_pixels``
      pixels and at least ``min_channels`` channels in and out qualifies by
      the first pair it fits. Empty: never.
    thin: the thin-matmul rewrite on or off.
    thin_max, thin_min: a conv is thin with <= ``thin_max`` channels on one
      side and >= ``thin_min`` on the other.
    winograd_grad: the Winograd kernel gradient on or off (training).
    wgrad_min_channels, wgrad_min_hw: where the Winograd kernel gradient
      runs (module docstring).
    unpool_conv: ``phases``, ``matmul`` or None (unpool, then the conv).
    unpool_matmul_max_channels: the ``matmul`` form where both channel
      counts are at most this, whatever ``unpool_conv`` says.
    name: a label for logs.
  """

  small_max_terms: int | None = None
  winograd: tuple[tuple[float, int], ...] = ()
  thin: bool = False
  thin_max: int = fastconv.THIN
  thin_min: int = 32
  winograd_grad: bool = False
  wgrad_min_channels: int = 32
  wgrad_min_hw: int = 12
  unpool_conv: str | None = None
  unpool_matmul_max_channels: int = 0
  name: str = "custom"

  def __post_init__(self):
    if self.unpool_conv not in (None, "phases", "matmul"):
      raise ValueError(f"unpool_conv must be phases, matmul or None, got "
                       f"{self.unpool_conv!r}")

  @staticmethod
  def named(name: str, backend: str | None = None) -> ConvPolicy:
    """``direct`` (XLA's conv everywhere: the reference), ``auto`` (the
    backend's inference default), ``winograd`` (Winograd for every 3x3
    stride-1 conv) or ``wgrad`` (the training rewrites)."""
    if isinstance(name, ConvPolicy):
      return name
    if name == "direct":
      return DIRECT
    if name == "auto":
      return ConvPolicy.for_backend(backend)
    if name == "winograd":
      return WINOGRAD
    if name == "wgrad":
      return TRAINING_CPU
    raise ValueError(f"unknown conv policy {name!r}; choose one of "
                     f"{', '.join(NAMES)}")

  @staticmethod
  def for_backend(backend: str | None = None,
                  training: bool = False) -> ConvPolicy:
    """The default (docs/performance.md has its timings): on a CPU the
    rewrites above; elsewhere XLA's own convs (cuDNN picks its algorithms)
    and the unpool+conv rewrite, which saves work on any backend."""
    backend = backend or jax.default_backend()
    if training:
      return TRAINING_CPU if backend == "cpu" else DIRECT
    return INFERENCE_CPU if backend == "cpu" else INFERENCE_ACCEL

  def replace(self, **kw) -> ConvPolicy:
    return dataclasses.replace(self, **kw)

  # Where each rewrite runs.
  def uses_small(self, kernel: int, stride: int, groups: int,
                 in_channels: int, out_channels: int) -> bool:
    return (self.small_max_terms is not None and stride == 1 and groups == 1
            and kernel * kernel * in_channels * out_channels
            <= self.small_max_terms)

  def uses_winograd(self, kernel: int, stride: int, groups: int,
                    in_channels: int, out_channels: int,
                    out_hw: tuple[int, int] = (1, 1)) -> bool:
    if not (self.winograd and fastconv.supports(kernel, stride, groups)):
      return False
    pixels = out_hw[0] * out_hw[1]
    for max_pixels, min_channels in self.winograd:
      if pixels <= max_pixels:
        return min(in_channels, out_channels) >= min_channels
    return False

  def uses_thin(self, kernel: int, stride: int, groups: int, in_channels: int,
                out_channels: int, padding: int) -> bool:
    return (self.thin and fastconv.supports(kernel, stride, groups)
            and padding in (0, 1, 2)
            and min(in_channels, out_channels) <= self.thin_max
            and max(in_channels, out_channels) >= self.thin_min)

  def uses_winograd_grad(self, kernel: int, stride: int, groups: int,
                         in_channels: int, out_channels: int,
                         out_hw: tuple[int, int]) -> bool:
    return (self.winograd_grad and fastconv.supports(kernel, stride, groups)
            and max(in_channels, out_channels) >= self.wgrad_min_channels
            and min(in_channels, out_channels) > self.thin_max
            and min(out_hw) >= self.wgrad_min_hw)

  def fuses_unpool(self, unpool_stride: int, in_hw: tuple[int, int],
                   out_hw: tuple[int, int], kernel: int, stride: int,
                   padding: int, groups: int) -> bool:
    """Whether a 2x unpooling (nothing to zero-extend) followed by this
    3x3, stride-1, padding-1 conv runs as one unpool+conv."""
    return (self.unpool_conv is not None and unpool_stride == 2
            and kernel == 3 and stride == 1 and padding == 1 and groups == 1
            and tuple(out_hw) == (2 * in_hw[0], 2 * in_hw[1]))

  # The convolutions.
  def _fast3x3(self, x: jax.Array, w: jax.Array,
               padding: int) -> jax.Array | None:
    """A stride-1 ungrouped conv by the rewrite this policy picks, or None
    where the direct conv runs (also for a negative padding)."""
    if padding < 0:
      return None
    k, ci, co = w.shape[0], w.shape[2], w.shape[3]
    out_hw = (x.shape[1] + 2 * padding - k + 1,
              x.shape[2] + 2 * padding - k + 1)
    if self.uses_small(k, 1, 1, ci, co):
      return fastconv.small_conv(x, w, padding)
    if self.uses_winograd(k, 1, 1, ci, co, out_hw):
      return fastconv.winograd_conv3x3(x, w, padding)
    if self.uses_thin(k, 1, 1, ci, co, padding):
      return fastconv.thin_conv3x3(x, w, padding)
    if self.uses_winograd_grad(k, 1, 1, ci, co, out_hw):
      return fastconv.conv3x3_wgrad(x, w, padding)
    return None

  def conv2d(self, x: jax.Array, w: jax.Array, stride: int = 1,
             padding: int = 0, groups: int = 1) -> jax.Array:
    """Cross-correlation, NHWC input, HWIO kernel (as Caffe and PyTorch)."""
    if stride == 1 and groups == 1:
      y = self._fast3x3(x, w, padding)
      if y is not None:
        return y
    return direct_conv(x, w, stride, ((padding, padding), (padding, padding)),
                       groups=groups)

  def conv_transpose2d(self, x: jax.Array, w: jax.Array, stride: int,
                       padding: int, out_hw: tuple[int, int],
                       groups: int = 1) -> jax.Array:
    """Transposed convolution: the input dilated by ``stride``, correlated
    with ``w`` (HWIO), cut or zero-extended at the bottom/right to
    ``out_hw``. Equals PyTorch's ``conv_transpose2d`` with the kernel
    flipped spatially and its in/out axes swapped; for stride 1 and
    ``padding = (k - 1) / 2`` it is an ordinary "same" convolution."""
    k = w.shape[0]
    h, wd = x.shape[1], x.shape[2]
    lo = k - 1 - padding
    full_h = (h - 1) * stride - 2 * padding + k
    full_w = (wd - 1) * stride - 2 * padding + k
    pads = ((lo, lo + out_hw[0] - full_h), (lo, lo + out_hw[1] - full_w))
    if (stride == 1 and groups == 1 and pads[0] == (lo, lo)
        and pads[1] == (lo, lo)):
      y = self._fast3x3(x, w, lo)
      if y is not None:
        return y
    return direct_conv(x, w, 1, pads, lhs_dilation=(stride, stride),
                       groups=groups)

  def unpool_conv3x3(self, p: jax.Array, w: jax.Array) -> jax.Array:
    """``conv2d(unpool2d(p, 2, 2x size), w, 1, 1)`` without the zeros."""
    form = self.unpool_conv or "phases"
    if max(w.shape[2], w.shape[3]) <= self.unpool_matmul_max_channels:
      form = "matmul"
    return fastconv.unpool_conv3x3(p, w, form)


DIRECT = ConvPolicy(name="direct")
WINOGRAD = ConvPolicy(winograd=((math.inf, 0),), unpool_conv="phases",
                      name="winograd")
INFERENCE_CPU = ConvPolicy(small_max_terms=216,
                           winograd=((32 * 32, 64), (math.inf, 512)),
                           thin=True, thin_min=8, unpool_conv="phases",
                           unpool_matmul_max_channels=8, name="auto")
INFERENCE_ACCEL = ConvPolicy(unpool_conv="phases", name="auto")
TRAINING_CPU = ConvPolicy(thin=True, winograd_grad=True, unpool_conv="matmul",
                          name="wgrad")

__all__ = ["ConvPolicy", "DIRECT", "WINOGRAD", "INFERENCE_CPU",
           "INFERENCE_ACCEL", "TRAINING_CPU", "NAMES", "direct_conv"]
