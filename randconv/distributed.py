"""Many processes, one mesh: randconv on JAX's own distributed runtime.

``randconv train``, ``randconv reproduce`` and ``randconv theory`` take
``--coordinator HOST:PORT --num-processes P --process-id I`` (or
``--distributed`` alone, where JAX finds the cluster itself: SLURM, Cloud
TPU, Kubernetes); :func:`initialize` then calls
``jax.distributed.initialize`` before anything else touches JAX, and every
process sees every device of the job (``jax.devices()``). On a CPU the gloo
collectives are switched on, so a test on one machine needs nothing more
(docs/distributed.md has the launch commands).

What runs where:

* training is data-parallel (:class:`Placement`): the global batch is split
  over a ``data`` mesh axis spanning every device, params and optimizer
  state are replicated, the compiler reduces the gradients; each process
  reads only its rows of each batch;
* sweeps and Monte Carlo shard the nets over the same devices
  (:mod:`randconv.engine`) and gather the results on every process;
* only process 0 writes: run folders (:class:`randconv.rundir.RunDir`),
  figures and reports; the others keep the same records in memory, so every
  process takes the same decisions. orbax checkpoints are the exception:
  every process calls save and orbax coordinates them;
* decisions that could differ between processes (the clock of a time
  budget, what a run folder holds, an error found by process 0) are process
  0's, broadcast (:func:`agree`, :func:`from_main`);
* a watchdog (:func:`_watch`) ends a process with one clear line when
  another one stops sending heartbeats (killed, crashed), instead of a hang
  in the next collective. The lost process is seen after the heartbeat
  timeout (``--heartbeat-timeout``, JAX's heartbeats). When the coordinator
  (process 0) dies, JAX itself ends the others at once with its own message
  ("... another task died").

Without the flags nothing here does anything: one process, and on one
device every path is the one it was before.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from randconv.errors import RandconvError

LOST_EXIT = 3  # the exit status of a process whose peer was lost
DEFAULT_HEARTBEAT_S = 60


@dataclass(frozen=True)
class Launch:
  """How a command joins a job: explicit (``coordinator``,
  ``num_processes``, ``process_id``), detected by JAX (``auto``), or
  neither (one process)."""

  coordinator: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  auto: bool = False
  heartbeat_s: int = DEFAULT_HEARTBEAT_S

  @property
  def requested(self) -> bool:
    return self.auto or self.coordinator is not None


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The launch flags of a command that can run on many processes."""
  from randconv.cli import positive_int
  g = p.add_argument_group(
      "many processes (JAX's distributed runtime; docs/distributed.md)")
  g.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                 help="process 0's address; with --num-processes and "
                      "--process-id")
  g.add_argument("--num-processes", type=positive_int, default=None,
                 metavar="P", help="processes in the job")
  g.add_argument("--process-id", type=int, default=None, metavar="I",
                 help="this process, 0..P-1 (0 writes the results)")
  g.add_argument("--distributed", action="store_true",
                 help="join the job JAX detects (SLURM, Cloud TPU, "
                      "Kubernetes) instead of the three flags above")
  g.add_argument("--heartbeat-timeout", type=positive_int,
                 default=DEFAULT_HEARTBEAT_S, metavar="S",
                 help="seconds without heartbeats after which a process is "
                      f"taken for lost (default {DEFAULT_HEARTBEAT_S})")


def launch_from_args(a) -> Launch:
  """The :class:`Launch` of parsed flags.

  Raises:
    RandconvError: an incomplete or contradictory set of flags.
  """
  given = {"--coordinator": a.coordinator, "--num-processes":
           a.num_processes, "--process-id": a.process_id}
  named = [k for k, v in given.items() if v is not None]
  if a.distributed and named:
    raise RandconvError(f"--distributed lets JAX detect the job; drop "
                        f"{', '.join(named)} (or drop --distributed)")
  if named and len(named) < 3:
    missing = [k for k in given if k not in named]
    raise RandconvError(f"{', '.join(named)} needs {', '.join(missing)} "
                        "too")
  if named:
    host, _, port = a.coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
      raise RandconvError(f"--coordinator {a.coordinator!r}: give HOST:PORT")
    if not 0 <= a.process_id < a.num_processes:
      raise RandconvError(f"--process-id {a.process_id} is not in 0.."
                          f"{a.num_processes - 1}")
  return Launch(a.coordinator, a.num_processes, a.process_id,
                a.distributed, a.heartbeat_timeout)


_WATCHDOG: dict = {}


def initialize(launch: Launch) -> None:
  """Joins the job of ``launch`` (nothing without one): gloo collectives
  for CPU devices, ``jax.distributed.initialize``, and the watchdog. Must
  run before any JAX computation. Processes other than 0 show no progress
  bars."""
  if not launch.requested:
    return
  import jax
  before = {k: getattr(jax.config, k) for k in (
      "jax_cpu_collectives_implementation", "jax_enable_recoverability",
      "jax_enable_preemption_service")}
  if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
    # Only the CPU client reads it; a GPU or TPU job is unaffected.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  # A lost process is then reported to the others (the watchdog) instead
  # of ending them from inside the runtime.
  jax.config.update("jax_enable_recoverability", True)
  # JAX's preemption service would catch SIGTERM and wait for a sync point
  # that randconv never reaches: a scheduler's SIGTERM must end the
  # process (the others then see it lost; the run resumes).
  jax.config.update("jax_enable_preemption_service", False)
  try:
    jax.distributed.initialize(
        launch.coordinator, launch.num_processes, launch.process_id,
        heartbeat_timeout_seconds=launch.heartbeat_s)
  except (RuntimeError, ValueError) as e:
    for k, v in before.items():
      jax.config.update(k, v)
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    raise RandconvError(f"could not join the job ({first[:200]}); with "
                        "--distributed, JAX must detect a cluster (SLURM, "
                        "Cloud TPU, Kubernetes), else give --coordinator, "
                        "--num-processes and --process-id") from None
  _stdout_for_results()
  if jax.process_index() != 0:
    os.environ["TQDM_DISABLE"] = "1"
  if jax.process_count() > 1:
    stop = threading.Event()
    watchdog = threading.Thread(target=_watch, args=(stop,),
                                name="randconv-watchdog", daemon=True)
    _WATCHDOG.update(stop=stop, heartbeat_s=launch.heartbeat_s,
                     thread=watchdog)
    watchdog.start()
    from randconv import settings
    same_everywhere({k: os.environ.get(k) for k in settings.ENV},
                    "the RANDCONV_* environment variables")


