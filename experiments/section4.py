"""Section 4 of the paper: fully random CNN-DCN ("rrVGG") experiments S4a-S4f.

Commands (runtimes on the 2-core dev machine, docs/performance.md):

  randconv reproduce --preset quick --only S4a S4b S4c S4d S4e S4f --out DIR
      # about 2 min
  randconv reproduce --preset cpu   --only S4a S4b S4c S4d S4e S4f --out DIR
      # about 20 min with T7's predictions and the sensitivity rows
  RANDCONV_TIME_BUDGET_S=480 randconv reproduce --preset paper \\
      --only S4c S4d --out DIR        # one GPU; stops cleanly between cells

Three experiments, each in ``OUT/<name>/`` (config.json, metrics.jsonl cell
by cell, figures; a re-run resumes):

* ``fig7`` (S4a, S4b): the cat through rrVGG Conv1..Conv5 and through the
  simplified ConvK nets, several nets; SSIM, |r| and the edge correlation of
  the cat, against a chance level made of the same nets' outputs for other
  images.
* ``conv1_width_sweep`` (S4c, S4d, S4e): rrVGG truncated at pool1
  (docs/design.md §1) with the original output and the channel-mean output,
  width 4, 8, ...; per net the mean SSIM and mean |r| over the images, then
  mean and std over the nets (Figs. 8, 9); Fig. 10 from the same nets;
  check T7's infinite-width prediction per image beside them, and at the
  cpu preset the sensitivity rows of S4a and S4c
  (``experiments.section4_sensitivity``).
* ``kernel_sweep`` (S4f): rrVGG Conv1_1-DeConv1_1 with kernel 1, 3, 5, ...

Presets (:data:`OVERRIDES` of the config dataclasses; the tests shrink
them further with field overrides), as fig7 / width sweep / kernel sweep:

* quick: 64 px, 2 nets, 2 others / 32 px, widths 4, 16, 64, 3 nets x 4
  images / 32 px, kernels 1-7, 3 nets x 4 images;
* cpu: 227 px, 6 nets, 3 others / 64 px, widths 4-1024, 10 nets x 16 images
  / 128 px, kernels 1-15, 10 nets x 20 images;
* paper: 227 px, 30 nets, 8 others / 227 px, widths 4-2048, 30 nets x 50
  images / 227 px, kernels 1-15, 30 nets x 50 images.

Weights: Gaussian(0, 0.015), plain ReLU, no biases (docs/design.md §3-4);
outputs rescaled between layers (homogeneous nets, docs/design.md §4).
Images: the offline photos and their crops (``experiments.section4_data``)
for tiny/quick/cpu; for paper, tfds ImageNet validation, a folder, or the
photos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import section4_data, section4_plots
from randconv import engine, metrics
from randconv.deadline import Deadline
from randconv.metrics import spearman
from randconv.registry import ClaimResult, Table, claim_text, preset_config
from randconv.rundir import RunDir
from randconv.spec import conv_flops, make_spec

DIST = "gaussian:0.015"
ROOT_SEED = 4
LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5"]



# --------------------------------------------------------------------------
# Configs: the cpu preset's values are the defaults; each preset overrides
# some fields (registry.preset_config). ``preset`` decides only whether the
# verdicts are smoke and which preset a run folder records.

@dataclass(frozen=True)
class Fig7Config:
  """Fig. 7 (S4a, S4b): the cat and ``others`` more photos at ``size`` px
  through ``nets`` random nets; ``width`` narrows every layer (None: the
  paper's); ``sensitivity_size``: the other size of S4a's sensitivity rows
  (None: no rows); ``law_size``: the size of the infinite-width law of
  each net (``experiments.section4_law``; None: not computed), with
  ``law_draws`` draws of its Gaussian process and ``law_pool_samples``
  joint samples per max pool."""

  preset: str = "cpu"
  size: int = 227
  nets: int = 6
  others: int = 3
  width: int | None = None
  sensitivity_size: int | None = 128
  law_size: int | None = 64
  law_draws: int = 200
  law_pool_samples: int = 8192

  def record(self) -> dict:
    """The fields that decide the cells (config.json)."""
    d = {"size": self.size, "nets": self.nets, "others": self.others}
    return d if self.width is None else {**d, "width": self.width}


@dataclass(frozen=True)
class WidthConfig:
  """Figs. 8-10 (S4c-S4e): ``images`` images at ``size`` px from
  ``source`` (section4_data.sample_images) through ``nets`` nets per
  width; Fig. 10 shows ``fig10_images`` images at ``fig10_widths``;
  ``t7``: T7's infinite-width predictions beside the curves (off: the
  sweep alone, for a quick look or a test)."""

  preset: str = "cpu"
  size: int = 64
  widths: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256, 512, 1024)
  nets: int = 10
  images: int = 16
  fig10_images: int = 4
  fig10_widths: tuple[int, ...] = (4, 16, 64, 256, 1024)
  source: str = "photos"
  sensitivity_size: int | None = 128
  t7: bool = True

  def record(self) -> dict:
    return {k: getattr(self, k) for k in (
        "size", "widths", "nets", "images", "fig10_images", "fig10_widths")}


@dataclass(frozen=True)
class KernelConfig:
  """Section 4.3 (S4f): Conv1_1-DeConv1_1 with each kernel size."""

  preset: str = "cpu"
  size: int = 128
  kernels: tuple[int, ...] = (1, 3, 5, 7, 9, 11, 13, 15)
  nets: int = 10
  images: int = 20
  source: str = "photos"

  def record(self) -> dict:
    return {k: getattr(self, k) for k in ("size", "kernels", "nets",
                                          "images")}


_QUICK = dict(preset="quick", size=32, nets=3, images=4)
OVERRIDES = {
    Fig7Config: {
        "quick": dict(preset="quick", size=64, nets=2, others=2,
                      sensitivity_size=None, law_size=32, law_draws=100),
        "cpu": {},
        "paper": dict(preset="paper", nets=30, others=8,
                      sensitivity_size=None)},
    WidthConfig: {
        "quick": dict(_QUICK, widths=(4, 16, 64), fig10_images=3,
                      fig10_widths=(4, 16, 64), sensitivity_size=None),
        "cpu": {},
        "paper": dict(preset="paper", size=227, widths=(
            4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048), nets=30,
            images=50, fig10_images=5,
            fig10_widths=(4, 16, 64, 256, 1024, 2048), source="auto",
            sensitivity_size=None)},
    KernelConfig: {
        "quick": dict(_QUICK, kernels=(1, 3, 5, 7)),
        "cpu": {},
        "paper": dict(preset="paper", size=227, nets=30, images=50,
                      source="auto")},
}


def config_for(cls, preset: str, **fields):
  """The ``cls`` config of ``preset`` (fields override it further, as the
  tests do for their small runs)."""
  return preset_config(cls(), OVERRIDES[cls], preset, **fields)


def _configure(cls):
  return lambda preset, settings: config_for(cls, preset)


EXPERIMENTS = Table()
SMOKE = ("quick",)  # presets whose verdicts only show the machinery ran


# Fig. 7's deep nets: XLA compiles the Winograd path of 26 convs in ~15 s
# per net here, the direct convs in ~1 s, and Fig. 7 is cheap (4.8 TFLOP at
# the cpu preset), so it runs the direct reference.
FIG7_IMPL = "direct"
# How a net's weights are drawn from its key, recorded in every config so
# that a run folder of older draws is refused rather than mixed: since
# 2026-12-01, ``CNNDCN(spec).init(key, method="draw")`` (randconv.engine.draw).
WEIGHTS = "flax-init"
# Most conv FLOP in one group of nets computed together (about 5 s of an
# H100 in float32), so RANDCONV_TIME_BUDGET_S is overrun by at most that.
GROUP_FLOP = 2e14
# Verdict thresholds (README, Section 4, "How claims are decided").
RANK_RISE = 0.8        # Spearman rho that counts as "rises"/"falls"
RISE_T = 3.0           # Welch t of the width sweep's rise, smallest->largest
RISE_RULE = (f"rises: the mean SSIM at the largest width exceeds the "
             f"smallest width's by Welch t >= {RISE_T} (std over nets); "
             "Spearman over all widths reported, not deciding: a curve that "
             "converges has a noisy plateau")
CONTOUR_Z = 3.0        # edge r this many chance stds above chance: contours
ROUGH_CONTOUR_Z = 1.0  # ... for the "rough contour" of Conv4
SIMILAR_ROWS = 0.5     # rows of Fig. 7 differ by < this x row 1's range


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


def _sweep_post(images, outputs):
  # "grey" (the picture, sign-aligned) feeds Fig. 10 and is not logged.
  return {"ssim": metrics.ssim(images, outputs),
          "pearson": metrics.pearson(images, outputs),
          "edge_r": edge_r(images, outputs),
          "grey": metrics.grey(metrics.display(images, outputs))}


def _kernel_post(images, outputs):
  return metrics.reconstruction_metrics(images, outputs)


def _fig7_post(images, outputs):
  # images[0] is the cat; the others' outputs give the chance level.
  first = jnp.broadcast_to(images[:1], images.shape)
  return {"ssim": metrics.ssim(images, outputs),
          "pearson": metrics.pearson(images, outputs),
          "edge_r": edge_r(images, outputs),
          "ssim_vs_first": metrics.ssim(first, outputs),
          "edge_r_vs_first": edge_r(first, outputs),
          "grey": metrics.grey(metrics.display(images, outputs))}


# --------------------------------------------------------------------------
# Helpers.

def _r(v) -> float:
  return round(float(v), 4)


def _groups(n: int, size: int) -> list[range]:
  return [range(i, min(n, i + size)) for i in range(0, n, size)]


def _net_group_size(spec, size: int, n_nets: int, n_images: int) -> int:
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


def _run_group(spec, keys, x, post, chunks=None, policy="auto"):
  strategy = engine.pick_strategy(spec, x.shape[1], x.shape[2])
  if len(keys) == 1:
    strategy = "loop"
  if len(engine.sweep_devices()) > 1:
    strategy = "shard"  # the group's nets split over every device
  return engine.run_nets(spec, DIST, keys, x, post=post, strategy=strategy,
                         chunks=chunks, policy=policy, rescale=True)


def _scores(res: dict) -> dict:
  """One net's logged numbers: per-image SSIM and r, and their means."""
  s, r = np.asarray(res["ssim"]), np.asarray(res["pearson"])
  return {"ssim_mean": float(s.mean()), "r_abs_mean": float(np.abs(r).mean()),
          "ssim": [float(v) for v in s], "pearson": [float(v) for v in r]}


