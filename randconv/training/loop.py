"""One session of a decoder's training run (:mod:`randconv.training.train`):
the steps, and the evaluations, checkpoints and metrics records between
them, up to the end or the deadline; then the session's result."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from randconv import distributed
from randconv.deadline import Deadline
from randconv.distributed import Placement
from randconv.errors import RandconvError
from randconv.rundir import RunDir
from randconv.training.objective import place_batch
from randconv.training.records import (
  baseline_loss,
  eval_crops,
  save_checkpoint,
  summarize,
)


class TrainingDiverged(RandconvError):
  """The loss or the params stopped being finite."""


class Programs(NamedTuple):
  """What a session runs: the compiled step and evaluation, the data they
  read, the step's frozen arguments (the encoder's params, or none on
  cached features) and what the features were divided by."""

  step: Callable
  evaluate: Callable
  data: Any
  frozen: tuple
  divisor: float


@dataclass
class RunResult:
  """What a run left: its config, metrics and (final or latest) params."""

  workdir: Path
  config: Any  # the run's randconv.training.train.TrainConfig
  metrics: list[dict]
  params: dict  # Flax params of the decoder
  step: int
  done: bool
  stopped: str | None = None  # why it stopped early ("time budget")
  summary: dict = field(default_factory=dict)

  @property
  def divisor(self) -> float:
    """What the decoder's input features were divided by
    (``feature_scale``; 1 for a raw run)."""
    return float(self.summary.get("feature_divisor", 1.0))


class Loop:
  """One session of a training run: the steps, and the evaluations,
  checkpoints and metrics records between them."""

  def __init__(self, cfg, run: RunDir, manager, programs: Programs, dec,
               opt_state, bar, start: int, place: Placement,
               schedule: optax.Schedule):
    self.cfg, self.run_dir, self.manager = cfg, run, manager
    self.step_fn, self.evaluate = programs.step, programs.evaluate
    self.data, self.divisor = programs.data, programs.divisor
    # The step's frozen arguments: the encoder's params, or none (cached).
    self.frozen, self.dec, self.opt_state = programs.frozen, dec, opt_state
    self.bar, self.start, self.place = bar, start, place
    self.schedule = schedule
    self.pending: list[tuple[int, jax.Array]] = []
    self.last_saved = start
    self.last_eval = max((r["step"] for r in run.records if "val_loss" in r),
                         default=-1)
    self.t0 = time.monotonic()

  def run(self, deadline: Deadline, threads: int) -> tuple[int, str | None]:
    """Steps until the end or the deadline; returns (step, why stopped)."""
    cfg, step, place = self.cfg, self.start, self.place
    batches = self.data.batches(cfg.batch, start=step, threads=threads,
                                rows=place.rows(cfg.batch))
    # With many processes the clock is agreed on (a collective), so it is
    # read every log_every steps only.
    every = cfg.log_every if distributed.many() else 1
    if step > 0:
      self.run_dir.append({"step": step, "event": "resumed"})
    elif self.last_eval < 0:  # kept when a run stopped before its 1st step
      self.do_eval(0)
    while step < cfg.steps:
      if (step - self.start) % every == 0 and deadline.expired():
        self.flush()
        if step > self.last_eval:
          self.do_eval(step)  # the partial curve ends with a validation point
        return self.save_if_new(step), "time budget"
      self.dec, self.opt_state, loss = self.step_fn(
          self.dec, self.opt_state, *self.frozen,
          place_batch(place, next(batches), cfg.batch))
      self.pending.append((step, loss))
      step += 1
      self.bar.update(1)
      if step % cfg.log_every == 0:
        self.flush()
      if step % cfg.eval_every == 0 or step == cfg.steps:
        self.flush()
        self.do_eval(step)
      if step % cfg.checkpoint_every == 0 or step == cfg.steps:
        self.save(step)
    return self.save_if_new(step), None

  def diverged(self, s: int, key: str, value, when: str) -> None:
    self.run_dir.append({"step": s, "event": "diverged", key: str(value)})
    what = {"loss": "loss", "params": "params"}.get(key, "validation or "
                                                     "training-set loss")
    raise TrainingDiverged(
        f"training diverged {when} ({what} {value}); the last good "
        f"checkpoint (step {self.last_saved}) is kept in "
        f"{self.run_dir.path}; lower --lr")

  def flush(self) -> None:
    """Writes the pending steps' losses (one device transfer)."""
    if not self.pending:
      return
    values = jax.device_get([loss for _, loss in self.pending])
    now = round(time.monotonic() - self.t0, 3)  # the last step is done
    records = []
    for (s, _), v in zip(self.pending, values, strict=True):
      v = float(v)
      if not math.isfinite(v):
        self.run_dir.append(records)
        self.diverged(s, "loss", v, f"at step {s}")
      records.append({"step": s, "loss": v, "lr": float(self.schedule(s))})
    records[-1]["time"] = now  # wall seconds since this session's start
    self.run_dir.append(records)
    self.bar.set_postfix(loss=f"{float(values[-1]):.4g}", refresh=False)
    self.pending.clear()

  def do_eval(self, s: int) -> None:
    val = self.evaluate(self.dec, self.data.val)
    tr = self.evaluate(self.dec, self.data.train_eval)
    if not (math.isfinite(val) and math.isfinite(tr)):
      self.diverged(s, "val_loss", val if not math.isfinite(val) else tr,
                    f"before step {s}")
    self.run_dir.append({"step": s, "val_loss": val, "train_eval_loss": tr})
    self.last_eval = s

  def save(self, s: int) -> None:
    self.flush()
    finite = all(np.isfinite(np.asarray(a)).all()
                 for a in jax.tree_util.tree_leaves(self.dec))
    if not finite:
      self.diverged(s, "params", "not finite", f"before step {s}")
    save_checkpoint(self.manager, s, self.dec, self.opt_state)
    self.last_saved = s
    self.run_dir.append({"step": s, "event": "checkpoint"})

  def save_if_new(self, s: int) -> int:
    self.flush()
    if s > self.last_saved:
      self.save(s)
    return s


def summarise(loop: Loop, step: int, stopped: str | None) -> RunResult:
  """The session's result; ``summary.json`` once the run is done."""
  cfg, run = loop.cfg, loop.run_dir
  elapsed = time.monotonic() - loop.t0
  done = step >= cfg.steps
  summary = summarize(run.records)
  summary.update({"steps": step, "done": done,
                  "seconds_this_session": elapsed,
                  "steps_per_second": (step - loop.start) / elapsed
                  if elapsed > 0 else None,
                  "device": str(jax.devices()[0].device_kind),
                  "feature_divisor": loop.divisor,
                  "baseline_val_loss": baseline_loss(
                      eval_crops(loop.data.train_eval),
                      eval_crops(loop.data.val))})
  dec = loop.dec
  if loop.place.mesh is not None:  # data-parallel: say so, hand back local
    summary.update({"devices": jax.device_count(),
                    "processes": jax.process_count()})
    dec = jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a)), dec)
  if done:
    run.write_json("summary.json", summary)
  return RunResult(run.path, cfg, run.records, dec, step, done, stopped,
                   summary)
