"""Progress on stderr for every stage that takes more than a moment:
tqdm bars over cells, nets, Monte Carlo widths and training steps, and a
few one-line notes (what is being prepared, and where).

Quiet under ``--json`` (the command line runs the command inside
:func:`quieted`) and on every process of a job but process 0. A bar shows
from its stage's start (tqdm's ``delay`` would hide a stage of one long
step until its end); a stage a resumed run skips opens none. Bars are
left off the screen when done (``leave=False``): the results are what
stays.
"""

from __future__ import annotations

import contextlib
import sys

from randconv import distributed

_QUIET = [False]


@contextlib.contextmanager
def quieted(on: bool = True):
  """No bars and no notes inside the block when ``on``."""
  before = _QUIET[0]
  _QUIET[0] = before or bool(on)
  try:
    yield
  finally:
    _QUIET[0] = before


def quiet() -> bool:
  """Whether progress is off here (``--json``, or not process 0)."""
  return _QUIET[0] or not distributed.is_main()


def bar(total: int | None = None, desc: str | None = None, unit: str = "it",
        *, enabled: bool = True, **kw):
  """A tqdm bar on stderr (``kw`` go to tqdm: ``initial``, ``iterable``,
  ...), disabled when :func:`quiet` or not ``enabled``."""
  from tqdm.auto import tqdm
  kw.setdefault("leave", False)
  return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr,
              dynamic_ncols=True, disable=quiet() or not enabled, **kw)


def iterate(items, desc: str, unit: str = "it"):
  """``items`` (a sized iterable), with a bar advanced after each one."""
  items = list(items)
  return bar(len(items), desc, unit, iterable=items)


def note(text: str) -> None:
  """One line on stderr, unless :func:`quiet`."""
  if not quiet():
    print(text, file=sys.stderr, flush=True)


__all__ = ["bar", "iterate", "note", "quiet", "quieted"]
