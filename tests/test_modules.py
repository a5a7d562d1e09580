"""The Flax modules: params by layer name, many nets by ``jax.vmap`` over
``init`` and ``apply`` equal to one net at a time, halves that share the
pair's params, and the sown features."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import randconv as rc
from conftest import positive_images
from randconv.policy import DIRECT
from randconv.spec import Conv

LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5"]
SIZE = {"vgg16": 32, "alexnet": 67, "alexnet_torchvision": 63}


@pytest.mark.parametrize("arch", ["vgg16", "alexnet", "alexnet_torchvision"])
def test_vmapped_init_and_apply_equal_single_nets(arch):
  keys = jax.random.split(jax.random.PRNGKey(7), 4)
  x = jnp.asarray(positive_images(2, SIZE[arch]))
  for layer in LAYERS:
    spec = rc.make_spec(arch, layer, width=4)
    # LRN (alexnet) cannot be rescaled; the others are rescaled to stay in
    # float range at any depth.
    model = rc.CNNDCN(spec, rescale=not spec.has_lrn, policy=DIRECT)
    many = jax.vmap(model.init, in_axes=(0, None))(keys, x)
    outs = jax.vmap(model.apply, in_axes=(0, None))(many, x)
    names = {c.name for c in spec.convs}
    assert set(many["params"]) == names, (arch, layer)
    for c in spec.convs:
      assert many["params"][c.name]["kernel"].shape == (4, *c.weight_shape)
      assert "bias" not in many["params"][c.name]  # random layers: no bias
    # Four single-net calls (the forward pass compiled once).
    apply1 = jax.jit(model.apply)
    for i, key in enumerate(keys):
      one = model.init(key, x)
      for c in spec.convs:
        np.testing.assert_array_equal(one["params"][c.name]["kernel"],
                                      many["params"][c.name]["kernel"][i])
      y = apply1(one, x)
      scale = float(jnp.abs(y).max())
      assert scale > 0, (arch, layer)
      assert float(jnp.abs(outs[i] - y).max()) <= 1e-4 * scale, (arch, layer)


def test_halves_share_the_pairs_params_and_names():
  spec = rc.make_spec("vgg16", "conv2", width=4)
  key = jax.random.PRNGKey(0)
  pair = rc.CNNDCN(spec).init(key, method="draw")["params"]
  enc = rc.Encoder(spec).init(key, method="draw")["params"]
  dec = rc.Decoder(spec).init(key, method="draw")["params"]
  assert list(enc) == ["conv1_1", "conv1_2", "conv2_1", "conv2_2"]
  assert set(dec) == {"deconv2_2", "deconv2_1", "deconv1_2", "deconv1_1"}
  for name, p in {**enc, **dec}.items():
    np.testing.assert_array_equal(p["kernel"], pair[name]["kernel"])
  x = jnp.asarray(positive_images(1, 16))
  model = rc.CNNDCN(spec, policy=DIRECT)
  z = rc.Encoder(spec, policy=DIRECT).apply({"params": enc}, x)
  y = rc.Decoder(spec, policy=DIRECT).apply({"params": dec}, z, (16, 16))
  np.testing.assert_allclose(y, model.apply({"params": pair}, x), rtol=1e-6)
  msra = rc.parse_distribution("msra").initializer()
  trained = rc.Decoder(spec, msra, use_bias=True).init(
      key, method="draw")["params"]
  assert all(set(p) == {"kernel", "bias"} for p in trained.values())


def test_features_are_every_layer_in_order():
  spec = rc.make_spec("vgg16", "pool1", width=4, output="mean")
  model = rc.CNNDCN(spec, policy=DIRECT)
  x = jnp.asarray(positive_images(2, 12))
  variables = model.init(jax.random.PRNGKey(1), method="draw")
  out, feats = rc.apply_with_features(model, variables, x)
  assert list(feats) == [layer.name for layer in spec.layers]
  np.testing.assert_array_equal(feats[spec.layers[-1].name], out)
  assert feats["pool1"].shape == (2, 6, 6, 4)
  # the feature of a conv is after its activation
  assert float(feats["conv1_1"].min()) >= 0
  assert isinstance(spec.layers[0], Conv)


@pytest.mark.parametrize("name", ["gaussian:0.5", "uniform:0.3", "logistic:0.2",
                                  "laplace:0.4", "msra"])
def test_initializers_have_the_distributions_std(name):
  dist = rc.parse_distribution(name)
  shape = (3, 3, 64, 256)
  w = dist.initializer()(jax.random.PRNGKey(0), shape)
  assert w.shape == shape and w.dtype == jnp.float32
  want = dist.std(3 * 3 * 64)
  # 147,456 draws: the sample std is within 1.5% of the true one.
  assert abs(float(jnp.std(w)) / want - 1) < 0.015
  assert abs(float(jnp.mean(w))) < 0.02 * want


def test_bad_inputs_are_clear_errors():
  spec = rc.make_spec("vgg16", "pool1", width=4)
  model = rc.CNNDCN(spec)
  with pytest.raises(ValueError, match="batch, H, W, C"):
    model.init(jax.random.PRNGKey(0), jnp.zeros((8, 8, 3)))
  with pytest.raises(ValueError, match="channels"):
    model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))
  dec = rc.Decoder(spec)
  with pytest.raises(ValueError, match="feature shape"):
    dec.init(jax.random.PRNGKey(0), jnp.zeros((1, 3, 3, 4)), (16, 16))
  # The distribution's text is parsed at the edge, not by the module.
  with pytest.raises(TypeError, match="parse_distribution"):
    rc.CNNDCN(spec, "gaussian:0.015").init(jax.random.PRNGKey(0),
                                           method="draw")
