"""randconv's forward pass against an independent PyTorch forward pass with the
same weights (docs/design.md §1-2): VGG16 ConvK, both AlexNets, and the decoders."""

import jax
import numpy as np
import pytest

import randconv as rc
from conftest import positive_images
from randconv.distributions import parse_distribution
from randconv.modules import CNNDCN, apply_with_features
from randconv.policy import DIRECT
from torch_reference import torch_forward


def rel_err(a, b):
  return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-30))


def draw(key, spec, distribution="msra", use_bias=False):
  """The params of a random ``spec`` (no forward pass)."""
  init = parse_distribution(distribution).initializer()
  return CNNDCN(spec, init, use_bias=use_bias).init(
      key, method="draw")["params"]


@pytest.mark.parametrize("arch,size", [("vgg16", 32), ("alexnet", 67),
                                       ("alexnet_torchvision", 67)])
def test_conv_k_features_equal_torch(torch, arch, size):
  # Paper channel counts; one spec to conv5 holds every ConvK.
  spec = rc.make_spec(arch, "conv5")
  params = draw(jax.random.PRNGKey(1), spec)
  x = positive_images(2, size)
  _, feats = apply_with_features(CNNDCN(spec, policy=DIRECT),
                                 {"params": params}, x, method="encode")
  ref = torch_forward(params, spec, x, stop=spec.encoder[-1].name)
  for k in range(1, 6):
    name = rc.spec.conv_k_name(arch, k)
    assert feats[name].shape == ref[name].shape
    assert rel_err(np.asarray(feats[name]), ref[name]) < 1e-4, name


@pytest.mark.parametrize("arch,layer,size,kw", [
    ("vgg16", "conv3", 27, {}),                 # ceil pooling, crop
    ("vgg16", "conv2", 20, {"output": "mean"}),
    ("vgg16", "conv2", 24, {"pooling": "l2"}),
    ("vgg16", "conv2", 21, {"pooling": "avg"}),
    ("alexnet", "conv2", 67, {}),               # stride-4 deconv, LRN
    ("alexnet_torchvision", "conv2", 64, {}),   # output padding
])
def test_cnn_dcn_output_equals_torch(torch, arch, layer, size, kw):
  spec = rc.make_spec(arch, layer, width=8, **kw)
  params = draw(jax.random.PRNGKey(2), spec)
  x = positive_images(2, size, seed=3)
  out, feats = apply_with_features(CNNDCN(spec, policy=DIRECT),
                                   {"params": params}, x)
  ref = torch_forward(params, spec, x)
  assert out.shape == (2, size, size, spec.out_channels)
  for name in ref:
    assert rel_err(np.asarray(feats[name]), ref[name]) < 1e-4, name


def test_leaky_decoder_and_biases_equal_torch(torch):
  spec = rc.make_spec("vgg16", "conv2", width=8,
                      decoder_activation="leaky_relu")
  params = dict(draw(jax.random.PRNGKey(3), spec, use_bias=True))
  r = np.random.default_rng(4)
  for layer in spec.convs:
    params[layer.name] = dict(
        params[layer.name],
        bias=r.standard_normal(layer.out_channels).astype(np.float32) * 0.1)
  x = positive_images(1, 16)
  out = CNNDCN(spec, use_bias=True, policy=DIRECT).apply({"params": params},
                                                         x)
  ref = torch_forward(params, spec, x)
  assert rel_err(np.asarray(out), ref["crop"]) < 1e-4
