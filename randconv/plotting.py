"""Figures: PNG files of images and grids (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from randconv import distributed


def _plt():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def unit(a) -> np.ndarray:
  """Min-max scaled to [0, 1] (a constant image becomes 0), float64."""
  a = np.asarray(a, np.float64)
  lo, hi = a.min(), a.max()
  return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def to_uint8(img: np.ndarray) -> np.ndarray:
  img = np.asarray(img, np.float32)
  if img.ndim == 3 and img.shape[-1] == 1:
    img = img[..., 0]
  return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def save_png(path: str | Path, img: np.ndarray) -> Path:
  """Saves an [H, W], [H, W, 1] or [H, W, 3] image in [0, 1]."""
  from PIL import Image
  path = Path(path)
  if distributed.is_main():  # many processes: process 0 writes
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(img)).save(path)
  return path


def image_grid(rows: list[list[np.ndarray]], path: str | Path, *,
               titles: list[list[str]] | None = None,
               row_labels: list[str] | None = None,
               col_labels: list[str] | None = None,
               cell: float = 1.6, suptitle: str | None = None) -> Path:
  """A grid of images (grey or RGB in [0, 1]) with optional titles."""
  plt = _plt()
  n_rows, n_cols = len(rows), max(len(r) for r in rows)
  fig, axes = plt.subplots(n_rows, n_cols, squeeze=False,
                           figsize=(cell * n_cols, cell * n_rows + 0.3))
  for i in range(n_rows):
    for j in range(n_cols):
      ax = axes[i][j]
      ax.set_xticks([])
      ax.set_yticks([])
      for s in ax.spines.values():
        s.set_visible(False)
      if j >= len(rows[i]):
        continue
      img = np.asarray(rows[i][j], np.float32)
      if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
      ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None,
                vmin=0, vmax=1)
      if titles and titles[i][j]:
        ax.set_title(titles[i][j], fontsize=8)
      if j == 0 and row_labels:
        ax.set_ylabel(row_labels[i], fontsize=8)
      if i == 0 and col_labels and not (titles and titles[i][j]):
        ax.set_title(col_labels[j], fontsize=8)
  if suptitle:
    fig.suptitle(suptitle, fontsize=9)
  return save_figure(fig, path)


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
  """Lays out, saves (creating the folder) and closes a matplotlib figure
  (with many processes, process 0 alone saves it)."""
  path = Path(path)
  if distributed.is_main():
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
  _plt().close(fig)
  return path


def width_panels(stats: dict[str, dict], key: str, ylabel: str, title: str,
                 path: str | Path, panels: list[tuple[str, str]], *,
                 theory: dict | None = None,
                 theory_label: str = "N = inf (predicted)") -> Path:
  """A metric against the width, one panel per ``(variant, title)`` of
  ``panels``: the mean over nets with a +-std band on a log2 axis.

  ``stats[variant]`` holds ``width``, ``<key>_mean`` and ``<key>_std``;
  ``theory[variant]`` (an infinite-width prediction with ``<key>_mean`` and
  ``<key>_std``) is drawn as a horizontal line, with a band where its std
  is positive."""
  plt = _plt()
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4),
                           sharey=True, squeeze=False)
  axes = axes[0]
  for ax, (variant, label) in zip(axes, panels):
    if variant not in stats:
      ax.set_visible(False)
      continue
    s = stats[variant]
    w = np.asarray(s["width"], float)
    m, sd = np.asarray(s[key + "_mean"]), np.asarray(s[key + "_std"])
    ax.fill_between(w, m - sd, m + sd, alpha=0.25, color="C0",
                    label="mean +- std over nets")
    ax.plot(w, m, "o-", color="C0", ms=4)
    t = (theory or {}).get(variant)
    if t is not None:
      tm, tsd = t[key + "_mean"], t.get(key + "_std", 0.0)
      lab = theory_label + (" (mean +- one image's std)" if tsd > 0
                            else "")
      ax.axhline(tm, color="C3", ls="--", lw=1.2, label=lab)
      if tsd > 0:
        ax.axhspan(tm - tsd, tm + tsd, color="C3", alpha=0.12)
    ax.set_xscale("log", base=2)
    ax.set_xticks(w)
    ax.set_xticklabels([str(int(v)) for v in w], fontsize=7)
    ax.set_xlabel("channels (width)")
    ax.set_title(label, fontsize=9)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel(ylabel)
  for ax in axes:
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7, loc="best")
  fig.suptitle(title, fontsize=9)
  return save_figure(fig, path)


