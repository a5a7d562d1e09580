"""The cells every Section 4 experiment is made of: one net on a batch of
images, measured inside the jitted net call, logged to the run folder.

* the per-image measurements (``post`` functions of
  :func:`randconv.engine.run_nets`): :func:`sweep_post` (Figs. 8-10 and the
  sensitivity rows), :func:`fig7_post` (Fig. 7 and its law's nets),
  :func:`kernel_post` (Section 4.3);
* :func:`run_cells`: nets in groups, skipping what the log has, stopping at
  the deadline; :func:`status_of` and :func:`partial_note` say how far it
  got.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.section4.configs import DIST
from randconv import engine, metrics
from randconv.rundir import RunDir
from randconv.spec import conv_flops

# Most conv FLOP in one group of nets computed together, so that
# RANDCONV_TIME_BUDGET_S is overrun by at most one group's time
# (docs/performance.md, "Section 4's fixed choices").
GROUP_FLOP = 2e14


# --------------------------------------------------------------------------
# Per-image measurements, computed inside the jitted net call.

def edge_r(x: jax.Array, y: jax.Array) -> jax.Array:
  """Pearson r between the Sobel gradient magnitudes of the min-max grey
  images (sign-free: the magnitude of 1 - y's gradient is y's). [...]."""
  def mag(img):
    g = metrics.minmax(metrics.grey(img))
    gx = (g[..., :-2, 2:] + 2 * g[..., 1:-1, 2:] + g[..., 2:, 2:]
          - g[..., :-2, :-2] - 2 * g[..., 1:-1, :-2] - g[..., 2:, :-2])
    gy = (g[..., 2:, :-2] + 2 * g[..., 2:, 1:-1] + g[..., 2:, 2:]
          - g[..., :-2, :-2] - 2 * g[..., :-2, 1:-1] - g[..., :-2, 2:])
    return jnp.sqrt(gx * gx + gy * gy)[..., None]
  return metrics.pearson(mag(x), mag(y))


def sweep_post(images, outputs):
  """SSIM, r and edge r per image; "grey" (the picture, sign-aligned) feeds
  Fig. 10 and is not logged."""
  return {"ssim": metrics.ssim(images, outputs),
          "pearson": metrics.pearson(images, outputs),
          "edge_r": edge_r(images, outputs),
          "grey": metrics.grey(metrics.display(images, outputs))}


def kernel_post(images, outputs):
  return metrics.reconstruction_metrics(images, outputs)


def fig7_post(images, outputs):
  """As :func:`sweep_post`, and each output against images[0], the cat:
  the other images' outputs give the chance level."""
  first = jnp.broadcast_to(images[:1], images.shape)
  return {"ssim": metrics.ssim(images, outputs),
          "pearson": metrics.pearson(images, outputs),
          "edge_r": edge_r(images, outputs),
          "ssim_vs_first": metrics.ssim(first, outputs),
          "edge_r_vs_first": edge_r(first, outputs),
          "grey": metrics.grey(metrics.display(images, outputs))}


def scores(res: dict) -> dict:
  """One net's logged numbers: per-image SSIM and r, and their means."""
  s, r = np.asarray(res["ssim"]), np.asarray(res["pearson"])
  return {"ssim_mean": float(s.mean()), "r_abs_mean": float(np.abs(r).mean()),
          "ssim": [float(v) for v in s], "pearson": [float(v) for v in r]}


# --------------------------------------------------------------------------
# Nets in groups.

def _groups(n: int, size: int) -> list[range]:
  return [range(i, min(n, i + size)) for i in range(0, n, size)]