def _stdout_for_results() -> None:
  """Keeps stdout for results: the runtime's C++ libraries (gloo) announce
  their connections on file descriptor 1, which now goes to stderr, while
  Python's ``sys.stdout`` keeps the original stdout."""
  sys.stdout.flush()
  results = os.dup(1)
  os.dup2(2, 1)
  sys.stdout = os.fdopen(results, "w", buffering=1)


def _watch(stop: threading.Event, period: float = 1.0) -> None:
  """Ends this process with one line when another one is lost."""
  import jax
  from jax.experimental import multihost_utils
  me, n = jax.process_index(), jax.process_count()
  while not stop.is_set():
    try:
      with multihost_utils.live_devices(jax.devices()):
        stop.wait(period)
    except multihost_utils.ProcessFailureError as e:
      lost = sorted({d.process_index for d in e.failed_devices})
      what = f"process {', '.join(map(str, lost))} of {n} stopped " \
             "sending heartbeats (killed or crashed)"
    except Exception as e:  # noqa: BLE001 - the coordinator is gone
      first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
      what = f"lost the coordinator, process 0 ({first})"
    else:
      continue
    if stop.is_set():
      return  # the job ended normally; a peer that exited is not lost
    # A new line first: a progress bar may hold the current one.
    print(f"\nrandconv: error: process {me}: {what}; this process stops too. "
          "Nothing finished is lost: run the same launch again on every "
          "process to resume from the last checkpoint or cell",
          file=sys.stderr, flush=True)
    os._exit(LOST_EXIT)


def finish(code: int) -> int:
  """Process 0's exit status, for every process of a job that ended
  normally (one process: ``code``). Stops the watchdog and leaves the job
  in order: the others first, then process 0, whose coordination service
  must outlive their goodbyes."""
  if "stop" not in _WATCHDOG:
    return code
  import time

  import jax
  code = int(agree_value(code))
  _WATCHDOG.pop("stop").set()
  # Every watchdog leaves its round together (a barrier), then stops.
  _WATCHDOG["thread"].join(timeout=30)
  if jax.process_index() != 0:
    jax.distributed.shutdown()
    return code
  from jax._src import distributed as jax_distributed  # the runtime client
  client = jax_distributed.global_state.client
  everyone = list(range(jax.process_count()))
  give_up = time.monotonic() + 60
  # get_live_nodes waits for the live processes (barrier semantics), so
  # it returns {0} once the others have left.
  while client is not None and time.monotonic() < give_up and \
      len(client.get_live_nodes(everyone)) > 1:
    time.sleep(0.05)
  jax.distributed.shutdown()
  return code


def abort(code: int) -> None:
  """Ends this process at once (after an error seen by it alone): the
  runtime's shutdown would wait for processes that are still working."""
  if "stop" in _WATCHDOG:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def abort_with_traceback() -> None:
  """Like :func:`abort` (status 1) for an unexpected exception, after
  printing its traceback. A collective or barrier that failed because
  another process was lost raises here first; the watchdog is given the
  time to see the loss (a heartbeat timeout) and end the process with its
  one clear line instead."""
  if "stop" in _WATCHDOG:
    threading.Event().wait(_WATCHDOG["heartbeat_s"] + 5)
    import traceback
    traceback.print_exc()
    abort(1)


# --------------------------------------------------------------------------
# Who is who, and agreeing.

def is_main() -> bool:
  """Whether this process writes the results (process 0; always true for
  one process)."""
  if "stop" not in _WATCHDOG:
    return True
  import jax
  return jax.process_index() == 0


def many() -> bool:
  """Whether this command runs on more than one process."""
  return "stop" in _WATCHDOG


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


def from_main(fn: Callable[[], object]):
  """``fn()`` run on process 0 only, its JSON-able result given to every
  process; a :class:`RandconvError` it raises is raised on every process
  (same class where it is a known one, with the same message), and so is
  an ``OSError`` or ``ValueError`` (as a :class:`RandconvError`)."""
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
    raise _error_class(out["kind"])(out["error"])
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


def _error_class(name: str) -> type[RandconvError]:
  from randconv.rundir import WorkdirError
  known = {c.__name__: c for c in (RandconvError, WorkdirError)}
  return known.get(name, RandconvError)


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


__all__ = ["Launch", "add_arguments", "launch_from_args", "initialize",
           "finish", "abort", "is_main", "many", "agree",
           "agree_value", "broadcast_json", "from_main", "main_first",
           "same_everywhere", "Placement",
           "LOST_EXIT"]