def _run_cells(log: RunDir, spec, keys, x, post, cell, record, *,
               group_size: int | None = None, **run_kw) -> tuple[int, int]:
  """Runs every net of ``keys`` on ``x`` as cells of ``log``, in groups
  (``group_size`` nets, default :func:`_net_group_size`; on several
  devices at least one net per device): a group whose
  cells are all logged is skipped, none starts once the deadline has
  passed, and each group's new cells are logged as ``{"cell": cell(i),
  "net": i, **record(res_i)}`` where ``res_i`` is net ``i``'s slice of
  ``post``'s results. ``run_kw`` go to :func:`_run_group`.

  Returns:
    (cells done, cells in all).
  """
  from randconv import progress
  n_nets = len(keys)
  size = group_size or _net_group_size(spec, x.shape[1], n_nets, len(x))
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
    res = _run_group(spec, keys[group.start:group.stop], x, post, **run_kw)
    log.append([{"cell": c, "net": i,
                 **record(jax.tree_util.tree_map(lambda a, j=j: a[j], res))}
                for j, (c, i) in enumerate(zip(cells, group, strict=True))
                if not log.has(c)])
    done += len(cells)
  bar.close()
  return done, total


def _status(done: int, total: int) -> str:
  return "measured" if done == total else "partial"


def _partial_note(log: RunDir, done: int, total: int) -> dict:
  if done == total:
    return {}
  return {"partial": f"{done} of {total} cells (out of time; run again "
                     "with the same --out to resume)"}


# --------------------------------------------------------------------------
# Fig. 7: S4a and S4b.

@EXPERIMENTS.add("S4a", "S4b", title="Fig. 7: rrVGG ConvK-DeConvK, full "
                 "and simplified", name="fig7", configure=_configure(
                     Fig7Config), smoke_presets=SMOKE)
