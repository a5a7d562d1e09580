"""The limit image (Theorems 5.1 / A.1 and A.7) computed two or three
independent ways, and against the library's network at a large width."""

import jax
import numpy as np
import pytest

from randconv import engine, ops
from randconv.spec import (ChannelMean, Conv, Crop, NetSpec, Pool, Unpool,
                           make_spec)
from theory_checks import limits, routes
from theory_checks.depth import stack_spec


def positive(size, seed=0, channels=3):
  r = np.random.default_rng(seed)
  return r.uniform(0.05, 1.0, (size, size, channels))


def rel(a, b):
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def strided_spec(width=4):
  """A hand-built Section 5 net with a stride-2 conv, its stride-2
  transposed mirror, a pool/unpool pair and a 5x5 output conv."""
  enc = (Conv("e1", 3, width, 3, 2, 1), Conv("e2", width, width, 3, 1, 1),
         Pool("p", "l2", 3, 2, ceil_mode=False))
  dec = (Unpool("up", 2, "p"),
         Conv("d2", width, width, 3, 1, 1, transpose=True, mirror="e2"),
         Conv("d1", width, width, 3, 2, 1, transpose=True, mirror="e1"),
         Conv("out", width, width, 5, 1, 2), ChannelMean(), Crop())
  return NetSpec("custom", "strided", enc, dec)


L2_SPECS = [("vgg16", "conv1_1"), ("vgg16", "pool1"), ("vgg16", "conv2"),
            ("vgg16", "conv3")]


@pytest.mark.parametrize("arch,layer", L2_SPECS)
@pytest.mark.parametrize("size", [12, 17])
def test_energy_recursion_equals_route_counts(arch, layer, size):
  spec = make_spec(arch, layer, output="mean", pooling="l2")
  x = positive(size, seed=size)
  assert rel(limits.energy_limit(spec, x), routes.route_limit(spec, x)) < 1e-6


def test_route_counts_for_strided_and_kernel_variants():
  for spec, size in [(strided_spec(), 15), (strided_spec(), 16),
                     (make_spec("vgg16", "conv1_1", output="mean",
                                kernel_size=7), 13)]:
    x = positive(size, seed=3)
    assert rel(limits.energy_limit(spec, x),
               routes.route_limit(spec, x)) < 1e-6


def test_route_counts_of_one_conv_are_window_sizes():
  # One 3x3 conv + mean: n_ij = 1 inside the 3x3 window of j, else 0; so a
  # corner pixel has 4 routes in, an interior one 9.
  spec = make_spec("vgg16", "conv1_1", output="mean")
  n, c = routes.route_counts(spec, 6, 6)
  counts = np.asarray(n.sum(axis=1)).reshape(6, 6)
  assert counts[0, 0] == 4 and counts[0, 3] == 6 and counts[3, 3] == 9
  assert set(np.unique(n.toarray())) == {0, 1}
  assert c == pytest.approx(1 / np.sqrt(2 * np.pi))


def _ones_recursion(spec, q):
  """The L2 energy recursion written with the library's own layer ops
  (all-ones single-channel kernels), an independent check of the
  geometry: padding, ceil mode, transposed sizes, unpool padding, crop."""
  steps = limits.section5_steps(spec, *q.shape, pooling="l2")
  q = q[None, :, :, None]
  for st in steps:
    layer = st.layer
    if isinstance(layer, Conv):
      w = np.ones((layer.kernel, layer.kernel, 1, 1))
      if layer.transpose:
        box = ops.conv_transpose2d(q, w, layer.stride, layer.padding,
                                   st.out_hw)
      else:
        box = ops.conv2d(q, w, layer.stride, layer.padding)
      box = np.asarray(box)
      q = limits.C1 * np.sqrt(box) if st.output_conv else limits.M2 * box
    elif isinstance(layer, Pool):
      q = np.asarray(ops.pool2d(np.sqrt(q), "l2", layer.window, layer.stride,
                                layer.ceil_mode)) ** 2
    elif isinstance(layer, Unpool):
      q = np.asarray(ops.unpool2d(q, layer.stride, st.out_hw))
    elif isinstance(layer, Crop):
      q = q[:, :st.out_hw[0], :st.out_hw[1]]
  return q[0, :, :, 0]


@pytest.mark.parametrize("spec", [
    make_spec("vgg16", "conv2", output="mean", pooling="l2"),
    make_spec("vgg16", "conv3", output="mean", pooling="l2"),
    strided_spec()], ids=["conv2", "conv3", "strided"])
