"""One clock for a whole invocation.

``randconv reproduce`` (or any single command) makes one :class:`Deadline`
from ``--time-budget`` or ``RANDCONV_TIME_BUDGET_S`` when it starts, and
passes it down; Section 3 checks it between training steps, Section 4
between cells, the theory checks between Monte Carlo widths. Work stopped by
it is written as far as it went, reported ``partial``, and resumes when the
same command runs again.

With many processes (:mod:`randconv.distributed`) the budget and every
``expired`` answer are process 0's, so all processes stop at the same
point.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadline:
  """A point on the monotonic clock (``at``; None: no limit)."""

  at: float | None = None

  @classmethod
  def after(cls, seconds: float | None) -> Deadline:
    """A deadline ``seconds`` from now (None: none); process 0's
    ``seconds`` for every process."""
    from randconv import distributed
    seconds = distributed.broadcast_json(seconds)
    if seconds is None:
      return cls(None)
    return cls(time.monotonic() + float(seconds))

  def expired(self) -> bool:
    """Whether the time is up (process 0's answer for every process)."""
    if self.at is None:
      return False
    from randconv import distributed
    return distributed.agree(time.monotonic() >= self.at)

  def left(self) -> float | None:
    """Seconds left (never negative), or None without a limit."""
    if self.at is None:
      return None
    return max(0.0, self.at - time.monotonic())

  def share(self, parts: int) -> Deadline:
    """An equal share of what is left, for the first of ``parts`` jobs."""
    if self.at is None:
      return self
    return Deadline.after(self.left() / max(1, parts))


NO_DEADLINE = Deadline(None)

__all__ = ["Deadline", "NO_DEADLINE"]