def run_fig7(cfg: Fig7Config, workdir: Path, deadline: Deadline
             ) -> list[ClaimResult]:
  size, n_nets = cfg.size, cfg.nets
  x, names = section4_data.offline_images(1 + cfg.others, size)
  log = RunDir(workdir, {"experiment": "fig7", "preset": cfg.preset,
                         **cfg.record(), "dist": DIST, "seed": ROOT_SEED,
                         "images": names, "conv_impl": FIG7_IMPL,
                         "weights": WEIGHTS,
                         "backend": jax.default_backend()},
               deadline=deadline)
  rows = {"original": False, "simplified": True}
  keys = np.asarray(engine.seed_keys(ROOT_SEED, n_nets))
  done, total = _fig7_cells(log, x, cfg, keys, rows)
  stats = {row: _fig7_stats(log, row, n_nets) for row in rows}
  figures = []
  if all(s is not None for row in rows for s in stats[row]):
    figures.append(_fig7_figure(log, x, cfg, keys, rows, stats, workdir))
  status = _status(done, total)
  note = _partial_note(log, done, total)
  results = [_claim_s4a(stats["original"], n_nets, size, note, status,
                        figures),
             _claim_s4b(stats, note, status, figures)]
  if status == "measured" and cfg.law_size:
    from experiments import section4_law
    law = section4_law.fig7_law(workdir, cfg, keys, rows, LAYERS, deadline,
                                _run_cells, _fig7_post, FIG7_IMPL, DIST,
                                ROOT_SEED)
    measured_decays = {
        "original": bool(results[0].measured.get("decays")),
        "simplified": results[1].measured.get(
            "spearman_simplified_vs_k", 0.0) <= -RANK_RISE}
    for res, row in zip(results, rows):
      section4_law.explain(res, law, row, RANK_RISE, measured_decays[row])
    if law is not None:
      fig = section4_law.plot(Path(workdir) / "fig7_law.png", law, stats,
                              size)
      for res in results:
        res.figures = list(res.figures) + [fig]
  if status == "measured" and cfg.sensitivity_size:
    from experiments import section4_sensitivity as sens
    results[0].sensitivity = sens.s4a_rows(log, cfg, keys, results[0])
    sens.explain(results[0])
  return results


def _fig7_cells(log: RunDir, x, cfg, keys, rows: dict, prefix: str = ""
                ) -> tuple[int, int]:
  """Every (row, layer, net) cell of Fig. 7 on ``x`` (cells named
  ``{prefix}{row}/{layer}/n{net}``), one net per call with the direct
  convs (:data:`FIG7_IMPL`). Returns (cells done, cells)."""
  total = done = 0
  for k, layer in enumerate(LAYERS, start=1):
    for row, simplified in rows.items():
      spec = make_spec("vgg16", layer, simplified=simplified,
                       width=cfg.width)
      d, t = _run_cells(
          log, spec, keys, x, _fig7_post,
          lambda i, row=row, layer=layer: f"{prefix}{row}/{layer}/n{i}",
          lambda res, row=row, layer=layer, k=k: {
              "row": row, "layer": layer, "k": k,
              **{m: [float(v) for v in res[m]] for m in res if m != "grey"}},
          group_size=1, chunks=engine.Plan(1, len(x)), policy=FIG7_IMPL)
      done, total = done + d, total + t
  return done, total


def _fig7_stats(log: RunDir, row: str, n_nets: int) -> list[dict | None]:
  """Per layer: the cat's numbers over the nets and the chance level (the
  same nets' outputs for the other images, compared with the cat)."""
  out = []
  for layer in LAYERS:
    recs = [log.get(f"{row}/{layer}/n{i}") for i in range(n_nets)
            if log.has(f"{row}/{layer}/n{i}")]
    if not recs:
      out.append(None)
      continue
    ssim = np.array([r["ssim"][0] for r in recs])
    er = np.array([r["edge_r"][0] for r in recs])
    chance = np.array([r["edge_r_vs_first"][1:] for r in recs]).ravel()
    chance_ssim = np.array([r["ssim_vs_first"][1:] for r in recs]).ravel()
    cstd = float(chance.std()) if chance.size > 1 else float("nan")
    out.append({
        "ssim": float(ssim.mean()), "ssim_std": float(ssim.std()),
        "r_abs": float(np.mean([abs(r["pearson"][0]) for r in recs])),
        "edge_r": float(er.mean()),
        "chance_edge_r": float(chance.mean()),
        "chance_ssim": float(chance_ssim.mean()),
        "contour_z": float((er.mean() - chance.mean()) / cstd)
        if cstd > 0 else float("nan"),
        "nets": len(recs)})
  return out


def _fig7_figure(log, x, cfg, keys, rows, stats, workdir) -> str:
  """Per row and layer, the net closest to the mean SSIM of the cat."""
  pictures = {row: [] for row in rows}
  shown = {row: [] for row in rows}
  nets = {row: [] for row in rows}
  for row, simplified in rows.items():
    for layer, s in zip(LAYERS, stats[row]):
      spec = make_spec("vgg16", layer, simplified=simplified,
                       width=cfg.width)
      ssims = [log.get(f"{row}/{layer}/n{i}")["ssim"][0]
               for i in range(len(keys))]
      best = int(np.argmin(np.abs(np.array(ssims) - s["ssim"])))
      out = _run_group(spec, keys[best:best + 1], x, _fig7_post,
                       chunks=engine.Plan(1, len(x)), policy=FIG7_IMPL)
      pictures[row].append(out["grey"][0, 0])
      shown[row].append(float(out["ssim"][0, 0]))
      nets[row].append(best)
  return str(section4_plots.fig7(
      x[0], pictures, shown, Path(workdir) / "fig7.png",
      [f"Conv{k}" for k in range(1, 6)], nets, len(keys)))


S4A_RULE = (f"decays: Spearman(K, SSIM) <= -{RANK_RISE} and SSIM(Conv1) > "
            f"SSIM(Conv5); contours: the cat's edge r (Sobel magnitudes) >= "
            f"chance + {CONTOUR_Z} chance std at Conv1-3, >= "
            f"{ROUGH_CONTOUR_Z} std at Conv4")


