"""A training run's records: its orbax checkpoints, its metrics records
(``metrics.jsonl``) and the numbers read from them, and the loss of the
best constant image that a decoder must beat."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np

from randconv.errors import RandconvError
from randconv.rundir import RunDir, read_jsonl


def checkpoint_manager(workdir: Path):
  """The run's checkpoints: one item, saved and restored by orbax's
  standard handler. Named here, orbax knows how to read the item's
  metadata before the first restore (else it warns that the item "could
  not be restored", on every resume)."""
  import orbax.checkpoint as ocp
  return ocp.CheckpointManager(
      (workdir / "checkpoints").absolute(),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=2, enable_async_checkpointing=False, create=True),
      item_handlers=ocp.StandardCheckpointHandler())


def save_checkpoint(manager, step: int, dec, opt_state) -> None:
  import orbax.checkpoint as ocp
  manager.save(step, args=ocp.args.StandardSave(
      {"params": dec, "opt_state": opt_state}), force=True)
  manager.wait_until_finished()


def check_layout(manager, step: int, dec) -> None:
  """One clear line for a checkpoint whose params are not ``dec``'s layout
  (a run written with the old ``"w"``/``"b"`` keys)."""
  try:
    stored = manager.item_metadata(step)["params"]
    have = {(n, k) for n, layer in stored.items() for k in layer}
  except Exception:  # noqa: BLE001 - unknown metadata: let restore decide
    return
  want = {(n, k) for n, layer in dec.items() for k in layer}
  if have != want:
    old = any(k in ("w", "b") for _, k in have)
    raise RandconvError(
        f"the checkpoint at step {step} holds params of another layout"
        + (" (keyed 'w'/'b': written before the Flax modules)" if old
           else "") + "; it cannot be resumed: train it again in another "
        "--out")


def restore_checkpoint(manager, step: int, dec, opt_state):
  import orbax.checkpoint as ocp
  check_layout(manager, step, dec)
  target = jax.tree_util.tree_map(np.asarray, {"params": dec,
                                               "opt_state": opt_state})
  state = manager.restore(step, args=ocp.args.StandardRestore(target))
  return state["params"], state["opt_state"]


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
  """The metrics records of a run folder (a line cut by a kill, and what
  follows it, is left out: it is redone)."""
  return read_jsonl(Path(workdir) / "metrics.jsonl")


def truncate_metrics(run: RunDir, step: int) -> None:
  """Keeps the records of steps before ``step`` and the evaluation at
  ``step`` (made with the checkpoint's params); the rest is recomputed."""
  run.rewrite([r for r in run.records if r.get("step", 0) < step or (
      r.get("step") == step and "loss" not in r
      and r.get("event") in (None, "checkpoint"))])


def loss_curve(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
  """(steps, batch losses) from metrics records."""
  return eval_curve(records, "loss")


def eval_curve(records: list[dict], key: str = "val_loss"
               ) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values of ``key``) from the metrics records that have it."""
  rows = [(r["step"], r[key]) for r in records if key in r]
  if not rows:
    return np.zeros(0, int), np.zeros(0)
  steps, values = zip(*rows, strict=True)
  return np.asarray(steps), np.asarray(values, np.float64)


def eval_crops(split):
  """The uint8 crops of an evaluation split (cached: (features, crops))."""
  return split[1] if isinstance(split, tuple) else split


def summarize(records: list[dict], tail: float = 0.1) -> dict:
  """Final numbers of a curve: the mean batch loss over the last ``tail``
  of the steps, the first loss, and the last evaluation."""
  steps, losses = loss_curve(records)
  out: dict = {}
  if len(losses):
    k = max(1, int(round(len(losses) * tail)))
    out["first_loss"] = float(losses[0])
    out["final_loss"] = float(losses[-k:].mean())
  for key in ("val_loss", "train_eval_loss"):
    s, v = eval_curve(records, key)
    if len(v):
      out[key] = float(v[-1])
      out[key + "_step"] = int(s[-1])
  return out


def baseline_loss(train_crops, val_crops) -> float:
  """The validation loss of the best constant image: the per-pixel mean of
  the training crops (uint8 [N, H, W, 3]), the output that minimises the
  training loss of a decoder that ignores its features. A decoder that
  does not beat it has not used its features."""
  mean = np.asarray(train_crops, np.float64).mean(axis=0) / 255.0
  x = np.asarray(val_crops, np.float64) / 255.0
  return float((0.5 * np.square(x - mean).sum(axis=(1, 2, 3))).mean())
