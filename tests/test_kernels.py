"""randconv.kernel_fn against neural-tangents (the field's reference, its
kernels saved by tests/data/make_nt_kernels.sh), against wide library
networks where neural-tangents cannot go (max pooling), and the API's
contract (blocks between images, named layers, rescaling, errors)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import randconv
from randconv import kernels
from nt_networks import nt_specs
from randconv.spec import Conv, Crop, Pool, Unpool, make_spec

DATA = Path(__file__).parent / "data" / "nt_kernels.npz"


def best_scale_error(a, b) -> float:
  """:func:`theory_checks.gp.best_scale_error` with its scale asserted
  positive: the kernels agree up to one positive scale (module docstring
  of randconv.kernels)."""
  from theory_checks import gp
  assert float(np.ravel(a) @ np.ravel(b)) > 0
  return gp.best_scale_error(a, b)


def _each(kind, **change):
  """A function for :meth:`NetSpec.map_layers`: ``change`` on every layer
  of ``kind``."""
  return lambda i, l: dataclasses.replace(l, **change) \
      if isinstance(l, kind) else l


def no_relu(spec):
  return spec.map_layers(_each(Conv, activation=None))


def max_for_avg(spec):
  return spec.map_layers(_each(Pool, pooling="max"))


def test_pools_in_a_row_must_follow_a_conv():
  """Max pools are sampled from the Gaussian conv output before them: a
  run of pools may follow a conv, a pool after an unpool may not."""
  simp = make_spec("vgg16", "conv3", simplified=True)
  kernels.check_layers(simp)
  bad = dataclasses.replace(simp, encoder=simp.encoder,
                            decoder=simp.decoder[:1] + (
                                Pool("p9", "max", 2, 2),) + simp.decoder[1:])
  with pytest.raises(kernels.KernelError, match="p9: a max pool must follow"):
    kernels.check_layers(bad)


@pytest.fixture(scope="module")
def nt():
  return dict(np.load(DATA))


@pytest.mark.parametrize("name", ["conv_relu", "conv_relu_avgpool",
                                  "vgg16_pool1_avg"])
def test_kernel_fn_equals_neural_tangents(nt, name):
  """Every block (both images and the blocks between them) to 1e-10 after
  the best positive scale; the wrong variants miss by more than 1e-2."""
  spec = nt_specs()[name]
  k = randconv.kernel_fn(spec)(nt["x"])
  assert k.shape == nt[name].shape == (2, k.shape[1], 2, k.shape[1])
  assert best_scale_error(k, nt[name]) < 1e-10
  wrong = [no_relu(spec)] + ([max_for_avg(spec)] if "avg" in name else [])
  for w in wrong:
    kw = kernels.kernel_fn(w, samples=1 << 12)(nt["x"])
    assert best_scale_error(kw, nt[name]) > 1e-2


def test_named_layers_and_cross_blocks(nt):
  """``layer=`` gives the kernel inside the network (VGG16's conv1_2 and
  pool1 are the fixture's smaller networks), and ``f(x1, x2)`` is the block
  between them of ``f(x)``."""
  f = randconv.kernel_fn(nt_specs()["vgg16_pool1_avg"])
  x = nt["x"]
  assert best_scale_error(f(x, layer="conv1_2"), nt["conv_relu"]) < 1e-10
  assert best_scale_error(f(x, layer="pool1"),
                          nt["conv_relu_avgpool"]) < 1e-10
  whole = f(x)
  np.testing.assert_array_equal(f(x[:1], x[1:]), whole[:1, :, 1:, :])
  np.testing.assert_array_equal(f(x[1:], x[:1]), whole[1:, :, :1, :])
  with pytest.raises(kernels.KernelError, match="no layer 'conv9'"):
    f(x, layer="conv9")


def test_rescale_scales_each_image_by_its_own_factor(nt):
  """The library's per-image RMS rescaling multiplies block (a, b) by
  ``c_a c_b``: the ratio to the unrescaled kernel is a rank-one outer
  product of positive per-image factors, not one constant."""
  spec = nt_specs()["vgg16_pool1_avg"]
  x = nt["x"] * np.array([1.0, 30.0])[:, None, None, None]
  plain = kernels.kernel_fn(spec)(x)
  resc = kernels.kernel_fn(spec, rescale=True)(x)
  ratio = resc / plain
  c = np.sqrt(np.array([ratio[0, :, 0].mean(), ratio[1, :, 1].mean()]))
  outer = c[:, None, None, None] * c[None, None, :, None]
  np.testing.assert_allclose(ratio, np.broadcast_to(outer, ratio.shape),
                             rtol=1e-9)
  assert c[0] / c[1] > 10  # the brighter image is scaled down far more


WIDE = {  # spec, the last hidden layer
    "pool1": (make_spec("vgg16", "pool1", output="conv", pooling="max",
                        width=1024), "deconv1_2"),
    # Fig. 7's simplified Conv3: one conv, then two max pools in a row.
    "simplified_conv3": (make_spec("vgg16", "conv3", simplified=True,
                                   width=1024), "unpool1"),
}


@pytest.fixture(scope="module")
def wide_max_pool():
  """Hidden features of wide library nets (max pooling, RMS rescaling) on
  two photos at 12x12: per network of :data:`WIDE`, the empirical kernel
  of its last hidden layer over both images, averaged over 16 nets."""
  import jax

  from randconv import engine
  from randconv.distributions import parse_distribution
  from randconv.modules import CNNDCN, apply_with_features
  from theory_checks import common
  x, _ = common.inputs(common.TWO_PHOTOS, 12)
  out = {}
  unit = parse_distribution("gaussian:1.0").initializer()
  for name, (spec, hidden) in WIDE.items():
    model = CNNDCN(spec, unit, rescale=True)

    @jax.jit
    def gram(key, images, model=model, hidden=hidden):
      variables = model.init(key, images)
      _, feats = apply_with_features(model, variables, images)
      d = feats[hidden]
      return jax.numpy.einsum("aijn,bkln->aijbkl", d, d,
                              precision="highest") / d.shape[-1]

    keys = engine.seed_keys(3, 16)
    out[name] = np.mean([np.asarray(gram(k, x), np.float64) for k in keys],
                        axis=0)
  return x, out


def _avg_pools(spec):
  return spec.map_layers(_each(Pool, pooling="avg"))


@pytest.mark.parametrize("name", sorted(WIDE))
def test_max_pool_kernel_against_wide_library_nets(wide_max_pool, name):
  """Where neural-tangents cannot go: with max pooling (two in a row for
  Fig. 7's simplified nets, sampled together) and the library's rescaling,
  the hidden kernel over two images (cross blocks included) at its
  absolute scale, against 16 nets of width 1024 (the error falls like
  (N nets)^(-1/2): 0.077, 0.032, 0.039, 0.019 at 256 x 4, 256 x 16,
  1024 x 4, 1024 x 16 for pool1 when this test was written); averaging the
  pools instead misses by far more."""
  x, emp = wide_max_pool[0], wide_max_pool[1][name]
  spec, hidden = WIDE[name]
  n, h, w = emp.shape[:3]
  emp = emp.reshape(n, h * w, n, h * w)
  k = kernels.kernel_fn(spec, samples=1 << 14, rescale=True)(
      x, layer=hidden)
  err = np.linalg.norm(k - emp) / np.linalg.norm(emp)
  cross = np.linalg.norm(k[0, :, 1] - emp[0, :, 1]) / np.linalg.norm(
      emp[0, :, 1])
  avg = kernels.kernel_fn(_avg_pools(spec), rescale=True)(x, layer=hidden)
  err_avg = np.linalg.norm(avg - emp) / np.linalg.norm(emp)
  assert err < 0.05 and cross < 0.08, (err, cross)
  assert err_avg > 3 * err, (err_avg, err)


def test_errors_name_what_is_wrong(nt):
  with pytest.raises(kernels.KernelError, match="LRN"):
    kernels.kernel_fn(make_spec("alexnet", "conv2"))
  f = kernels.kernel_fn(make_spec("vgg16", "pool1", output="conv"))
  with pytest.raises(kernels.KernelError, match=r"GB of float64"):
    f(np.zeros((2, 64, 64, 3)))
  with pytest.raises(kernels.KernelError, match=r"\[N, H, W, C\]"):
    f(np.zeros((8, 8, 3)))


LINEAR_CASES = [  # layer, input size, output size (None: the op's own)
    (Conv("c", 1, 1, 3, 1, 1), (7, 5), None),
    (Conv("c", 1, 1, 3, 2, 1), (7, 5), None),
    (Conv("c", 1, 1, 11, 4, 2), (23, 19), None),
    (Conv("d", 1, 1, 3, 1, 0, transpose=True), (5, 4), (7, 6)),
    (Conv("d", 1, 1, 5, 1, 1, transpose=True), (5, 4), (7, 6)),
    (Conv("d", 1, 1, 3, 2, 1, transpose=True), (4, 3), (8, 6)),
    (Conv("d", 1, 1, 11, 4, 2, transpose=True), (5, 4), (23, 19)),
    (Pool("p", "avg", 3, 2, True), (7, 5), None),
    (Pool("p", "avg", 2, 2, False), (7, 5), None),
    (Unpool("u", 2, "p"), (3, 4), (7, 9)),
    (Unpool("u", 3, "p"), (3, 4), (10, 13)),
    (Crop(), (9, 11), (7, 8)),
]


def _operators(layer, in_hw, out_hw):
  """The library op of ``layer`` as [P_out, P_in] matrices (one per conv
  tap), read off by applying it to one-hot images in float64."""
  import jax
  with jax.enable_x64(True):
    return _operators_x64(layer, in_hw, out_hw)


def _operators_x64(layer, in_hw, out_hw):
  import jax.numpy as jnp

  from randconv import ops
  from randconv.policy import DIRECT
  p_in = in_hw[0] * in_hw[1]
  basis = jnp.eye(p_in, dtype=jnp.float64).reshape(p_in, *in_hw, 1)

  def matrix(y):
    return np.asarray(y, np.float64).reshape(p_in, -1).T, y.shape[1:3]

  if isinstance(layer, Conv):
    mats = []
    for t in range(layer.kernel ** 2):
      w = np.zeros((layer.kernel ** 2, 1, 1))
      w[t] = 1
      w = jnp.asarray(w.reshape(layer.kernel, layer.kernel, 1, 1))
      y = (DIRECT.conv_transpose2d(basis, w, layer.stride, layer.padding,
                                   out_hw, 1) if layer.transpose
           else DIRECT.conv2d(basis, w, layer.stride, layer.padding, 1))
      m, hw = matrix(y)
      mats.append(m)
    return mats, hw
  if isinstance(layer, Pool):
    y = ops.pool2d(basis, layer.pooling, layer.window, layer.stride,
                   layer.ceil_mode)
  elif isinstance(layer, Unpool):
    y = ops.unpool2d(basis, layer.stride, out_hw)
  else:
    y = ops.crop(basis, out_hw)
  m, hw = matrix(y)
  return [m], hw


@pytest.mark.parametrize("case", range(len(LINEAR_CASES)))
def test_linear_maps_equal_the_library_ops(case):
  """Every linear map of the recursion against the operator of the
  library's own op (convs with strides, transposed convs on the slice and
  the dense paths, ceil-mode average pools with partial windows, unpools to
  odd sizes, crops): ``sum_t G_t K G_t^T`` on a random kernel of two
  images, to round-off."""
  layer, in_hw, out_hw = LINEAR_CASES[case]
  mats, hw = _operators(layer, in_hw, out_hw)
  rng = np.random.default_rng(case)
  a = rng.standard_normal((2,) + tuple(in_hw) + (3,))
  k = np.einsum("aijc,bklc->aijbkl", a, a)
  p_in = in_hw[0] * in_hw[1]
  k2 = k.reshape(2, p_in, 2, p_in)
  want = sum(np.einsum("op,apbq,rq->aobr", g, k2, g) for g in mats)
  got = kernels.linear(k, layer, in_hw, tuple(hw),
                       mean=isinstance(layer, Pool))
  got = got.reshape(want.shape)
  assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()


def test_rescale_of_a_channel_mean_output_at_absolute_scale():
  """With the channel-mean output every conv is hidden, so the library's
  RMS rescaling (``CNNDCN(rescale=True)``) is deterministic at infinite
  width for each image: the limit images equal wide nets' outputs at their
  absolute scale, for two images whose energy sits in different places."""
  import jax

  from randconv.distributions import parse_distribution
  from randconv.modules import CNNDCN
  from theory_checks import common
  x, _ = common.inputs(common.TWO_PHOTOS, 12)
  x = x.copy()
  x[1, 3:9, 3:9] *= 10.0   # image 1: its energy in the centre
  spec = make_spec("vgg16", "conv1", output="mean", width=2048)
  model = CNNDCN(spec, parse_distribution("gaussian:1.0").initializer(),
                 rescale=True)
  outs = [np.asarray(model.apply(model.init(k, x), x), np.float64)[..., 0]
          for k in jax.random.split(jax.random.PRNGKey(5), 4)]
  lib = np.mean(outs, axis=0)                             # [2, H, W]
  k = kernels.kernel_fn(spec, rescale=True)(x)            # [2, P, 2, P]
  lim = np.sqrt(np.stack([np.diagonal(k[b, :, b]) for b in range(2)]))
  lim = lim.reshape(lib.shape)
  err = np.linalg.norm(lim - lib, axis=(1, 2)) / np.linalg.norm(lib,
                                                                axis=(1, 2))
  assert np.all(err < 0.03), err