def s4a_decision(orig: list[dict]) -> dict:
  """S4a's verdict and sentence from Fig. 7 row 1's per-layer stats."""
  ssim = [s["ssim"] for s in orig]
  z = [s["contour_z"] for s in orig]
  rho = spearman(range(1, 6), ssim)
  decays = rho <= -RANK_RISE and ssim[0] > ssim[4]
  contours = all(v >= CONTOUR_Z for v in z[:3])
  rough = z[3] >= ROUGH_CONTOUR_Z
  return {"holds": bool(decays and contours and rough), "ssim": ssim,
          "z": z, "rho": rho, "decays": decays, "contours": contours,
          "rough": rough,
          "summary": (f"SSIM Conv1..5 {', '.join(f'{v:.3f}' for v in ssim)}"
                      f" (Spearman {rho:+.2f}, needs <= -{RANK_RISE}); edge-r"
                      f" z {', '.join(f'{v:.1f}' for v in z)} (needs >= "
                      f"{CONTOUR_Z:g} at Conv1-3, >= {ROUGH_CONTOUR_Z:g} at "
                      "Conv4)")}


def _claim_s4a(orig, n_nets, size, note, status, figures) -> ClaimResult:
  if any(s is None for s in orig):
    return ClaimResult("S4a", claim_text("S4a"), {
        "by_layer": [s and {k: _r(v) if isinstance(v, float) else v
                            for k, v in s.items()} for s in orig], **note},
        None, status, figures, rule=S4A_RULE)
  d = s4a_decision(orig)
  return ClaimResult("S4a", claim_text("S4a"), {
      "ssim_conv1_to_conv5": [_r(v) for v in d["ssim"]],
      "spearman_ssim_vs_depth": _r(d["rho"]),
      "edge_r_conv1_to_conv5": [_r(s["edge_r"]) for s in orig],
      "chance_edge_r": [_r(s["chance_edge_r"]) for s in orig],
      "contour_z_conv1_to_conv5": [_r(v) for v in d["z"]],
      "decays": bool(d["decays"]), "contours_conv1_3": bool(d["contours"]),
      "rough_contour_conv4": bool(d["rough"]), "rule": S4A_RULE,
      "nets": n_nets, "size": size, **note},
      d["holds"], status, figures, summary=d["summary"], rule=S4A_RULE,
      deciding={"SSIM Conv1..5": [_r(v) for v in d["ssim"]],
                "Spearman(K, SSIM)": _r(d["rho"]),
                "edge-r z Conv1..5": [round(v, 1) for v in d["z"]]})


S4B_RULE = (f"similar: mean |row 1 - row 2| SSIM < {SIMILAR_ROWS} x row 1's "
            f"range over K, and row 2 also falls with K (Spearman <= "
            f"-{RANK_RISE})")


def _claim_s4b(stats, note, status, figures) -> ClaimResult:
  orig, simp = stats["original"], stats["simplified"]
  if any(s is None for s in orig + simp):
    return ClaimResult("S4b", claim_text("S4b"), {
        "by_layer": [s and {k: _r(v) if isinstance(v, float) else v
                            for k, v in s.items()} for s in simp], **note},
        None, status, figures, rule=S4B_RULE)
  a = np.array([s["ssim"] for s in orig])
  b = np.array([s["ssim"] for s in simp])
  rho_b = spearman(range(1, 6), b)
  diff = float(np.mean(np.abs(a - b)))
  spread = float(a.max() - a.min())
  similar = diff < SIMILAR_ROWS * spread
  explanation = ""
  if similar and rho_b > -RANK_RISE:
    explanation = (
        "Half of it holds: the rows are similar (width matters more than "
        "depth), but row 2 does not fall with K. Not settled: the simplified"
        " net is our reading of Fig. 7's second row (one conv, K - 1 pools; "
        "docs/design.md §2), and no other reading was run.")
  return ClaimResult("S4b", claim_text("S4b"), {
      "ssim_simplified_conv1_to_conv5": [_r(v) for v in b],
      "ssim_original_conv1_to_conv5": [_r(v) for v in a],
      "spearman_simplified_vs_k": _r(rho_b),
      "mean_abs_row_difference": _r(diff),
      "row1_range_over_k": _r(spread), "rule": S4B_RULE, **note},
      bool(similar and rho_b <= -RANK_RISE), status, figures,
      summary=(f"row 2 SSIM {', '.join(f'{v:.3f}' for v in b)}; mean "
               f"|row 1 - row 2| {diff:.3f} vs {SIMILAR_ROWS} x {spread:.3f};"
               f" row 2's Spearman {rho_b:+.2f} (needs <= -{RANK_RISE})"),
      rule=S4B_RULE,
      deciding={"mean |row1 - row2|": _r(diff),
                "row 1 range": _r(spread),
                "Spearman(K, row 2 SSIM)": _r(rho_b)},
      explanation=explanation)


# --------------------------------------------------------------------------
# Figs. 8-10: S4c, S4d, S4e.

def _width_stats(log: RunDir, variant: str, widths: list[int],
                 n_nets: int) -> dict:
  out = {"width": [], "ssim_mean": [], "ssim_std": [], "r_mean": [],
         "r_std": [], "nets": [], "ssim_image_std": []}
  for w in widths:
    recs = [log.get(f"{variant}/w{w}/n{i}") for i in range(n_nets)
            if log.has(f"{variant}/w{w}/n{i}")]
    if len(recs) < n_nets:
      continue  # a width counts once all its nets are done
    s = np.array([r["ssim_mean"] for r in recs])
    r = np.array([r["r_abs_mean"] for r in recs])
    out["width"].append(w)
    out["ssim_mean"].append(float(s.mean()))
    out["ssim_std"].append(float(s.std()))
    out["r_mean"].append(float(r.mean()))
    out["r_std"].append(float(r.std()))
    out["nets"].append(len(recs))
    # One image's spread over nets, averaged over the images.
    out["ssim_image_std"].append(float(np.mean(np.std(
        [rec["ssim"] for rec in recs], axis=0))))
  return out


@EXPERIMENTS.add("S4c", "S4d", "S4e", title="Figs. 8-10: rrVGG Conv1-DeConv1 "
                 "width sweep, original and channel-mean output",
                 name="conv1_width_sweep",
                 configure=_configure(WidthConfig), smoke_presets=SMOKE)
