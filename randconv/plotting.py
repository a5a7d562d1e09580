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
