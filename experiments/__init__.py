"""The paper's experiments; importing this package registers them."""

from experiments import section4  # noqa: F401  (S4a-S4f)
from experiments import section3  # noqa: F401  (S3a-S3g)