def run_width_sweep(cfg: WidthConfig, workdir: Path, deadline: Deadline
                    ) -> list[ClaimResult]:
  size, n_nets, widths = cfg.size, cfg.nets, list(cfg.widths)
  x, names, used = section4_data.sample_images(cfg.images, size, cfg.source)
  log = RunDir(workdir, {"experiment": "conv1_width_sweep",
                         "preset": cfg.preset, **cfg.record(), "dist": DIST,
                         "seed": ROOT_SEED, "image_source": used,
                         "images": names, "layer": "pool1",
                         "conv_impl": "auto", "weights": WEIGHTS,
                         "backend": jax.default_backend()},
               deadline=deadline)
  keys = np.asarray(engine.seed_keys(ROOT_SEED, n_nets))
  variants = ("conv", "mean")
  total = done = 0
  for w in widths:  # both variants at each width: a cut run has pairs
    for variant in variants:
      spec = make_spec("vgg16", "pool1", width=w, output=variant)
      d, t = _run_cells(
          log, spec, keys, x, _sweep_post,
          lambda i, variant=variant, w=w: f"{variant}/w{w}/n{i}",
          lambda res, variant=variant, w=w: {
              "variant": variant, "width": w,
              "r_mean": float(res["pearson"].mean()),
              **_scores(res)})
      done, total = done + d, total + t

  stats = {v: _width_stats(log, v, widths, n_nets) for v in variants}
  theory = _t7_predictions(log, x) if cfg.t7 else None
  figures = []
  wd = Path(workdir)
  if any(stats[v]["width"] for v in variants):
    figures.append(str(section4_plots.width_curves(
        widths, stats, "ssim", "SSIM", "Fig. 8: SSIM vs number of random "
        "channels (mean +- std over nets); dashed: T7's infinite-width "
        "prediction", wd / "fig8_ssim.png", theory=theory)))
    figures.append(str(section4_plots.width_curves(
        widths, stats, "r", "|Pearson r|", "Fig. 9: |r| vs number of random "
        "channels (mean +- std over nets); dashed: T7's prediction",
        wd / "fig9_pearson.png", theory=theory)))
  fig10 = {v: _fig10(log, cfg, x, names, keys, wd, v) for v in variants} \
      if not log.out_of_time() else {v: None for v in variants}
  status = _status(done, total)
  note = _partial_note(log, done, total)
  results = [_claim_s4c(stats["conv"], note, status, figures, theory),
             _claim_s4d(stats, note, status, figures, theory),
             _claim_s4e(fig10, cfg, note, status, theory)]
  if status == "measured" and cfg.sensitivity_size:
    from experiments import section4_sensitivity as sens
    results[0].sensitivity = sens.s4c_rows(log, cfg, keys, results[0])
    sens.explain(results[0])
  return results


# --------------------------------------------------------------------------
# Check T7's infinite-width predictions for Figs. 8-9 (theory_checks/README,
# "T7"): per image, the conv output's SSIM and |r| over draws of its
# Gaussian-process limit, and the channel mean's limit image's.

T7_GP_SAMPLES = 200      # GP draws per image
T7_POOL_SAMPLES = 8192   # joint max-pool samples per image (full kernel)


def _t7_cell(variant: str, x: np.ndarray, j: int) -> dict | str:
  """One image's T7 prediction record, or why it cannot be computed here
  (the conv output's full kernel over the size cap)."""
  from theory_checks import limits, t7
  try:
    if variant == "conv":
      return t7.conv_law(x, n=T7_GP_SAMPLES, samples=T7_POOL_SAMPLES,
                         seed=ROOT_SEED + j)[0]
    return t7.mean_law(x, seed=ROOT_SEED + j)[0]
  except limits.TheoryError as e:
    return str(e)


def _t7_predictions(log: RunDir, x: np.ndarray) -> dict | None:
  """T7's predicted Fig. 8-9 values (mean over the images), as
  :func:`theory_checks.t7.predictions` gives them. A variant whose law
  cannot be computed here is left out, with the reason (it is not logged,
  so a larger cap on another machine computes it). The cell names carry
  the sample counts. None when the time budget ran out first."""
  from randconv import progress
  from theory_checks import gp, t7
  names = {"conv": f"t7/conv-n{T7_GP_SAMPLES}-p{T7_POOL_SAMPLES}",
           "mean": f"t7/mean-w{gp.WINDOW_SAMPLES}"}
  recs = [{} for _ in x]
  missing = {}
  for j in progress.iterate(range(len(x)), "T7 predictions", "image"):
    for variant, name in names.items():
      cell = f"{name}/i{j}"
      if not log.has(cell):
        if log.out_of_time():
          return None
        rec = _t7_cell(variant, x[j], j)
        if isinstance(rec, str):
          missing[variant] = rec
          continue
        log.append([{"cell": cell, **rec}])
      recs[j].update(log.get(cell))
  pred = {}
  if "conv" not in missing:
    pred["conv"] = t7.predictions(recs, "conv")
  if "mean" not in missing:
    pred["mean"] = t7.predictions(recs, "mean")
  for variant, why in missing.items():
    pred[f"{variant}_unavailable"] = why
  return pred


def _rise(s: dict, key: str = "ssim") -> dict:
  """The rise from the smallest to the largest width: its Welch t (per-net
  means, std over nets) decides; Spearman over all widths is reported."""
  m, sd, n = s[key + "_mean"], s[key + "_std"], s["nets"]
  se = math.sqrt(sd[0] ** 2 / n[0] + sd[-1] ** 2 / n[-1])
  gain = m[-1] - m[0]
  return {"spearman": spearman(s["width"], m), "gain": gain,
          "t": gain / se if se > 0 else float("inf") * np.sign(gain)}


def _table(s: dict) -> dict:
  return {"width": s["width"],
          "ssim_mean": [_r(v) for v in s["ssim_mean"]],
          "ssim_std": [_r(v) for v in s["ssim_std"]],
          "r_abs_mean": [_r(v) for v in s["r_mean"]],
          "r_abs_std": [_r(v) for v in s["r_std"]]}


