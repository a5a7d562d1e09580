"""The paper's experiments; importing this package registers them."""

from experiments import section4  # noqa: F401  (S4a-S4f)
