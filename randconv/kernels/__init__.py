"""Infinite-width kernels of the library's networks (the NNGP view).

As the number of channels of every hidden layer grows, a random network of
this library becomes a Gaussian process over its inputs (Neal 1996; for
convolutional networks Novak et al. 2019, arXiv 1810.05148, and
Garriga-Alonso et al. 2019, arXiv 1808.05587). Its law is carried by one
deterministic kernel per layer, ``k(a p, b q) = lim (1/N) sum_n f_n(a, p)
f_n(b, q)`` over images a, b and pixels p, q, which each layer maps to the
next one's:

* a conv (or transposed conv): ``S(a o, b o') = sum_t k(a i_t(o), b
  i_t(o'))``, the same tap t on both sides since different taps have
  independent weights (:func:`conv`); given the layer below, every channel
  of the pre-activation is GP(0, S);
* ReLU: the arc-cosine map of Cho & Saul (2009), :func:`arccos_relu`;
* average pooling, unpooling and cropping are linear: ``A k A^T``
  (:func:`avg_pool`, :func:`unpool`, :func:`crop`);
* max and L2 pooling of ReLU maps have no closed form: the kernel after
  them is ``E[pool(relu(z)) pool(relu(z))^T]`` for z ~ GP(0, S), estimated
  from joint samples of z over every image and pixel, with its standard
  error (:func:`sampled_pool`);
* the channel mean of ReLU maps converges to the deterministic image
  ``C1 sqrt(S(p, p))`` (:func:`channel_mean`);
* a conv without activation at the output is exactly GP(0, S).

Every linear map here acts on each spatial axis separately, one [n_out,
n_in] matrix per axis and tap (:func:`axis_taps`), on a kernel held as
``[N, H, W, N, H, W]`` float64 over all the images at once, so the blocks
between images are as exact as the ones within an image.

Scale (**choice**): a conv's weights are taken with variance one over its
input channels (not over channels times taps), so the kernel is that of the
network as written up to one positive factor for all images together, the
same for any weight scale and width (the networks are positively
homogeneous). neural-tangents' standard parameterisation differs from it by
that factor (it divides by the taps too).

:func:`kernel_fn` is the entry point:
``randconv.kernel_fn(spec)(x1, x2=None, layer=None)``.

References:
  Y. Cho and L. K. Saul. Kernel methods for deep learning. NIPS 2009.
  R. Novak et al. Bayesian deep convolutional networks with many channels
  are Gaussian processes. ICLR 2019, arXiv 1810.05148.
  A. Garriga-Alonso, C. E. Rasmussen and L. Aitchison. Deep convolutional
  networks as shallow Gaussian processes. ICLR 2019, arXiv 1808.05587.
"""

from randconv.kernels.maps import (C1, KernelError, arccos_relu, avg_pool,
                                   axis_taps, channel_mean, conv, crop,
                                   linear, max_full_pixels, relu, unpool)
from randconv.kernels.pools import (POOL_SAMPLES, WINDOW_SAMPLES, psd_root,
                                    sampled_pool, window_pool_diag)
from randconv.kernels.recursion import (Walk, check_layers, check_size,
                                        kernel_fn, steps, walk)

__all__ = ["C1", "KernelError", "POOL_SAMPLES", "WINDOW_SAMPLES", "Walk",
           "arccos_relu", "avg_pool", "axis_taps", "channel_mean",
           "check_layers", "check_size", "conv", "crop", "kernel_fn",
           "linear", "max_full_pixels", "psd_root", "relu", "sampled_pool",
           "steps", "unpool", "walk", "window_pool_diag"]