def _theory(theory: dict | None, variant: str, s: dict) -> dict:
  """T7's prediction beside the measured plateau, as numbers and words."""
  if not theory or variant not in theory:
    why = (theory or {}).get(f"{variant}_unavailable",
                             "not computed (time budget)")
    return {"t7_prediction": None, "theory": f"T7: {why}"}
  t = theory[variant]
  if variant == "conv":
    measured = (f"measured {s['ssim_mean'][-1]:.3f} +- "
                f"{s['ssim_image_std'][-1]:.3f} at width {s['width'][-1]:,}"
                if s["width"] else "")
    text = (f"T7 predicts a plateau of {t['ssim_mean']:.3f} +- "
            f"{t['ssim_std']:.3f} at infinite width (a Gaussian-process "
            f"output; mean, and one image's std over draws); {measured} "
            "(one image's std over nets)")
  else:
    measured = (f"measured {s['ssim_mean'][-1]:.3f} +- "
                f"{s['ssim_std'][-1]:.3f} at width {s['width'][-1]:,}"
                if s["width"] else "")
    text = (f"T7 predicts {t['ssim_mean']:.3f} at infinite width (the "
            f"max-pool limit image's SSIM); {measured}")
  return {"t7_prediction": {k: _r(v) for k, v in t.items()}, "theory": text}


def rise_summary(s: dict) -> str:
  """The rise's deciding numbers in words."""
  rs = _rise(s)
  return (f"SSIM {s['ssim_mean'][0]:.3f} at width {s['width'][0]:,} and "
          f"{s['ssim_mean'][-1]:.3f} at {s['width'][-1]:,}, Welch t = "
          f"{rs['t']:.2f} ({'>=' if rs['t'] >= RISE_T else '<'} "
          f"{RISE_T:g})")


def plateau_z(s: dict, t: dict, from_width: int = 64) -> list[float]:
  """z of the measured mean SSIM against T7's prediction at each width >=
  ``from_width`` (SE: std over nets / sqrt(nets), and the prediction's)."""
  zs = []
  for w, m, sd, n in zip(s["width"], s["ssim_mean"], s["ssim_std"],
                         s["nets"]):
    if w >= from_width:
      se = math.sqrt(sd * sd / max(n - 1, 1) + t.get("ssim_se", 0.0) ** 2)
      zs.append((m - t["ssim_mean"]) / se if se > 0 else float("inf"))
  return zs


def _explain_s4c(theory: dict | None, holds: bool, s: dict) -> str:
  if holds or not theory or "conv" not in theory:
    return ""
  t = theory["conv"]
  zs = plateau_z(s, t)
  law = (f"T7: the random conv output layer makes the output exactly "
         f"Gaussian given the last hidden layer, and as the width grows its "
         f"kernel converges, so the output converges in distribution to a "
         f"Gaussian process, not to an image; its SSIM with the input "
         f"converges to a distribution, predicted at {t['ssim_mean']:.3f} "
         f"+- {t['ssim_std']:.3f} (mean, one image's std).")
  if zs and max(abs(z) for z in zs) <= 3:
    return (f"Effect absent, as predicted. {law} The measured mean SSIM "
            f"at every width >= 64 is within {max(abs(z) for z in zs):.1f} "
            "standard errors of that plateau, so more width cannot raise it.")
  return (f"{law} This run's curve is "
          f"{max((abs(z) for z in zs), default=float('nan')):.1f} standard "
          "errors from that plateau at some width >= 64: it has not "
          "settled on it.")


def _claim_s4c(s, note, status, figures, theory=None) -> ClaimResult:
  if len(s["width"]) < 3:
    return ClaimResult("S4c", claim_text("S4c"), {**_table(s), **note}, None,
                       status, figures, rule=RISE_RULE)
  rs, rr = _rise(s), _rise(s, "r")
  holds = rs["t"] >= RISE_T
  th = _theory(theory, "conv", s)
  return ClaimResult("S4c", claim_text("S4c"), {
      **_table(s), **th,
      "spearman_ssim_vs_width": _r(rs["spearman"]),
      "spearman_r_vs_width": _r(rr["spearman"]),
      "ssim_gain_smallest_to_largest": _r(rs["gain"]),
      "welch_t_ssim_largest_vs_smallest": _r(rs["t"]),
      "welch_t_r_largest_vs_smallest": _r(rr["t"]),
      "rule": RISE_RULE, **note},
      bool(holds), status, figures,
      summary=f"{rise_summary(s)}; {th['theory']}", rule=RISE_RULE,
      deciding={"widths": s["width"],
                "mean SSIM": [_r(v) for v in s["ssim_mean"]],
                "std over nets": [_r(v) for v in s["ssim_std"]],
                "Welch t (largest vs smallest)": _r(rs["t"]),
                "T7 prediction (N = inf)": th["t7_prediction"] and
                f"{th['t7_prediction']['ssim_mean']} +- "
                f"{th['t7_prediction']['ssim_std']}"},
      explanation=_explain_s4c(theory, holds, s))


def _converge(m: list[float]) -> float:
  """The last doubling's gain as a fraction of the whole rise."""
  total = m[-1] - m[0]
  return (m[-1] - m[-2]) / total if total > 0 else float("nan")


def _snr(s: dict) -> float:
  return (s["ssim_mean"][-1] - s["ssim_mean"][0]) / max(
      1e-12, float(np.mean(s["ssim_std"])))


