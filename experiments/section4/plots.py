"""Figures of Section 4 (Figs. 7-10 and the kernel-size curve of 4.3).

Each function reads plain arrays (the numbers come from ``metrics.jsonl``)
and writes one PNG; grids of pictures use :func:`randconv.plotting.image_grid`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from randconv.plotting import _plt, image_grid, save_figure, width_panels


def fig7(inputs: np.ndarray, rows: dict[str, list[np.ndarray]],
         ssims: dict[str, list[float]], path: Path, layers: list[str],
         nets: dict[str, list[int]] | None = None,
         n_nets: int | None = None) -> Path:
  """Fig. 7: the cat through Conv1..Conv5 (row 1) and the simplified nets
  (row 2), the input first, SSIM above each output.

  Each panel is one net's output: ``nets[row][k]`` (of ``n_nets``), the
  net whose SSIM is closest to the mean over the nets, so its SSIM differs
  from the claim's table (the mean): the titles and caption say so."""
  grid, titles, labels = [], [], []
  for name, pictures in rows.items():
    grid.append([inputs] + list(pictures))
    shown = (nets or {}).get(name) or [None] * len(layers)
    titles.append(["input"] + [
        f"{layer}  SSIM {s:.3f}" + (f"\nnet {i} of {n_nets}"
                                    if i is not None else "")
        for layer, s, i in zip(layers, ssims[name], shown)])
    labels.append(name)
  which = (f"each panel is one net of {n_nets} (numbered from 0), the one "
           "whose SSIM is closest to the mean over the nets; the table "
           "gives the mean" if n_nets else "each panel is one net")
  return image_grid(grid, path, titles=titles, row_labels=labels, cell=2.0,
                    suptitle="Fig. 7: rrVGG ConvK-DeConvK (row 1) and the "
                    f"simplified nets (row 2)\n{which}",
                    caption="Fig. 7: the cat (left) and its outputs through "
                    "rrVGG Conv1-5 (row 1) and the simplified nets (row 2), "
                    "in grey, min-max scaled, SSIM above; " f"{which}.")


PANELS_89 = [("conv", "(a) rrVGG Conv1-DeConv1"),
             ("mean", "(b) channel-mean variant")]


def width_curves(widths: list[int], stats: dict[str, dict[str, np.ndarray]],
                 key: str, ylabel: str, title: str, path: Path,
                 theory: dict | None = None, caption: str | None = None
                 ) -> Path:
  """Figs. 8/9: ``key`` against the width, panel (a) the original rrVGG,
  (b) the channel-mean variant (:func:`randconv.plotting.width_panels`).
  ``caption`` (one line for the reports) defaults to one built from the
  title's figure name and ``ylabel``."""
  if caption is None:
    caption = (f"{title.split(':')[0]}: {ylabel} of the output against the "
               "number of random channels (log axis), mean over nets with a "
               "+-1 std band; (a) rrVGG Conv1-DeConv1, (b) its channel-mean "
               "variant" + ("; red dashed: T7's infinite-width prediction"
                            if theory else "") + ".")
  return width_panels(stats, key, ylabel, title, path, PANELS_89,
                      theory=theory, theory_label="T7: N = inf",
                      caption=caption)


def fig10(inputs: list[np.ndarray], outputs: list[list[np.ndarray]],
          ssims: list[list[float]], widths: list[int], names: list[str],
          path: Path, net: str = "rrVGG") -> Path:
  """Fig. 10: per image (row) and width (column) the output whose SSIM is
  closest to the mean over the nets, in grey, with its SSIM above."""
  grid, titles = [], []
  for x, outs, ss in zip(inputs, outputs, ssims):
    grid.append([x] + list(outs))
    titles.append(["input"] + [f"{w} ch: {s:.3f}" for w, s in zip(widths, ss)])
  return image_grid(grid, path, titles=titles, row_labels=names, cell=1.5,
                    suptitle=f"Fig. 10 ({net}): outputs closest to the mean "
                    "SSIM (grey), by width",
                    caption=f"Fig. 10 ({net}): per image (row), its grey "
                    "input and, at each width (column), the output of the "
                    "one net whose SSIM is closest to the mean over the "
                    "nets, in grey, min-max scaled; SSIM above.")


def kernel_curve(kernels: list[int], mean: np.ndarray, std: np.ndarray,
                 path: Path, r_mean: np.ndarray | None = None) -> Path:
  """Section 4.3: SSIM (and |r|) against the kernel size, std band."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(4.8, 3.4))
  k = np.asarray(kernels)
  ax.fill_between(k, mean - std, mean + std, alpha=0.25, color="C0")
  ax.plot(k, mean, "o-", color="C0", ms=4, label="SSIM")
  if r_mean is not None:
    ax.plot(k, r_mean, "s--", color="C1", ms=3, label="|r|")
  ax.set_xticks(k)
  ax.set_xlabel("kernel size")
  ax.set_ylabel("mean over nets")
  ax.set_title("Section 4.3: rrVGG Conv1_1-DeConv1_1", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  return save_figure(
      fig, path, caption="Section 4.3: SSIM" + (" and |r|" if r_mean is not
      None else "") + " of rrVGG Conv1_1-DeConv1_1 against the kernel size, "
      "mean over nets and images, with a +-1 std band over the nets.")
