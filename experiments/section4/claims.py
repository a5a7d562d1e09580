"""Section 4's three experiments as ``randconv reproduce`` runs them
(:data:`EXPERIMENTS`, the ``randconv.experiments`` entry point through
:mod:`experiments.section4`): each opens its run folder, runs its cells,
and decides its claims, with the infinite-width law and the sensitivity
rows where its config asks for them.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from experiments.section4 import fig7, kernel, law, sensitivity, width
from experiments.section4.cells import partial_note, status_of
from experiments.section4.configs import (
  DIST,
  ROOT_SEED,
  SMOKE,
  WEIGHTS,
  Fig7Config,
  KernelConfig,
  WidthConfig,
  configure,
)
from experiments.section4.data import offline_images, sample_images
from randconv import engine
from randconv.deadline import Deadline
from randconv.repro.registry import ClaimResult, Table
from randconv.rundir import RunDir

EXPERIMENTS = Table()


@EXPERIMENTS.add("S4a", "S4b", title="Fig. 7: rrVGG ConvK-DeConvK, full "
                 "and simplified", name="fig7", configure=configure(
                     Fig7Config), smoke_presets=SMOKE)
def run_fig7(cfg: Fig7Config, workdir: Path, deadline: Deadline
             ) -> list[ClaimResult]:
  size, n_nets = cfg.size, cfg.nets
  x, names = offline_images(1 + cfg.others, size)
  log = RunDir(workdir, {"experiment": "fig7", "preset": cfg.preset,
                         **cfg.record(), "dist": DIST, "seed": ROOT_SEED,
                         "images": names, "conv_impl": fig7.FIG7_IMPL,
                         "weights": WEIGHTS,
                         "backend": jax.default_backend()},
               deadline=deadline)
  rows = fig7.ROWS
  keys = np.asarray(engine.seed_keys(ROOT_SEED, n_nets))
  done, total = fig7.fig7_cells(log, x, cfg, keys, rows)
  stats = {row: fig7.fig7_stats(log, row, n_nets) for row in rows}
  figures = []
  if all(s is not None for row in rows for s in stats[row]):
    figures.append(fig7.fig7_figure(log, x, cfg, keys, rows, stats,
                                    workdir))
  status = status_of(done, total)
  note = partial_note(log, done, total)
  results = [fig7.claim_s4a(stats["original"], n_nets, size, note, status,
                            figures),
             fig7.claim_s4b(stats, note, status, figures)]
  if status == "measured" and cfg.law_size:
    law.add_to_claims(results, workdir, cfg, keys, rows, stats, deadline)
  if status == "measured" and cfg.sensitivity_size:
    results[0].sensitivity = sensitivity.s4a_rows(log, cfg, keys,
                                                  results[0])
    sensitivity.explain(results[0])
  return results


@EXPERIMENTS.add("S4c", "S4d", "S4e", title="Figs. 8-10: rrVGG Conv1-DeConv1 "
                 "width sweep, original and channel-mean output",
                 name="conv1_width_sweep",
                 configure=configure(WidthConfig), smoke_presets=SMOKE)
def run_width_sweep(cfg: WidthConfig, workdir: Path, deadline: Deadline
                    ) -> list[ClaimResult]:
  size, n_nets, widths = cfg.size, cfg.nets, list(cfg.widths)
  x, names, used = sample_images(cfg.images, size, cfg.source)
  log = RunDir(workdir, {"experiment": "conv1_width_sweep",
                         "preset": cfg.preset, **cfg.record(), "dist": DIST,
                         "seed": ROOT_SEED, "image_source": used,
                         "images": names, "layer": "pool1",
                         "conv_impl": "auto", "weights": WEIGHTS,
                         "backend": jax.default_backend()},
               deadline=deadline)
  keys = np.asarray(engine.seed_keys(ROOT_SEED, n_nets))
  variants = width.VARIANTS
  done, total = width.width_cells(log, widths, keys, x)
  stats = {v: width.width_stats(log, v, widths, n_nets) for v in variants}
  theory = width.t7_predictions(log, x) if cfg.t7 else None
  wd = Path(workdir)
  figures = width.curves(widths, stats, theory, wd)
  fig10 = {v: width.fig10(log, cfg, x, names, keys, wd, v)
           for v in variants} \
      if not log.out_of_time() else {v: None for v in variants}
  status = status_of(done, total)
  note = partial_note(log, done, total)
  results = [width.claim_s4c(stats["conv"], note, status, figures, theory),
             width.claim_s4d(stats, note, status, figures, theory),
             width.claim_s4e(fig10, cfg, note, status, theory)]
  if status == "measured" and cfg.sensitivity_size:
    results[0].sensitivity = sensitivity.s4c_rows(log, cfg, keys,
                                                  results[0])
    sensitivity.explain(results[0])
  return results


@EXPERIMENTS.add("S4f", title="Section 4.3: rrVGG Conv1_1-DeConv1_1 kernel "
                 "size", name="kernel_sweep",
                 configure=configure(KernelConfig), smoke_presets=SMOKE)
def run_kernel_sweep(cfg: KernelConfig, workdir: Path, deadline: Deadline
                     ) -> list[ClaimResult]:
  size, n_nets, kernels = cfg.size, cfg.nets, cfg.kernels
  x, names, used = sample_images(cfg.images, size, cfg.source)
  log = RunDir(workdir, {"experiment": "kernel_sweep", "preset": cfg.preset,
                         **cfg.record(), "dist": DIST, "seed": ROOT_SEED,
                         "image_source": used, "images": names,
                         "layer": "conv1_1", "conv_impl": "auto",
                         "weights": WEIGHTS,
                         "backend": jax.default_backend()},
               deadline=deadline)
  keys = np.asarray(engine.seed_keys(ROOT_SEED, n_nets))
  done, total = kernel.kernel_cells(log, kernels, keys, x)
  st = kernel.kernel_stats(log, kernels, n_nets)
  figures = kernel.kernel_figures(st, workdir)
  return [kernel.claim_s4f(st, partial_note(log, done, total),
                           status_of(done, total), figures)]
