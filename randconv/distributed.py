"""One program on many processes: the data-parallel :class:`Placement`
and the few agreements every process must reach.

A job of several processes is joined by the command line
(:mod:`randconv.repro.launch`: ``jax.distributed.initialize``, the
watchdog); it then calls :func:`set_many`. The library only asks, through
this module, whether it is one of several processes and what process 0
decided. Without a job every function here hands its input back: one
process, and on one device every path is the one it always was.

What runs where:

* training is data-parallel (:class:`Placement`): the global batch is split
  over a ``data`` mesh axis spanning every device, params and optimizer
  state are replicated, the compiler reduces the gradients; each process
  reads only its rows of each batch;
* sweeps and Monte Carlo shard the nets over the same devices
  (:mod:`randconv.engine`) and gather the results on every process;
* only process 0 writes (:func:`is_main`): run folders
  (:class:`randconv.rundir.RunDir`), figures and reports; the others keep
  the same records in memory, so every process takes the same decisions.
  orbax checkpoints are the exception: every process calls save and orbax
  coordinates them;
* decisions that could differ between processes (the clock of a time
  budget, what a run folder holds, an error found by process 0) are process
  0's, broadcast (:func:`agree`, :func:`from_main`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from randconv.errors import RandconvError

_JOB = {"many": False}


def set_many(on: bool) -> None:
  """Says whether this process is one of a job of several: True once the
  launcher has joined the job (:func:`randconv.repro.launch.initialize`),
  False when it leaves it. Nothing in the library sets it."""
  _JOB["many"] = bool(on)


# --------------------------------------------------------------------------
# Who is who, and agreeing.

def is_main() -> bool:
  """Whether this process writes the results (process 0; always true for
  one process)."""
  if not many():
    return True
  import jax
  return jax.process_index() == 0


def many() -> bool:
  """Whether this command runs on more than one process."""
  return _JOB["many"]


def agree_value(value: int | float):
  """Process 0's ``value`` on every process (a number; an integer below
  2**31, or a float sent as float32 unless JAX runs in 64 bits)."""
  if not many():
    return value
  import numpy as np
  from jax.experimental import multihost_utils
  kind = np.int64 if isinstance(value, (int, np.integer)) else np.float64
  return multihost_utils.broadcast_one_to_all(kind(value)).item()


def agree(flag: bool) -> bool:
  """Process 0's ``flag`` on every process."""
  return bool(agree_value(1 if flag else 0))


def broadcast_json(obj=None):
  """Process 0's JSON-able ``obj`` on every process (others pass
  anything)."""
  if not many():
    return obj
  import numpy as np
  from jax.experimental import multihost_utils
  data = json.dumps(obj).encode() if is_main() else b""
  n = int(multihost_utils.broadcast_one_to_all(np.int64(len(data))))
  # Lengths rounded up to a power of two: one compiled broadcast per size.
  buf = np.zeros(1 << max(0, n - 1).bit_length(), np.uint8)
  if is_main():
    buf[:n] = np.frombuffer(data, np.uint8)
  buf = np.asarray(multihost_utils.broadcast_one_to_all(buf))
  return json.loads(bytes(buf[:n]).decode())


def from_main(fn: Callable[[], object],
              errors: tuple[type[RandconvError], ...] = ()):
  """``fn()`` run on process 0 only, its JSON-able result given to every
  process; a :class:`RandconvError` it raises is raised on every process
  with the same message (as itself where its class is in ``errors``, the
  caller's own kinds), and so is an ``OSError`` or ``ValueError`` (as a
  :class:`RandconvError`)."""
  if not many():
    return fn()
  out = None
  if is_main():
    try:
      out = {"value": fn()}
    except RandconvError as e:
      out = {"error": str(e), "kind": type(e).__name__}
    except (OSError, ValueError) as e:  # a file process 0 could not read
      out = {"error": f"process 0: {type(e).__name__}: {e}",
             "kind": "RandconvError"}
  out = broadcast_json(out)
  if "error" in out:
    known = {c.__name__: c for c in errors}
    raise known.get(out["kind"], RandconvError)(out["error"])
  return out["value"]


def same_everywhere(obj, what: str) -> None:
  """Raises the same :class:`RandconvError` on every process when the
  JSON-able ``obj`` is not the same on all of them (the processes would
  then take different paths and wait for each other forever)."""
  if not many():
    return
  import hashlib

  import numpy as np
  from jax.experimental import multihost_utils
  digest = hashlib.sha256(json.dumps(obj, sort_keys=True,
                                     default=str).encode()).digest()
  every = np.asarray(multihost_utils.process_allgather(
      np.frombuffer(digest, np.uint8)))
  odd = [i for i in range(len(every)) if (every[i] != every[0]).any()]
  if odd:
    raise RandconvError(
        f"{what} differ between processes (process "
        f"{', '.join(map(str, odd))} against process 0); give every "
        "process the same flags, environment and files")


