"""One run = one workdir: ``config.json``, then ``metrics.jsonl`` cell by
cell, then figures (STYLE 5). A run started again in the same workdir skips
the cells already written, so an interrupted run loses at most the cell in
flight.

Each line of ``metrics.jsonl`` is one finished cell: a JSON object with a
``cell`` key (e.g. ``"conv/w64/n3"``) and its numbers. Cells are appended
and flushed one write at a time; a line cut short by a kill is dropped when
the log is opened again.

``RANDCONV_TIME_BUDGET_S``: when set, :meth:`CellLog.out_of_time` turns true
once that many seconds have passed since this module was imported (the
start of the process, in practice), and experiments stop cleanly between
cells, report what they have, and resume on the next run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from randconv.errors import RandconvError

TIME_BUDGET_ENV = "RANDCONV_TIME_BUDGET_S"
_START = time.monotonic()


class WorkdirError(RandconvError):
  """The workdir holds a run made with another configuration."""


def time_budget_s() -> float | None:
  text = os.environ.get(TIME_BUDGET_ENV)
  if not text:
    return None
  try:
    value = float(text)
  except ValueError:
    raise RandconvError(f"{TIME_BUDGET_ENV}={text!r} is not a number of "
                        "seconds") from None
  return value


def elapsed_s() -> float:
  return time.monotonic() - _START


class CellLog:
  """The ``config.json`` and ``metrics.jsonl`` of one experiment workdir.

  Args:
    workdir: the experiment's folder (created).
    config: everything that decides the numbers; a workdir whose
      ``config.json`` differs is refused rather than mixed.
  """

  def __init__(self, workdir: str | os.PathLike, config: dict):
    self.workdir = Path(workdir)
    self.workdir.mkdir(parents=True, exist_ok=True)
    self.config = json.loads(json.dumps(config))
    cfg = self.workdir / "config.json"
    if cfg.exists():
      old = json.loads(cfg.read_text())
      if old != self.config:
        changed = sorted(k for k in set(old) | set(self.config)
                         if old.get(k) != self.config.get(k))
        raise WorkdirError(
            f"{self.workdir} holds a run with another configuration "
            f"({', '.join(changed)} differ); use another --out")
    else:
      cfg.write_text(json.dumps(self.config, indent=1) + "\n")
    self.path = self.workdir / "metrics.jsonl"
    self.cells: dict[str, dict] = {}
    self._load()

  def _load(self) -> None:
    if not self.path.exists():
      return
    raw = self.path.read_bytes()
    good = 0
    for line in raw.splitlines(keepends=True):
      if not line.endswith(b"\n"):
        break  # cut short by a kill: dropped, recomputed
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        break
      self.cells[record["cell"]] = record
      good += len(line)
    if good < len(raw):
      with open(self.path, "r+b") as f:
        f.truncate(good)

  def has(self, cell: str) -> bool:
    return cell in self.cells

  def get(self, cell: str) -> dict:
    return self.cells[cell]

  def add(self, records: list[dict]) -> None:
    """Appends finished cells (each with a ``cell`` key) in one write."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    with open(self.path, "a") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    for r in records:
      self.cells[r["cell"]] = r

  def out_of_time(self) -> bool:
    budget = time_budget_s()
    return budget is not None and elapsed_s() >= budget


__all__ = ["CellLog", "WorkdirError", "time_budget_s", "TIME_BUDGET_ENV"]
