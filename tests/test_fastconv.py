"""The fast conv paths against the direct convolution (the reference) and
against PyTorch: Winograd F(4x4, 3x3), unpool+conv by phases, the thin
matmul, the Winograd kernel gradient, and whole modules under each
:class:`ConvPolicy`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from randconv import engine, fastconv, ops
from randconv.modules import CNNDCN, Decoder, Encoder, apply_with_features
from randconv.policy import DIRECT, ConvPolicy
from randconv.spec import make_spec

# Winograd F(4, 3) in float32: ~1e-6 of the output's scale (Lavin & Gray).
REL_TOL = 2e-5


def rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("n,h,w,ci,co,pad", [
    (2, 16, 16, 5, 7, 1), (1, 13, 11, 3, 4, 1), (2, 9, 10, 4, 6, 0),
    (1, 5, 6, 2, 3, 2), (1, 4, 4, 8, 8, 1), (3, 1, 1, 2, 2, 1)])
def test_winograd_matches_direct(n, h, w, ci, co, pad, rng):
  x = rng.uniform(size=(n, h, w, ci)).astype(np.float32)
  k = rng.normal(size=(3, 3, ci, co)).astype(np.float32)
  got = fastconv.winograd_conv3x3(jnp.asarray(x), jnp.asarray(k), pad)
  want = ops.conv2d(jnp.asarray(x), jnp.asarray(k), 1, pad)
  assert got.shape == want.shape
  assert rel_err(got, want) < REL_TOL


def test_winograd_matches_torch(torch, rng):
  x = rng.uniform(size=(2, 12, 10, 6)).astype(np.float32)
  k = rng.normal(size=(3, 3, 6, 5)).astype(np.float32)
  got = fastconv.winograd_conv3x3(jnp.asarray(x), jnp.asarray(k), 1)
  want = torch.nn.functional.conv2d(
      torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
      torch.from_numpy(k.transpose(3, 2, 0, 1).copy()), padding=1)
  assert rel_err(got, want.numpy().transpose(0, 2, 3, 1)) < REL_TOL


@pytest.mark.parametrize("h,w", [(5, 7), (1, 1), (8, 8)])
def test_unpool_conv_matches_direct(h, w, rng):
  p = rng.normal(size=(2, h, w, 6)).astype(np.float32)
  k = rng.normal(size=(3, 3, 6, 4)).astype(np.float32)
  up = ops.unpool2d(jnp.asarray(p), 2, (2 * h, 2 * w))
  want = ops.conv2d(up, jnp.asarray(k), 1, 1)
  got = fastconv.unpool_conv3x3(jnp.asarray(p), jnp.asarray(k))
  assert rel_err(got, want) < 1e-6


def test_transposed_stride1_uses_winograd_and_agrees(rng):
  x = rng.normal(size=(1, 9, 9, 8)).astype(np.float32)
  k = rng.normal(size=(3, 3, 8, 8)).astype(np.float32)
  direct = ops.conv_transpose2d(jnp.asarray(x), jnp.asarray(k), 1, 1, (9, 9))
  fast = ops.conv_transpose2d(jnp.asarray(x), jnp.asarray(k), 1, 1, (9, 9),
                              policy=ConvPolicy.named("winograd"))
  assert rel_err(fast, direct) < REL_TOL


@pytest.mark.parametrize("layer,output,size,impl", [
    ("pool1", "conv", 32, "winograd"), ("pool1", "mean", 33, "auto"),
    ("conv2", "conv", 27, "winograd")])
def test_nets_fast_paths_match_direct(layer, output, size, impl, rng):
  spec = make_spec("vgg16", layer, width=16, output=output)
  x = jnp.asarray(rng.uniform(size=(2, size, size, 3)).astype(np.float32))
  params = CNNDCN(spec).init(jax.random.PRNGKey(3), method="draw")
  for rescale in (False, True):
    want, feats = apply_with_features(
        CNNDCN(spec, rescale=rescale, policy=DIRECT), params, x)
    got, fast_feats = apply_with_features(
        CNNDCN(spec, rescale=rescale, policy=ConvPolicy.named(impl)), params,
        x)
    assert rel_err(got, want) < REL_TOL
    assert set(fast_feats) == set(feats)  # every layer still reachable


def test_unknown_policy_name_is_a_value_error():
  with pytest.raises(ValueError, match="conv policy"):
    ConvPolicy.named("fft")


def test_auto_picks_winograd_only_where_it_applies():
  auto = ConvPolicy.named("auto")
  assert auto.uses_winograd(3, 1, 1, 64, 64) == (
      jax.default_backend() == "cpu")
  assert not auto.uses_winograd(3, 1, 1, 3, 64)  # thin first conv
  wino = ConvPolicy.named("winograd")
  assert not wino.uses_winograd(5, 1, 1, 64, 64)
  assert not wino.uses_winograd(3, 2, 1, 64, 64)
  assert not DIRECT.uses_winograd(3, 1, 1, 64, 64)


@pytest.mark.parametrize("n,h,w,ci,co,pad", [
    (2, 16, 16, 8, 9, 1), (1, 13, 11, 3, 4, 1), (2, 9, 10, 4, 6, 0),
    (1, 5, 6, 2, 3, 2)])
def test_winograd_weight_grad_matches_autodiff_of_direct(n, h, w, ci, co,
                                                         pad, rng):
  x = jnp.asarray(rng.normal(size=(n, h, w, ci)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, ci, co)), jnp.float32)
  oh, ow = h + 2 * pad - 2, w + 2 * pad - 2
  dy = jnp.asarray(rng.normal(size=(n, oh, ow, co)), jnp.float32)
  _, vjp = jax.vjp(lambda k: ops.conv2d(x, k, 1, pad), k)
  assert rel_err(fastconv.weight_grad3x3(x, dy, pad), vjp(dy)[0]) < 1e-5


def _grads(f, x, k, dy):
  """f's value and the vjp of ``dy`` for x and k."""
  y, vjp = jax.vjp(f, x, k)
  return (y, *vjp(dy))


