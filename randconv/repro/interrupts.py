"""Ctrl-C and SIGTERM: every command ends with status 130 (SIGINT) or 143
(SIGTERM), one line on stderr, what it wrote resumable, and no crash.

Why not Python's defaults:

* a ``KeyboardInterrupt`` that ends ``main`` leads to the interpreter's
  teardown, which frees JAX's client and its thread pools while XLA may
  still be compiling a program on one of them (JAX compiles off the main
  thread); the compile then calls into the freed client and the process
  segfaults (status 139 in half of the Ctrl-Cs of a quick run);
* a ``KeyboardInterrupt`` raised while Python runs a callback (JAX's
  ``gc`` callback runs at every collection) is printed as "Exception
  ignored" and dropped: the Ctrl-C is lost and the run goes on;
* SIGTERM kills the process without a word (status -15).

So, while a command runs (:func:`handled`), SIGINT and SIGTERM raise
:class:`Interrupted` (a ``KeyboardInterrupt``: ``finally`` blocks still
run, a checkpoint manager is closed); the command line catches it and
calls :func:`leave`, which prints the line, flushes and ends the process
with ``os._exit``, skipping the teardown. A signal whose exception was
dropped ends the process the same way when the command is done, or
:data:`GRACE_S` later by a timer, whichever comes first (the timer also
ends a main thread held in a long computation); a second signal ends it at
once. Ending without the teardown is safe because everything
the project writes survives a kill (atomic renames; JSON lines whose cut
last line is dropped; orbax and tfds write to temporary folders first):
only the unit of work in progress is lost, and the same command resumes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

GRACE_S = 10.0  # seconds from a signal to the forced end
NAMES = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated (SIGTERM)"}

_STATE: dict = {"signum": None}
_LOCK = threading.RLock()


class Interrupted(KeyboardInterrupt):
  """A SIGINT or SIGTERM reached the command; ``code`` is its exit
  status (128 + the signal's number)."""

  def __init__(self, signum: int):
    super().__init__(NAMES.get(signum, f"signal {signum}"))
    self.signum = signum
    self.code = 128 + signum


def _on_signal(signum, frame) -> None:
  del frame
  if _STATE["signum"] is not None:  # a second signal: no more waiting
    leave(_STATE["signum"])
  _STATE["signum"] = signum
  threading.Thread(target=_later, args=(signum,), daemon=True,
                   name="randconv-interrupt").start()
  raise Interrupted(signum)


def _later(signum: int) -> None:
  time.sleep(GRACE_S)
  leave(signum)


@contextlib.contextmanager
def handled():
  """SIGINT and SIGTERM raise :class:`Interrupted` inside the block (only
  in the main thread, where Python runs signal handlers), and the block
  ends the process (:func:`leave`) when one came, even if the exception
  was dropped and the work went on to its end; else the previous handlers
  come back after it."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  before = {s: signal.signal(s, _on_signal) for s in NAMES}
  try:
    yield
  finally:
    if _STATE["signum"] is not None:
      leave(_STATE["signum"])
    for s, h in before.items():
      signal.signal(s, h)


def _bar_open() -> bool:
  """Whether a tqdm bar may hold stderr's current line."""
  tqdm = sys.modules.get("tqdm")
  try:
    return any(not getattr(b, "disable", True)
               for b in list(getattr(tqdm.tqdm, "_instances", ())))
  except Exception:  # noqa: BLE001 - changed while read: assume a bar
    return tqdm is not None


def leave(signum: int):
  """Prints ``randconv: interrupted; ...`` (once), flushes stdout, stderr
  and the log handlers, and ends the process with ``128 + signum``
  without the interpreter's teardown (module docstring). Never returns."""
  with _LOCK:
    if not _STATE.get("said"):
      _STATE["said"] = True
      lead = "\n" if _bar_open() else ""
      with contextlib.suppress(Exception):
        sys.stderr.write(f"{lead}randconv: {NAMES.get(signum, 'stopped')}; "
                         "run the same command again to resume\n")
    for stream in (sys.stdout, sys.stderr):
      with contextlib.suppress(Exception):
        stream.flush()
    with contextlib.suppress(Exception):
      import logging
      for h in logging.getLogger().handlers:
        h.flush()
    os._exit(128 + signum)


__all__ = ["GRACE_S", "Interrupted", "handled", "leave"]