def main_first(fn: Callable[[], object], name: str = "randconv-main-first"):
  """``fn()`` on process 0, then on the others (a cache or dataset that
  process 0 writes and the others only read)."""
  if not many():
    return fn()
  from jax.experimental import multihost_utils
  if is_main():
    out = fn()
    multihost_utils.sync_global_devices(name)
    return out
  multihost_utils.sync_global_devices(name)
  return fn()


# --------------------------------------------------------------------------
# Data parallelism.

class Placement:
  """Where a data-parallel program's arrays live.

  On one device (:attr:`mesh` None) every method hands its input back
  unchanged, so a single-device run is the program it always was. On
  several, the mesh has one ``data`` axis over every device of the job:
  params are replicated (:meth:`replicate`), a batch is split by rows
  (:meth:`batch`), and each process supplies its own rows
  (:meth:`rows`).
  """

  def __init__(self, devices=None):
    if devices is None:
      import jax
      devices = jax.devices()
    devices = list(devices)
    self.size = len(devices)
    self.mesh = None
    if self.size > 1:
      import numpy as np
      from jax.sharding import Mesh, NamedSharding, PartitionSpec
      self.mesh = Mesh(np.array(devices), ("data",))
      self.replicated = NamedSharding(self.mesh, PartitionSpec())
      self.split = NamedSharding(self.mesh, PartitionSpec("data"))

  @classmethod
  def one(cls) -> Placement:
    """The placement of a single-device program (changes nothing)."""
    return cls([None])

  @classmethod
  def for_batch(cls, batch: int, flag: str = "--batch") -> Placement:
    """Every device, for a batch of ``batch`` rows. One process whose
    devices do not divide the batch uses the most that do (and says so);
    a job of several processes needs them all.

    Raises:
      RandconvError: a job of several processes whose devices do not
        divide the batch.
    """
    import jax
    devices = jax.devices()
    n = len(devices)
    if batch % n == 0:
      return cls(devices)
    if many():
      raise RandconvError(f"{flag} {batch} does not split over the job's "
                          f"{n} devices; give a multiple of {n}")
    use = max(k for k in range(1, n + 1) if batch % k == 0)
    print(f"randconv: {flag} {batch} does not split over {n} devices; "
          f"using {use} of them", file=sys.stderr)
    return cls(devices[:use])

  def check_batch(self, batch: int, flag: str = "--batch") -> None:
    if batch % self.size:
      raise RandconvError(f"{flag} {batch} does not split over "
                          f"{self.size} devices; give a multiple of "
                          f"{self.size}")

  def rows(self, batch: int) -> slice:
    """The rows of a global batch that this process supplies."""
    if self.mesh is None:
      return slice(0, batch)
    index = self.split.addressable_devices_indices_map((batch,))
    starts = [ix[0].start or 0 for ix in index.values()]
    stops = [batch if ix[0].stop is None else ix[0].stop
             for ix in index.values()]
    lo, hi = min(starts), max(stops)
    if hi - lo != batch * len(index) // self.size:
      raise RandconvError("this process's devices do not hold consecutive "
                          "rows of the batch")
    return slice(lo, hi)

  def replicate(self, tree):
    """``tree`` (the same values on every process) on every device."""
    if self.mesh is None:
      return tree
    import jax
    import numpy as np
    return jax.device_put(jax.tree_util.tree_map(np.asarray, tree),
                          self.replicated)

  def batch(self, local, batch: int):
    """The global batch of ``batch`` rows made of every process's
    ``local`` rows (:meth:`rows`)."""
    if self.mesh is None:
      return local
    import jax
    return jax.make_array_from_process_local_data(
        self.split, local, (batch, *local.shape[1:]))

  def jit(self, fn, n_params: int, *, donate_argnums=(), out_replicated=1):
    """``jax.jit(fn)`` with its first ``n_params`` arguments replicated,
    the last one split by rows and ``out_replicated`` replicated outputs
    (plain ``jax.jit`` on one device)."""
    import jax
    if self.mesh is None:
      return jax.jit(fn, donate_argnums=donate_argnums)
    outs = self.replicated if out_replicated == 1 else \
        (self.replicated,) * out_replicated
    return jax.jit(fn, donate_argnums=donate_argnums,
                   in_shardings=(self.replicated,) * n_params + (self.split,),
                   out_shardings=outs)


__all__ = ["Placement", "agree", "agree_value", "broadcast_json",
           "from_main", "is_main", "main_first", "many", "same_everywhere",
           "set_many"]