def test_wgrad_rules():
  wgrad = ConvPolicy.named("wgrad")
  assert wgrad.uses_winograd_grad(3, 1, 1, 8, 64, (12, 12))
  assert wgrad.uses_winograd_grad(3, 1, 1, 64, 64, (64, 64))
  assert not wgrad.uses_winograd_grad(3, 1, 1, 16, 16, (64, 64))
  assert not wgrad.uses_winograd_grad(3, 1, 1, 512, 512, (8, 8))
  assert not wgrad.uses_winograd_grad(3, 1, 1, 3, 64, (64, 64))
  assert not DIRECT.uses_winograd_grad(3, 1, 1, 64, 64, (64, 64))
  assert wgrad.uses_thin(3, 1, 1, 64, 3, 1)
  assert wgrad.uses_thin(3, 1, 1, 3, 64, 1)
  assert not wgrad.uses_thin(3, 1, 1, 3, 16, 1)
  assert ConvPolicy.named("auto").uses_thin(3, 1, 1, 3, 64, 1) == (
      jax.default_backend() == "cpu")
  assert not DIRECT.uses_thin(3, 1, 1, 3, 64, 1)
  assert not wgrad.uses_winograd(3, 1, 1, 64, 64)
  assert wgrad.fuses_unpool(2, (4, 4), (8, 8), 3, 1, 1, 1)
  assert not DIRECT.fuses_unpool(2, (4, 4), (8, 8), 3, 1, 1, 1)


@pytest.mark.parametrize("ci,co,hw", [(8, 32, 12), (32, 3, 8), (3, 32, 8)])
def test_wgrad_impl_keeps_values_and_gradients(ci, co, hw, rng):
  # conv2d and the stride-1 transposed conv under ``wgrad`` (Winograd kernel
  # gradient; the thin matmul path for 3 channels): same outputs and the
  # same input and kernel gradients as XLA's autodiff of the direct conv.
  x = jnp.asarray(rng.normal(size=(2, hw, hw, ci)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, ci, co)), jnp.float32)
  dy = jnp.asarray(rng.normal(size=(2, hw, hw, co)), jnp.float32)
  fns = [lambda impl: lambda x, k: ops.conv2d(
      x, k, 1, 1, policy=ConvPolicy.named(impl)),
         lambda impl: lambda x, k: ops.conv_transpose2d(
             x, k, 1, 1, (hw, hw), policy=ConvPolicy.named(impl))]
  for f in fns:
    ref = _grads(f("direct"), x, k, dy)
    got = _grads(f("wgrad"), x, k, dy)
    for a, b, tol in zip(got, ref, (1e-6, 1e-6, 1e-5)):
      assert rel_err(a, b) < tol


@pytest.mark.parametrize("ci,co,pad", [
    (3, 16, 1), (16, 3, 1), (3, 16, 0), (16, 3, 2), (2, 3, 1), (1, 8, 2),
    (8, 1, 0)])
def test_thin_conv_matches_autodiff_of_direct(ci, co, pad, rng):
  x = jnp.asarray(rng.normal(size=(2, 7, 9, ci)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, ci, co)), jnp.float32)
  dy = jnp.asarray(rng.normal(size=(2, 5 + 2 * pad, 7 + 2 * pad, co)),
                   jnp.float32)
  ref = _grads(lambda x, k: ops.conv2d(x, k, 1, pad), x, k, dy)
  got = _grads(lambda x, k: fastconv.thin_conv3x3(x, k, pad), x, k, dy)
  for a, b in zip(got, ref):
    assert a.shape == b.shape
    assert rel_err(a, b) < 1e-5
  with pytest.raises(ValueError, match="padding"):
    fastconv.thin_conv3x3(x, k, 3)


