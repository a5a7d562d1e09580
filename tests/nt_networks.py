"""The library's spec of each network in tests/data/nt_kernels.npz (the
neural-tangents fixtures made by tests/data/make_nt_kernels.py), for the
peer test (tests/test_kernels.py) and benchmarks/kernels.py."""

from randconv.spec import Conv, NetSpec, Pool, make_spec

HEAD = (Conv("c1", 3, 8, 3, 1, 1), Conv("c2", 8, 8, 3, 1, 1))


def nt_specs() -> dict[str, NetSpec]:
  return {
      "conv_relu": NetSpec("custom", "c2", HEAD, ()),
      "conv_relu_avgpool": NetSpec("custom", "p", HEAD + (
          Pool("p", "avg", 2, 2),), ()),
      "vgg16_pool1_avg": make_spec("vgg16", "pool1", pooling="avg",
                                   output="conv", width=8),
  }