def _claim_s4d(stats, note, status, figures, theory=None) -> ClaimResult:
  s, c = stats["mean"], stats["conv"]
  if len(s["width"]) < 3 or len(c["width"]) < 3:
    return ClaimResult("S4d", claim_text("S4d"), {**_table(s), **note}, None,
                       status, figures, rule=RISE_RULE)
  rs = _rise(s)
  conv_mean, conv_conv = _converge(s["ssim_mean"]), _converge(c["ssim_mean"])
  snr_mean, snr_conv = _snr(s), _snr(c)
  std_shrinks = s["ssim_std"][-1] < s["ssim_std"][0]
  rises = rs["t"] >= RISE_T
  clearer = snr_mean > snr_conv
  converges = conv_mean < conv_conv or not conv_conv > 0
  th = _theory(theory, "mean", s)
  rule = (f"{RISE_RULE}; clearer: (rise / mean std) above the original's; "
          "convergence clearer: the last doubling's share of the rise below "
          "the original's; std at the largest width below the smallest's")
  conv_share = (f"rrVGG's {conv_conv:.0%}" if conv_conv == conv_conv
                else "rrVGG's none (it does not rise)")
  summary = (f"{rise_summary(s)}; rise/std {snr_mean:.1f} vs {snr_conv:.1f} "
             f"for rrVGG; last doubling {conv_mean:.0%} of the rise vs "
             f"{conv_share}; std {s['ssim_std'][0]:.3f} -> "
             f"{s['ssim_std'][-1]:.3f}; {th['theory']}")
  extra = dict(summary=summary, rule=rule, deciding={
      "widths": s["width"], "mean SSIM": [_r(v) for v in s["ssim_mean"]],
      "std over nets": [_r(v) for v in s["ssim_std"]],
      "Welch t": _r(rs["t"]), "rise / mean std (mean, conv)":
      [_r(snr_mean), _r(snr_conv)],
      "T7 prediction (N = inf)": th["t7_prediction"] and
      th["t7_prediction"]["ssim_mean"]})
  if theory and "mean" in theory:
    z = plateau_z(s, theory["mean"], from_width=s["width"][-1])[0]
    extra["explanation"] = (
        f"T7: the channel-mean output converges to a fixed image, the "
        f"max-pool limit, whose SSIM with the input is "
        f"{theory['mean']['ssim_mean']:.3f}; at width {s['width'][-1]:,} the"
        f" measured mean is {s['ssim_mean'][-1]:.3f}, {z:+.1f} standard "
        "errors from it.")
  return ClaimResult("S4d", claim_text("S4d"), {
      **_table(s), **th,
      "spearman_ssim_vs_width": _r(rs["spearman"]),
      "welch_t_ssim_largest_vs_smallest": _r(rs["t"]),
      "std_smallest_width": _r(s["ssim_std"][0]),
      "std_largest_width": _r(s["ssim_std"][-1]),
      "rise_over_mean_std": {"mean": _r(snr_mean), "conv": _r(snr_conv)},
      "last_doubling_share_of_rise": {"mean": _r(conv_mean),
                                      "conv": _r(conv_conv)},
      "rises": bool(rises), "clearer": bool(clearer),
      "converges_clearer": bool(converges), "std_shrinks": bool(std_shrinks),
      "rule": rule, **note},
      bool(rises and clearer and converges and std_shrinks), status, figures,
      **extra)


def _fig10(log: RunDir, cfg, x, names, keys, wd: Path,
           variant: str = "conv"):
  """Per image and width, the net whose SSIM on that image is closest to the
  mean over the nets; its output is recomputed (cheap)."""
  n_nets, size = cfg.nets, cfg.size
  prefix = "s4e" if variant == "conv" else f"s4e-{variant}"
  widths = [w for w in cfg.fig10_widths
            if all(log.has(f"{variant}/w{w}/n{i}") for i in range(n_nets))]
  if len(widths) < 2:
    return None
  rows = list(range(min(cfg.fig10_images, len(x))))
  outs, ssims, edges = [], [], []
  cache = {}
  for j in rows:
    o_row, s_row, e_row = [], [], []
    for w in widths:
      cell = f"{prefix}/i{j}/w{w}"
      per_net = np.array([log.get(f"{variant}/w{w}/n{i}")["ssim"][j]
                          for i in range(n_nets)])
      best = int(np.argmin(np.abs(per_net - per_net.mean())))
      spec = make_spec("vgg16", "pool1", width=w, output=variant)
      gsize = _net_group_size(spec, size, n_nets, len(x))
      if gsize > 1:
        # Cheap nets: recompute best's cell group as the sweep did (the
        # same compiled call), then pick the net and the image.
        g0 = best // gsize * gsize
        group = range(g0, min(n_nets, g0 + gsize))
        if (w, g0) not in cache:
          cache[(w, g0)] = _run_group(spec, keys[group.start:group.stop], x,
                                      _sweep_post)
        res = cache[(w, g0)]
        i, jj = best - g0, j
      else:
        # Costly nets: only this image (one more compile, 1/B the work).
        res = _run_group(spec, keys[best:best + 1], x[j:j + 1], _sweep_post)
        i, jj = 0, 0
      shown = {m: float(res[m][i, jj]) for m in ("ssim", "edge_r")}
      if not log.has(cell):
        log.append([{"cell": cell, "image": j, "width": w, "net": best,
                  **shown, "mean_ssim_over_nets": float(per_net.mean())}])
      o_row.append(res["grey"][i, jj])
      s_row.append(shown["ssim"])
      e_row.append(shown["edge_r"])
    outs.append(o_row)
    ssims.append(s_row)
    edges.append(e_row)
  grey_in = [np.asarray(metrics.grey(jnp.asarray(x[j]))) for j in rows]
  path = section4_plots.fig10(
      grey_in, outs, ssims, widths, [names[j].split(":")[0] for j in rows],
      wd / ("fig10.png" if variant == "conv" else f"fig10_{variant}.png"),
      "rrVGG" if variant == "conv" else "channel-mean variant")
  return {"widths": widths, "ssim": ssims, "edge_r": edges,
          "images": [names[j] for j in rows], "figure": str(path)}


def _sharpening(f: dict) -> dict:
  rho_s = [spearman(f["widths"], s) for s in f["ssim"]]
  rho_e = [spearman(f["widths"], e) for e in f["edge_r"]]
  return {"widths": f["widths"],
          "shown_ssim": [[_r(v) for v in row] for row in f["ssim"]],
          "shown_edge_r": [[_r(v) for v in row] for row in f["edge_r"]],
          "mean_spearman_ssim_vs_width": _r(np.mean(rho_s)),
          "mean_spearman_edge_r_vs_width": _r(np.mean(rho_e))}


