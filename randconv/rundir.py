"""One run folder for every experiment: ``config.json``, an append-only
``metrics.jsonl`` and atomic summaries.

Section 3's trainings, Section 4's sweeps and the theory checks all keep
their results in a :class:`RunDir`:

* ``config.json`` is written when the folder is new. Opened again, the
  stored config is compared with the new one, field by field; a field named
  in ``may_differ`` (say, the conv path, which changes only float rounding
  and speed) may differ, any other difference is refused with a
  :class:`WorkdirError` naming the fields, never mixed or thrown away.
* ``metrics.jsonl`` holds one JSON object per finished unit of work
  (a cell, a step, a width), appended and flushed one write at a time. A
  line cut short by a kill is dropped when the folder is opened again, and
  its work is done again.
* :meth:`RunDir.write_json` writes a summary atomically (a temporary file,
  then a rename), so a reader never sees half a file.

With many processes (:mod:`randconv.distributed`) only process 0 touches
the folder: it opens it, and the others receive what it found (the records,
or the error); every process then keeps the same records in memory, and
only process 0 writes them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from randconv import distributed
from randconv.deadline import NO_DEADLINE, Deadline
from randconv.errors import RandconvError

CONFIG = "config.json"
METRICS = "metrics.jsonl"


class WorkdirError(RandconvError):
  """The folder holds a run made with another configuration."""


def canonical(obj) -> object:
  """``obj`` as JSON would give it back (tuples become lists, ...)."""
  return json.loads(json.dumps(obj, default=_default))


def _default(o):
  if hasattr(o, "item"):  # numpy scalars
    return o.item()
  if hasattr(o, "tolist"):
    return o.tolist()
  return str(o)


def write_atomic(path: Path, text: str) -> None:
  """Writes ``text`` to ``path`` through a temporary file and a rename."""
  path = Path(path)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  tmp.replace(path)


def differing_fields(old: dict, new: dict, may_differ: Iterable[str] = ()
                     ) -> list[str]:
  """The top-level fields whose values differ, less those in
  ``may_differ``."""
  skip = set(may_differ)
  return sorted(k for k in set(old) | set(new)
                if k not in skip and old.get(k) != new.get(k))


def unwritable(folder: Path) -> str | None:
  """Why files cannot be written in ``folder`` (made first if missing), or
  None. Probes by making and removing an empty folder in the nearest
  existing ancestor, so it writes nothing that stays."""
  if folder.exists() and not folder.is_dir():
    return f"{folder} is a file, not a folder"
  base = folder
  while not base.exists() and base != base.parent:
    base = base.parent
  if not base.is_dir():
    return f"{base} is a file, not a folder"
  try:
    os.rmdir(tempfile.mkdtemp(prefix=".randconv-probe-", dir=base))
  except OSError as e:
    return f"cannot write in {base} ({e.strerror or e})"
  return None


def read_jsonl(path: Path, *, repair: bool = False) -> list[dict]:
  """The records of a JSON-lines file. A last line cut short (no newline,
  or not JSON) and anything after it is dropped; ``repair`` also truncates
  the file to the good part."""
  path = Path(path)
  if not path.exists():
    return []
  raw = path.read_bytes()
  records, good = [], 0
  for line in raw.splitlines(keepends=True):
    if not line.endswith(b"\n"):
      break
    if line.strip():
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        break
    good += len(line)
  if repair and good < len(raw):
    with open(path, "r+b") as f:
      f.truncate(good)
  return records


class RunDir:
  """The folder of one run.

  Args:
    path: the folder (created with its parents).
    config: everything that decides the numbers (JSON-able; a dataclass's
      ``asdict``).
    may_differ: config fields that may change between sessions of the same
      run; ``config.json`` keeps the first session's values.
    deadline: the invocation's clock (:mod:`randconv.deadline`); work
      checks :meth:`out_of_time` between units.

  Raises:
    WorkdirError: the folder holds a run with another config, or cannot be
      written.
  """

  def __init__(self, path: str | os.PathLike, config: dict, *,
               may_differ: Iterable[str] = (),
               deadline: Deadline = NO_DEADLINE):
    self.path = Path(path)
    self.deadline = deadline
    self.config = canonical(config)
    self.metrics_path = self.path / METRICS
    self.writer = distributed.is_main()
    distributed.same_everywhere(self.config, f"the configs of {self.path}")
    self.records: list[dict] = distributed.from_main(
        lambda: self._open(tuple(may_differ)), errors=(WorkdirError,))
    self._cells = {r["cell"]: r for r in self.records if "cell" in r}

  def _open(self, may_differ: tuple[str, ...]) -> list[dict]:
    try:
      self.path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise WorkdirError(f"cannot create the run folder {self.path}: "
                         f"{e.strerror or e}") from None
    self._check_config(may_differ)
    return read_jsonl(self.metrics_path, repair=True)

  def _check_config(self, may_differ: tuple[str, ...]) -> None:
    path = self.path / CONFIG
    if not path.exists():
      write_atomic(path, json.dumps(self.config, indent=1) + "\n")
      return
    try:
      old = json.loads(path.read_text())
    except json.JSONDecodeError:
      raise WorkdirError(f"{path} is not JSON; use another --out") from None
    diff = differing_fields(old, self.config, may_differ)
    if diff:
      raise WorkdirError(
          f"{self.path} holds a run with another configuration "
          f"({', '.join(diff)} differ); use another --out")

  def out_of_time(self) -> bool:
    return self.deadline.expired()

  # ------------------------------------------------------------------
  # metrics.jsonl

  def append(self, records: dict | list[dict]) -> dict | list[dict]:
    """Appends finished records in one write, flushed to disk; returns them
    as they were stored (JSON values)."""
    one = isinstance(records, dict)
    records = [canonical(r) for r in ([records] if one else records)]
    if self.writer:
      with open(self.metrics_path, "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())
    self.records.extend(records)
    self._cells.update((r["cell"], r) for r in records if "cell" in r)
    return records[0] if one else records

  def rewrite(self, records: list[dict]) -> None:
    """Replaces ``metrics.jsonl`` atomically (for work that is redone)."""
    self.records = [canonical(r) for r in records]
    self._cells = {r["cell"]: r for r in self.records if "cell" in r}
    if self.writer:
      write_atomic(self.metrics_path,
                   "".join(json.dumps(r) + "\n" for r in self.records))

  def find(self, **key) -> dict | None:
    """The last record whose fields equal ``key``, or None."""
    for r in reversed(self.records):
      if all(r.get(k) == v for k, v in key.items()):
        return r
    return None

  def has(self, cell: str) -> bool:
    """Whether a record with ``"cell": cell`` is written."""
    return cell in self._cells

  def get(self, cell: str) -> dict:
    return self._cells[cell]

  # ------------------------------------------------------------------
  # Summaries.

  def write_json(self, name: str, obj) -> Path:
    path = self.path / name
    if self.writer:
      write_atomic(path, json.dumps(canonical(obj), indent=1) + "\n")
    return path

  def read_json(self, name: str) -> dict | None:
    path = self.path / name
    return distributed.from_main(
        lambda: json.loads(path.read_text()) if path.exists() else None)


__all__ = ["RunDir", "WorkdirError", "read_jsonl", "write_atomic",
           "differing_fields", "canonical", "unwritable"]
