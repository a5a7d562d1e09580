"""Transitional: the registry moved to :mod:`randconv.repro.registry`.

Only ``experiments/section4.py`` still imports this path: it is being cut
into a package on another branch (issue 23, point 3). When that branch
lands, point its imports at :mod:`randconv.repro.registry` and delete this
module and its exemption in tests/test_layout.py (a library module may
not import the harness).
"""

from randconv.repro.registry import (  # noqa: F401 - re-exported
  ClaimResult,
  Table,
  claim_text,
  preset_config,
)