def _claim_s4e(fig10, cfg, note, status, theory=None) -> ClaimResult:
  """Decided on rrVGG (the paper's network of Section 4.2, as Fig. 10 does
  not name the variant); the channel-mean variant's numbers come along."""
  if fig10["conv"] is None:
    return ClaimResult("S4e", claim_text("S4e"), note or None, None,
                       status if status != "measured" else "partial")
  conv = _sharpening(fig10["conv"])
  ms = conv["mean_spearman_ssim_vs_width"]
  me = conv["mean_spearman_edge_r_vs_width"]
  rule = (f"sharpen (decided on rrVGG): over the shown pictures, mean "
          f"Spearman(width, SSIM) and mean Spearman(width, edge r) both >= "
          f"{RANK_RISE}")
  measured = {"images": fig10["conv"]["images"], **conv, "rule": rule,
              **note}
  figures = [fig10["conv"]["figure"]]
  if fig10.get("mean") is not None:
    measured["channel_mean_variant"] = _sharpening(fig10["mean"])
    figures.append(fig10["mean"]["figure"])
  explanation = ""
  if theory and "conv" in theory:
    t = theory["conv"]
    measured["theory"] = (
        f"T7: at infinite width rrVGG's output is a draw of a Gaussian "
        f"process (SSIM {t['ssim_mean']:.3f} +- {t['ssim_std']:.3f}), not "
        "an image, so its pictures need not sharpen; the channel mean's "
        "converge to a fixed limit image")
    if not (ms >= RANK_RISE and me >= RANK_RISE):
      explanation = "Effect absent, as predicted. " + measured["theory"]
      mean = measured.get("channel_mean_variant")
      if mean and mean["mean_spearman_ssim_vs_width"] >= RANK_RISE:
        explanation += (" (the channel mean's own Fig. 10 sharpens: mean "
                        "Spearman(width, SSIM) "
                        f"{mean['mean_spearman_ssim_vs_width']:+.2f})")
      explanation += "."
  summary = (f"over the shown rrVGG pictures mean Spearman(width, SSIM) "
             f"{ms:+.2f} and (width, edge r) {me:+.2f} (both need >= "
             f"{RANK_RISE})")
  return ClaimResult("S4e", claim_text("S4e"), measured,
                     bool(ms >= RANK_RISE and me >= RANK_RISE), status,
                     figures, summary=summary, rule=rule,
                     deciding={"mean Spearman(width, SSIM)": ms,
                               "mean Spearman(width, edge r)": me},
                     explanation=explanation)


# --------------------------------------------------------------------------
# Section 4.3: S4f.

@EXPERIMENTS.add("S4f", title="Section 4.3: rrVGG Conv1_1-DeConv1_1 kernel "
                 "size", name="kernel_sweep",
                 configure=_configure(KernelConfig), smoke_presets=SMOKE)
def run_kernel_sweep(cfg: KernelConfig, workdir: Path, deadline: Deadline
                     ) -> list[ClaimResult]:
  size, n_nets, kernels = cfg.size, cfg.nets, cfg.kernels
  x, names, used = section4_data.sample_images(cfg.images, size, cfg.source)
  log = RunDir(workdir, {"experiment": "kernel_sweep", "preset": cfg.preset,
                         **cfg.record(), "dist": DIST, "seed": ROOT_SEED,
                         "image_source": used, "images": names,
                         "layer": "conv1_1", "conv_impl": "auto",
                         "weights": WEIGHTS,
                         "backend": jax.default_backend()},
               deadline=deadline)
  keys = np.asarray(engine.seed_keys(ROOT_SEED, n_nets))
  total = done = 0
  for k in kernels:
    spec = make_spec("vgg16", "conv1_1", kernel_size=k)
    d, t = _run_cells(log, spec, keys, x, _kernel_post,
                      lambda i, k=k: f"k{k}/n{i}",
                      lambda res, k=k: {"kernel": k, **_scores(res)})
    done, total = done + d, total + t

  ks, mean, std, rmean = [], [], [], []
  for k in kernels:
    recs = [log.get(f"k{k}/n{i}") for i in range(n_nets)
            if log.has(f"k{k}/n{i}")]
    if len(recs) < n_nets:
      continue
    s = np.array([r["ssim_mean"] for r in recs])
    ks.append(k)
    mean.append(float(s.mean()))
    std.append(float(s.std()))
    rmean.append(float(np.mean([r["r_abs_mean"] for r in recs])))
  figures = []
  if ks:
    figures.append(str(section4_plots.kernel_curve(
        ks, np.array(mean), np.array(std), Path(workdir) / "kernel_size.png",
        np.array(rmean))))
  status = _status(done, total)
  note = _partial_note(log, done, total)
  measured = {"kernel": ks, "ssim_mean": [_r(v) for v in mean],
              "ssim_std": [_r(v) for v in std],
              "r_abs_mean": [_r(v) for v in rmean], **note}
  if len(ks) < 3:
    return [ClaimResult("S4f", claim_text("S4f"), measured, None, status,
                        figures)]
  rho = spearman(ks, mean)
  holds = rho <= -RANK_RISE and mean[-1] < mean[0]
  rule = (f"falls: Spearman(kernel, mean SSIM) <= -{RANK_RISE} and the "
          "largest kernel's SSIM below the smallest's")
  measured.update({"spearman_ssim_vs_kernel": _r(rho), "rule": rule})
  return [ClaimResult(
      "S4f", claim_text("S4f"), measured, bool(holds), status, figures,
      summary=(f"SSIM {mean[0]:.3f} at kernel {ks[0]} and {mean[-1]:.3f} at "
               f"{ks[-1]}, Spearman {rho:+.2f} (needs <= -{RANK_RISE})"),
      rule=rule, deciding={"kernels": ks,
                           "mean SSIM": [_r(v) for v in mean],
                           "Spearman(kernel, SSIM)": _r(rho)})]


def cost_gflop(preset: str) -> dict[str, float]:
  """Conv GFLOP of each experiment at ``preset`` (for sizing presets)."""
  f7, wcfg, kcfg = (config_for(c, preset) for c in (
      Fig7Config, WidthConfig, KernelConfig))
  n7 = f7["nets"] * (1 + f7["others"])
  fig7 = sum(conv_flops(make_spec("vgg16", layer, simplified=s),
                        f7["size"], f7["size"]) for layer in LAYERS
             for s in (False, True)) * n7
  widths = sum(conv_flops(make_spec("vgg16", "pool1", width=w, output=o),
                          wcfg.size, wcfg.size)
               for w in wcfg.widths for o in ("conv", "mean"))
  widths *= wcfg.nets * wcfg.images
  kern = sum(conv_flops(make_spec("vgg16", "conv1_1", kernel_size=k),
                        kcfg.size, kcfg.size) for k in kcfg.kernels)
  kern *= kcfg.nets * kcfg.images
  return {"fig7": fig7 / 1e9, "conv1_width_sweep": widths / 1e9,
          "kernel_sweep": kern / 1e9}
