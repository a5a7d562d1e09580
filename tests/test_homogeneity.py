"""docs/design.md §4: the rescaled float32 forward pass equals the exact (float64,
unscaled, PyTorch) one up to a positive factor per image, and stays finite
where the unscaled float32 one does not."""

import jax
import numpy as np
import pytest

import randconv as rc
from conftest import positive_images
from randconv.policy import DIRECT
from torch_reference import torch_forward


def direction(a):
  a = np.asarray(a, np.float64).reshape(a.shape[0], -1)
  return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.mark.parametrize("arch,layer,size", [("vgg16", "conv5", 32),
                                             ("alexnet_torchvision", "conv5", 64)])
@pytest.mark.parametrize("sigma", [1e-3, 1.0])
def test_rescaled_equals_float64_up_to_positive_factor(torch, arch, layer,
                                                       size, sigma):
  spec = rc.make_spec(arch, layer, width=16)
  init = rc.parse_distribution(f"gaussian:{sigma}").initializer()
  variables = rc.CNNDCN(spec, init).init(
      jax.random.PRNGKey(0), method="draw")
  x = positive_images(2, size)
  out = rc.CNNDCN(spec, rescale=True, policy=DIRECT).apply(variables, x)
  exact = torch_forward(variables["params"], spec, x,
                        dtype="float64")["crop"]
  assert np.all(np.isfinite(out))
  # Equal directions per image means equal up to a positive factor.
  cos = np.sum(direction(out) * direction(exact), axis=1)
  assert np.all(cos > 1 - 1e-6), cos
  if sigma == 1e-3 and arch == "vgg16":
    # Without the rescaling, float32 underflows for this 26-conv net: the
    # exact output is far below float32's smallest normal number.
    assert np.abs(exact).max() < np.finfo(np.float32).tiny
    plain = rc.CNNDCN(spec, policy=DIRECT).apply(variables, x)
    assert not np.any(plain)


def test_wide_deep_net_every_layer_stays_finite():
  # Width 512 through all 25 conv layers of Conv5-DeConv5 (mean output), on
  # a small image, at sigma 1 and 1e-3: one draw, scaled, two passes.
  # benchmarks/float_range.py runs every arch and layer at width 2048.
  spec = rc.make_spec("vgg16", "conv5", width=512, output="mean")

  model = rc.CNNDCN(spec, rc.parse_distribution("gaussian:1").initializer(),
                    rescale=True, policy=DIRECT)

  @jax.jit
  def f(key, x):
    unit = model.init(key, method="draw")
    return [rc.apply_with_features(
        model, jax.tree_util.tree_map(lambda w: sigma * w, unit), x)[1]
            for sigma in (1e-3, 1.0)]

  for feats in f(jax.random.PRNGKey(0), positive_images(1, 8)):
    for name, v in feats.items():
      v = np.asarray(v)
      assert np.all(np.isfinite(v)), name
      assert np.abs(v).max() > 0, name


def test_lrn_cannot_be_rescaled():
  spec = rc.make_spec("alexnet", "conv2", width=8)
  model = rc.CNNDCN(spec, rescale=True)
  with pytest.raises(rc.SpecError, match="LRN"):
    model.init(jax.random.PRNGKey(0), positive_images(1, 67))