def test_thin_conv_under_jit_vmap_and_low_precision(rng):
  # The sweep vmaps over weight sets: per-net gradients of the thin path
  # under jit(vmap(grad)) equal the direct conv's; bfloat16 keeps its dtypes.
  x = jnp.asarray(rng.normal(size=(2, 6, 6, 32)), jnp.float32)
  ks = jnp.asarray(rng.normal(size=(3, 3, 3, 32, 3)), jnp.float32)

  def loss(k, impl):
    return jnp.sum(jnp.sin(ops.conv2d(x, k, 1, 1,
                                      policy=ConvPolicy.named(impl))))

  for impl in ("direct", "auto"):
    got = jax.jit(jax.vmap(jax.grad(loss), in_axes=(0, None)),
                  static_argnums=1)(ks, impl)
    if impl == "direct":
      ref = got
  assert rel_err(got, ref) < 1e-5
  xb, kb = x.astype(jnp.bfloat16), ks[0].astype(jnp.bfloat16)
  y, vjp = jax.vjp(lambda a, b: fastconv.thin_conv3x3(a, b, 1), xb, kb)
  dx, dk = vjp(jnp.ones_like(y))
  assert (y.dtype, dx.dtype, dk.dtype) == (jnp.bfloat16,) * 3
  assert rel_err(y, ops.conv2d(x, ks[0], 1, 1)) < 2e-2


@pytest.mark.parametrize("width,impl", [(8, "winograd"), (32, "auto")])
def test_vmapped_sweep_matches_the_direct_reference(width, impl, rng):
  # Width 32 under auto on a CPU: conv1_1 (3 -> 32) and deconv1_1 (32 -> 3)
  # take the thin matmul, vmapped over nets; RMS rescaling on.
  spec = make_spec("vgg16", "pool1", width=width, output="conv")
  x = rng.uniform(size=(3, 12, 12, 3)).astype(np.float32)
  keys = engine.seed_keys(1, 3)
  ref = engine.run_keys(engine.net_fn(spec, "gaussian:0.015", rescale=True,
                                       policy="direct"), keys, x,
                        strategy="loop")
  for strategy in ("vmap", "map"):
    got = engine.run_nets(spec, "gaussian:0.015", keys, x, strategy=strategy,
                          policy=impl, rescale=True, chunks=engine.Plan(2, 2))
    assert got.shape == ref.shape
    assert rel_err(got, ref) < REL_TOL


def test_weight_grad_chunks_sum_to_the_whole_batch(rng):
  x = jnp.asarray(rng.normal(size=(6, 10, 10, 4)), jnp.float32)
  dy = jnp.asarray(rng.normal(size=(6, 10, 10, 5)), jnp.float32)
  whole = fastconv.weight_grad3x3(x, dy, 1, chunk=6)
  for chunk in (1, 2, 3):
    assert rel_err(fastconv.weight_grad3x3(x, dy, 1, chunk=chunk),
                   whole) < 1e-5  # summation order only
  with pytest.raises(ValueError, match="divide"):
    fastconv.weight_grad3x3(x, dy, 1, chunk=4)
  assert fastconv.batch_chunk(32, 64 * 64 * 64) == 2
  assert fastconv.batch_chunk(31, 10) == 31
  assert fastconv.batch_chunk(31, 10 ** 9) == 1


@pytest.mark.parametrize("form", ["phases", "matmul"])
def test_unpool_conv_forms_match_autodiff_of_direct(form, rng):
  p = jnp.asarray(rng.normal(size=(2, 5, 6, 6)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 6, 4)), jnp.float32)
  dy = jnp.asarray(rng.normal(size=(2, 10, 12, 4)), jnp.float32)
  ref = _grads(lambda p, k: ops.conv2d(ops.unpool2d(p, 2, (10, 12)), k, 1, 1),
               p, k, dy)
  got = _grads(lambda p, k: fastconv.unpool_conv3x3(p, k, form), p, k, dy)
  for a, b in zip(got, ref):
    assert rel_err(a, b) < 1e-6


def test_wgrad_train_gradients_match_direct(rng):
  # A whole VGG Conv2-DeConv2 at width 32: the thin first and last layers,
  # Winograd kernel gradients and the one-matmul unpool+conv all at once.
  spec = make_spec("vgg16", "conv2", width=32, output="conv",
                   decoder_activation="leaky_relu")
  x = jnp.asarray(rng.uniform(size=(2, 24, 24, 3)), jnp.float32)
  enc = Encoder(spec).init(jax.random.PRNGKey(5), method="draw")
  z = Encoder(spec, policy=DIRECT).apply(enc, x)

  def loss(dec, impl):
    y = Decoder(spec, policy=ConvPolicy.named(impl)).apply(dec, z, (24, 24))
    return jnp.sum((y - x) ** 2)

  dec = Decoder(spec).init(jax.random.PRNGKey(6), method="draw")
  assert len(dec["params"]) == 4
  ref = jax.grad(loss)(dec, "direct")["params"]
  got = jax.grad(loss)(dec, "wgrad")["params"]
  for name in ref:
    for leaf in ref[name]:
      assert rel_err(got[name][leaf], ref[name][leaf]) < 1e-4, (name, leaf)
  z_fast = Encoder(spec, policy=ConvPolicy.named("wgrad")).apply(enc, x)
  assert rel_err(z_fast, z) < 1e-6