def net_group_size(spec, size: int, n_nets: int, n_images: int) -> int:
  """Nets per cell group: all of them when the strategy vmaps them (cheap
  nets), else one; on several devices (many processes), one net per
  device at least. Fixed by the preset and the devices, so a resumed run
  computes the same groups and the same numbers."""
  devices = len(engine.sweep_devices())
  if devices > 1:
    return min(n_nets, devices * max(1, _net_group_size_one(
        spec, size, -(-n_nets // devices), n_images)))
  return _net_group_size_one(spec, size, n_nets, n_images)


def _net_group_size_one(spec, size: int, n_nets: int, n_images: int) -> int:
  strategy = engine.pick_strategy(spec, size, size)
  if strategy == "loop":
    return 1
  p = engine.plan(spec, n_nets, n_images, size, size, strategy)
  # A group is what a time budget cannot cut: keep it to about GROUP_FLOP.
  per_net = conv_flops(spec, size, size) * n_images
  by_cost = max(1, int(GROUP_FLOP // max(1, per_net)))
  return max(1, min(n_nets, p.seed_chunk, by_cost))


def run_group(spec, keys, x, post, chunks=None, policy="auto"):
  """``post``'s results of the nets of ``keys`` on ``x``, one call: one net
  runs alone ("loop"), several are split over every device when there are
  many, else the backend's strategy for ``spec``."""
  strategy = engine.pick_strategy(spec, x.shape[1], x.shape[2])
  if len(keys) == 1:
    strategy = "loop"
  if len(engine.sweep_devices()) > 1:
    strategy = "shard"  # the group's nets split over every device
  return engine.run_nets(spec, DIST, keys, x, post=post, strategy=strategy,
                         chunks=chunks, policy=policy, rescale=True)


def run_cells(log: RunDir, spec, keys, x, post, cell, record, *,
              group_size: int | None = None, **run_kw) -> tuple[int, int]:
  """Runs every net of ``keys`` on ``x`` as cells of ``log``, in groups
  (``group_size`` nets, default :func:`net_group_size`; on several
  devices at least one net per device): a group whose
  cells are all logged is skipped, none starts once the deadline has
  passed, and each group's new cells are logged as ``{"cell": cell(i),
  "net": i, **record(res_i)}`` where ``res_i`` is net ``i``'s slice of
  ``post``'s results. ``run_kw`` go to :func:`run_group`.

  Returns:
    (cells done, cells in all).
  """
  from randconv import progress
  n_nets = len(keys)
  size = group_size or net_group_size(spec, x.shape[1], n_nets, len(x))
  size = max(size, min(n_nets, len(engine.sweep_devices())))
  total = done = 0
  bar = progress.bar(n_nets, f"{log.config.get('experiment', '')} "
                     f"{cell(0).rsplit('/n', 1)[0]}".strip(), "net",
                     enabled=not all(log.has(cell(i)) for i in range(n_nets)))
  for group in _groups(n_nets, size):
    bar.update(group.start - bar.n)  # the groups before: done or skipped
    cells = [cell(i) for i in group]
    total += len(cells)
    if all(log.has(c) for c in cells):
      done += len(cells)
      continue
    if log.out_of_time():
      continue
    res = run_group(spec, keys[group.start:group.stop], x, post, **run_kw)
    log.append([{"cell": c, "net": i,
                 **record(jax.tree_util.tree_map(lambda a, j=j: a[j], res))}
                for j, (c, i) in enumerate(zip(cells, group, strict=True))
                if not log.has(c)])
    done += len(cells)
  bar.close()
  return done, total


def logged(log: RunDir, cell: str, n_nets: int) -> list[dict]:
  """The records of the nets of ``cell`` (``{cell}/n{i}``) that the log
  has."""
  return [log.get(f"{cell}/n{i}") for i in range(n_nets)
          if log.has(f"{cell}/n{i}")]


def status_of(done: int, total: int) -> str:
  """A claim's status from its cells: all done, or cut by the deadline."""
  return "measured" if done == total else "partial"


def partial_note(log: RunDir, done: int, total: int) -> dict:
  """What a cut run adds to a claim's numbers (nothing when complete)."""
  if done == total:
    return {}
  return {"partial": f"{done} of {total} cells (out of time; run again "
                     "with the same --out to resume)"}
