"""Joining a job of many processes: the launch flags, JAX's distributed
runtime, and leaving the job in order.

``randconv train``, ``randconv reproduce`` and ``randconv theory`` take
``--coordinator HOST:PORT --num-processes P --process-id I`` (or
``--distributed`` alone, where JAX finds the cluster itself: SLURM, Cloud
TPU, Kubernetes); :func:`initialize` then calls
``jax.distributed.initialize`` before anything else touches JAX, and every
process sees every device of the job (``jax.devices()``). On a CPU the gloo
collectives are switched on, so a test on one machine needs nothing more
(docs/distributed.md has the launch commands). What the processes share
once joined (the data-parallel placement, process 0's decisions) is the
library's :mod:`randconv.distributed`, told of the job by
:func:`randconv.distributed.set_many`.

A watchdog (:func:`_watch`) ends a process with one clear line when
another one stops sending heartbeats (killed, crashed), instead of a hang
in the next collective. The lost process is seen after the heartbeat
timeout (``--heartbeat-timeout``, JAX's heartbeats). When the coordinator
(process 0) dies, JAX itself ends the others at once with its own message
("... another task died").

Without the flags nothing here does anything: one process.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from dataclasses import dataclass

from randconv import distributed
from randconv.errors import RandconvError
from randconv.repro.preflight import positive_int

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
    distributed.set_many(True)
    watchdog.start()
    from randconv import settings
    distributed.same_everywhere(
        {k: os.environ.get(k) for k in settings.ENV},
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
  code = int(distributed.agree_value(code))
  _WATCHDOG.pop("stop").set()
  distributed.set_many(False)
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


__all__ = ["Launch", "LOST_EXIT", "abort", "abort_with_traceback",
           "add_arguments", "finish", "initialize", "launch_from_args"]
