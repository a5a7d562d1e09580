"""randconv: random CNN-DCN networks of He et al., *Randomness in
Deconvolutional Networks for Visual Representation* (arXiv 1704.00330)."""

from randconv.distributions import Distribution, parse_distribution
from randconv.engine import net_fn, run_keys, run_nets, seed_keys
from randconv.modules import CNNDCN, Decoder, Encoder, apply_with_features
from randconv.policy import ConvPolicy
from randconv.kernels import KernelError, kernel_fn
from randconv.spec import NetSpec, SpecError, make_spec

__version__ = "0.1.0"

__all__ = ["CNNDCN", "ConvPolicy", "Decoder", "Distribution", "Encoder",
           "KernelError", "NetSpec", "SpecError", "apply_with_features",
           "kernel_fn", "make_spec",
           "net_fn", "parse_distribution", "run_keys", "run_nets",
           "seed_keys"]
