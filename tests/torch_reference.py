"""An independent PyTorch forward pass of a randconv spec, for tests only.

It walks the same layer records with torch.nn.functional: conv2d (groups),
local_response_norm, max/avg pooling in ceil or floor mode, and for the
decoder conv_transpose2d with ``output_padding`` (the kernel flipped and its
axes swapped, per the convention of ``randconv.ops.conv_transpose2d``),
unpooling by index assignment, and a crop.

``params`` are the Flax params of :class:`randconv.modules.CNNDCN`
(``{layer: {"kernel": HWIO[, "bias": [O]]}}``), or the variables holding
them (``{"params": ...}``).
"""

from __future__ import annotations

import numpy as np

from randconv.spec import (ChannelMean, Conv, Crop, LRN, NetSpec, Pool,
                           Unpool)


def torch_forward(params, spec: NetSpec, x: np.ndarray, dtype="float32",
                  stop: str | None = None) -> dict[str, np.ndarray]:
  """Returns every layer's output (NHWC numpy) up to ``stop``."""
  import torch
  import torch.nn.functional as F

  params = params.get("params", params)
  tdtype = getattr(torch, dtype)
  h = torch.from_numpy(np.asarray(x, np.float64)).to(tdtype).permute(0, 3, 1, 2)
  image_hw = x.shape[1:3]
  enc, dec = spec.shapes(*image_hw)
  sizes = {s.name: (s.height, s.width) for s in enc + dec}
  out = {}
  for layer in spec.layers:
    if isinstance(layer, Conv):
      w = torch.from_numpy(np.asarray(params[layer.name]["kernel"],
                                      np.float64))
      w = w.to(tdtype)
      if layer.transpose:
        # randconv's kernel correlates the dilated input; PyTorch's
        # transposed-conv weight is [in, out, k, k] and flipped.
        wt = w.flip(0, 1).permute(2, 3, 0, 1)
        full = [(n - 1) * layer.stride - 2 * layer.padding + layer.kernel
                for n in h.shape[2:]]
        target = sizes[layer.name]
        op = [t - f for t, f in zip(target, full)]
        h = F.conv_transpose2d(h, wt, stride=layer.stride,
                               padding=layer.padding, output_padding=op)
      else:
        wt = w.permute(3, 2, 0, 1)
        h = F.conv2d(h, wt, stride=layer.stride, padding=layer.padding,
                     groups=layer.groups)
      if "bias" in params[layer.name]:
        h = h + torch.from_numpy(np.asarray(params[layer.name]["bias"])).to(
            tdtype)[None, :, None, None]
      if layer.activation == "relu":
        h = F.relu(h)
      elif layer.activation == "leaky_relu":
        h = F.leaky_relu(h, 0.2)
    elif isinstance(layer, Pool):
      args = dict(kernel_size=layer.window, stride=layer.stride,
                  ceil_mode=layer.ceil_mode)
      if layer.pooling == "max":
        h = F.max_pool2d(h, **args)
      elif layer.pooling == "avg":
        h = F.avg_pool2d(h, **args)
      else:
        h = F.avg_pool2d(h * h, divisor_override=1, **args).sqrt()
    elif isinstance(layer, LRN):
      h = F.local_response_norm(h, layer.size, layer.alpha, layer.beta,
                                layer.k)
    elif isinstance(layer, Unpool):
      n, c, hh, ww = h.shape
      th, tw = sizes[layer.name]
      u = torch.zeros(n, c, th, tw, dtype=h.dtype)
      u[:, :, 0:hh * layer.stride:layer.stride,
        0:ww * layer.stride:layer.stride] = h
      h = u
    elif isinstance(layer, ChannelMean):
      h = h.mean(dim=1, keepdim=True)
    elif isinstance(layer, Crop):
      h = h[:, :, :image_hw[0], :image_hw[1]]
    out[layer.name] = h.permute(0, 2, 3, 1).numpy()
    if layer.name == stop:
      break
  return out
