"""Makes tests/data/nt_kernels.npz: NNGP kernels computed by neural-tangents,
the field's reference, for the peer test of ``randconv.kernel_fn``
(tests/test_kernels.py).

neural-tangents 0.6.5 pins jax 0.4.x and pulls in TensorFlow, so it runs in
a venv of its own; ``bash tests/data/make_nt_kernels.sh`` builds it and runs
this script there. It never imports randconv.

Three networks on two 8x8 RGB images (seeded normal pixels, saved beside the
kernels), all 3x3 convs with ReLU:

* ``conv_relu``: conv-ReLU-conv-ReLU;
* ``conv_relu_avgpool``: the same, then 2x2 average pooling;
* ``vgg16_pool1_avg``: VGG16's Conv1-DeConv1 CNN-DCN (conv1_1, conv1_2,
  2x2 average pool, unpool, deconv1_2 with ReLU, deconv1_1 without). The
  unpool and the stride-1 deconv after it are one stride-2 transposed conv
  in neural-tangents ('VALID', 9x9), whose rows and columns 1..8 are the
  library's 8x8 map (one pixel of offset between the two conventions): the
  script crops the kernel object there, then runs ReLU and the last layer.

Saved layout: ``[n, H*W, n, H*W]`` float64 (image, row-major pixel), the
library's. neural-tangents keeps the spatial axes of a kernel reversed
after a conv (``Kernel.is_reversed``); the script reads them by size from a
non-square probe, not by assumption.
"""

import argparse
import functools
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from neural_tangents import stax  # noqa: E402

WIDTH = 8  # channels of the finite nets; the kernel does not depend on it


def conv(c=WIDTH):
  return stax.Conv(c, (3, 3), (1, 1), "SAME", parameterization="standard")


def networks():
  """name -> (first part, None or (crop, second part))."""
  head = [conv(), stax.Relu(), conv(), stax.Relu()]
  return {
      "conv_relu": (stax.serial(*head), None),
      "conv_relu_avgpool": (stax.serial(*head, stax.AvgPool((2, 2),
                                                            (2, 2))), None),
      "vgg16_pool1_avg": (
          stax.serial(*head, stax.AvgPool((2, 2), (2, 2)),
                      stax.ConvTranspose(WIDTH, (3, 3), (2, 2), "VALID",
                                         parameterization="standard")),
          (1, stax.serial(stax.Relu(), conv(3)))),
  }


def _crop(kernel, start: int):
  """A neural-tangents Kernel without the first ``start`` rows and columns
  of every spatial axis (nngp, ntk and the diagonal covariances)."""
  def cut(a, n_batch):
    return a[(slice(None),) * n_batch + (slice(start, None),) * (
        a.ndim - n_batch)]
  kw = {"nngp": cut(kernel.nngp, 2), "cov1": cut(kernel.cov1, 1)}
  for name, batch in (("ntk", 2), ("cov2", 1)):
    if getattr(kernel, name) is not None and np.ndim(getattr(kernel, name)):
      kw[name] = cut(getattr(kernel, name), batch)
  return kernel.replace(**kw)


def nt_kernel(name: str, x: np.ndarray) -> np.ndarray:
  """The nngp kernel of network ``name`` over images x [n, H, W, C], in
  neural-tangents' layout [n, n, s1, s1, s2, s2]."""
  first, rest = networks()[name]
  if rest is None:
    return first[2](x, None, "nngp", diagonal_spatial=False)
  start, second = rest
  k = first[2](x, None, None, diagonal_spatial=False)
  return second[2](_crop(k, start), None, "nngp")


def to_library_layout(name: str, nngp: np.ndarray, x: np.ndarray
                      ) -> np.ndarray:
  """[n, n, s1, s1, s2, s2] -> [n, P, n, P], with (s1, s2) either (H, W)
  or (W, H): which one is read from a non-square probe of the network."""
  probe = np.ones((1, 8, 10, x.shape[-1]))
  pk = nt_kernel(name, probe)
  rows_first = pk.shape[2] < pk.shape[4]  # H < W in the probe
  perm = (0, 2, 4, 1, 3, 5) if rows_first else (0, 4, 2, 1, 5, 3)
  k = np.asarray(nngp).transpose(perm)
  n, h, w = k.shape[:3]
  return k.reshape(n, h * w, n, h * w)


def timed_kernel(name: str, x: np.ndarray, repeats: int = 3):
  """benchmarks/kernels.py's neural-tangents side: network ``name``'s nngp
  kernel over x under ``jax.jit`` (neural-tangents' advice), one warm-up
  call (the compile) and then ``repeats`` timed calls.

  Returns:
    (the seconds of each timed call, the kernel in the library's layout).
  """
  f = jax.jit(functools.partial(nt_kernel, name))
  x = jax.device_put(np.asarray(x, np.float64))
  f(x).block_until_ready()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    k = f(x).block_until_ready()
    times.append(time.perf_counter() - t0)
  return times, to_library_layout(name, np.asarray(k), x)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--out", default="tests/data/nt_kernels.npz")
  a = ap.parse_args()
  x = np.random.default_rng(20261206).standard_normal((2, 8, 8, 3))
  out = {"x": x}
  for name in networks():
    t0 = time.time()
    out[name] = to_library_layout(name, nt_kernel(name, x), x)
    print(f"{name}: {out[name].shape} in {time.time() - t0:.1f} s")
  np.savez_compressed(a.out, **out)
  print(f"wrote {a.out}")


if __name__ == "__main__":
  main()
