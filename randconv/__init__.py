"""randconv: random CNN-DCN networks of He et al., *Randomness in
Deconvolutional Networks for Visual Representation* (arXiv 1704.00330)."""

from randconv.nets import (Distribution, apply, decode, encode, init,
                           output_fn, parse_distribution)
from randconv.spec import NetSpec, SpecError, make_spec

__version__ = "0.1.0"

__all__ = ["Distribution", "NetSpec", "SpecError", "apply", "decode", "encode",
           "init", "make_spec", "output_fn", "parse_distribution"]