def test_energy_recursion_matches_library_ops(spec):
  x = positive(19, seed=5)
  q0 = limits.input_energy(x).astype(np.float32)
  # float32 ops: round-off only.
  assert rel(limits.energy_limit(spec, x), _ones_recursion(spec, q0)) < 1e-5


@pytest.mark.parametrize("layer", ["pool1", "conv2", "conv3"])
@pytest.mark.parametrize("size", [12, 17, 32])
def test_banded_covariance_equals_full(layer, size):
  spec = make_spec("vgg16", layer, output="mean", pooling="avg")
  x = positive(size, seed=size)
  assert rel(limits.covariance_limit(spec, x),
             routes.full_covariance_limit(spec, x)) < 1e-6


def test_required_offsets_of_vgg_conv5():
  # pool4 needs offset 1 at its input, pool3 3, pool2 7, pool1 15; the
  # decoder and the layers after pool4 need the diagonal only.
  spec = make_spec("vgg16", "conv5", output="mean", pooling="avg")
  steps = limits.section5_steps(spec, 64, 64)
  need = dict(zip([s.layer.name for s in steps],
                  limits.required_offsets(steps)))
  assert need["conv1_1"] == need["pool1"] == (15, 15)
  assert need["pool2"] == (7, 7) and need["pool4"] == (1, 1)
  assert need["conv5_1"] == need["deconv1_2"] == (0, 0)


def test_without_pooling_both_recursions_agree():
  spec = stack_spec(5, 1)
  x = positive(14, seed=2)
  assert rel(limits.covariance_limit(spec, x),
             limits.energy_limit(spec, x)) < 1e-12


def test_arccos_kernel_against_monte_carlo():
  r = np.random.default_rng(0)
  cov = np.array([[2.0, 0.9], [0.9, 1.0]])
  u = r.multivariate_normal([0, 0], cov, size=400_000)
  mc = np.mean(np.maximum(u[:, 0], 0) * np.maximum(u[:, 1], 0))
  assert limits.arccos_relu(cov[0, 1], cov[0, 0], cov[1, 1]) == \
      pytest.approx(mc, rel=0.02)


def test_average_pooling_limit_matches_the_library_network():
  """Neural-tangents style: the mean over nets of the library's own
  network (exact scale: N(0, 1) weights, no rescaling, divided by the
  1/sqrt(N) factors it lacks) against the covariance recursion, on an image
  (fine stripes below a flat half) where average and L2 pooling have
  limits a clear angle d apart: the Monte Carlo mean must lie within d / 3
  of the Theorem A.7 limit (hence beyond 2 d / 3 of the L2 one)."""
  width, n_seeds = 1024, 16
  x = np.full((12, 12, 3), 0.5, np.float32)
  x[6:, ::2], x[6:, 1::2] = 0.9, 0.05
  spec = make_spec("vgg16", "pool1", output="mean", pooling="avg",
                   width=width)
  f = jax.jit(engine.net_fn(spec, "gaussian:1.0", policy="direct"))
  ys = np.stack([np.asarray(f(jax.random.PRNGKey(s), x[None]))[0, :, :, 0]
                 for s in range(n_seeds)])
  ys = ys / width  # conv1_1 and conv1_2 each lack the factor 1/sqrt(N)
  lim = limits.covariance_limit(make_spec("vgg16", "pool1", output="mean",
                                          pooling="avg"), x)
  l2 = limits.energy_limit(make_spec("vgg16", "pool1", output="mean",
                                     pooling="l2"), x)
  d = limits.angle(lim, l2)
  mean = ys.mean(0)
  assert limits.angle(mean, lim) < d / 3
  # The exact scale too: E y = y_hat up to O(1/N) and the nets' spread.
  assert np.sum(mean * lim) / np.sum(lim * lim) == pytest.approx(1, abs=0.05)


def test_limit_rejects_what_the_theory_does_not_cover():
  x = positive(16)
  with pytest.raises(limits.TheoryError):
    limits.energy_limit(make_spec("vgg16", "conv2", output="mean"), x)  # max
  with pytest.raises(limits.TheoryError):
    limits.energy_limit(make_spec("vgg16", "conv2", pooling="l2"), x)  # conv
  with pytest.raises(limits.TheoryError):
    limits.covariance_limit(make_spec("vgg16", "conv2", output="mean",
                                      pooling="l2"), x)


def test_vgg16_conv5_limit_at_227_is_fast():
  import time
  spec = make_spec("vgg16", "conv5", output="mean", pooling="l2")
  x = positive(227)
  start = time.perf_counter()
  y = limits.energy_limit(spec, x)
  assert time.perf_counter() - start < 1.0
  assert y.shape == (227, 227) and np.all(y > 0)
