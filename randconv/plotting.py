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


CAPTION_KEY = "Description"  # the PNG text chunk a figure's caption goes in


def save_png(path: str | Path, img: np.ndarray, caption: str | None = None
             ) -> Path:
  """Saves an [H, W], [H, W, 1] or [H, W, 3] image in [0, 1], with
  ``caption`` in its PNG text (:func:`caption_of`)."""
  from PIL import Image
  from PIL.PngImagePlugin import PngInfo
  path = Path(path)
  if distributed.is_main():  # many processes: process 0 writes
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    if caption:
      info.add_text(CAPTION_KEY, caption)
    Image.fromarray(to_uint8(img)).save(path, pnginfo=info)
  return path


def caption_of(path: str | Path) -> str | None:
  """The one-line caption a figure was saved with (:func:`save_figure`,
  :func:`image_grid`, :func:`save_png`), or None: the caption travels in
  the PNG, so a report (or a reader) needs no other record of it."""
  from PIL import Image
  try:
    with Image.open(path) as im:
      text = getattr(im, "text", None) or im.info
      value = text.get(CAPTION_KEY)
  except (OSError, ValueError):
    return None
  value = str(value or "").strip()
  return value or None


TITLE_LINE_IN = 0.16   # inches a line of 8 pt title takes, with its pad
SUPTITLE_LINE_IN = 0.2


def _lines(text: str | None) -> int:
  return text.count("\n") + 1 if text else 0


def image_grid(rows: list[list[np.ndarray]], path: str | Path, *,
               titles: list[list[str]] | None = None,
               row_labels: list[str] | None = None,
               col_labels: list[str] | None = None,
               cell: float = 1.6, suptitle: str | None = None,
               caption: str | None = None) -> Path:
  """A grid of images (grey or RGB in [0, 1]) with optional titles and a
  one-line ``caption`` (kept in the PNG, shown by the reports).

  Laid out by matplotlib's constrained layout in a figure as tall as the
  images plus each row's title lines: ``tight_layout`` on a figure exactly
  ``cell`` inches a row let the titles of one row run into the images
  above them."""
  plt = _plt()
  n_rows, n_cols = len(rows), max(len(r) for r in rows)
  heads = []
  for i in range(n_rows):
    row = list(titles[i]) if titles else []
    if i == 0 and col_labels:  # a column's label where it has no title
      row += [""] * (len(col_labels) - len(row))
      row = [t or (col_labels[j] if j < len(col_labels) else "")
             for j, t in enumerate(row)]
    heads.append(row)
  height = sum(cell + TITLE_LINE_IN * max([_lines(t) for t in h] or [0])
               for h in heads) + SUPTITLE_LINE_IN * _lines(suptitle) + 0.15
  fig = plt.figure(figsize=(cell * n_cols + (0.3 if row_labels else 0),
                            height), layout="constrained")
  fig.get_layout_engine().set(w_pad=0.03, h_pad=0.03, wspace=0.04,
                              hspace=0.02)
  axes = fig.subplots(n_rows, n_cols, squeeze=False)
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
      if j < len(heads[i]) and heads[i][j]:
        ax.set_title(heads[i][j], fontsize=8, pad=3)
      if j == 0 and row_labels:
        ax.set_ylabel(row_labels[i], fontsize=8)
  if suptitle:
    fig.suptitle(suptitle, fontsize=9)
  return save_figure(fig, path, caption=caption)


def save_figure(fig, path: str | Path, dpi: int = 100,
                caption: str | None = None) -> Path:
  """Lays out (unless the figure has its own layout engine), saves
  (creating the folder, ``caption`` in the PNG's text: :func:`caption_of`)
  and closes a matplotlib figure (with many processes, process 0 alone
  saves it)."""
  path = Path(path)
  if distributed.is_main():
    if fig.get_layout_engine() is None:
      fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi,
                metadata={CAPTION_KEY: caption} if caption else None)
  _plt().close(fig)
  return path


def width_panels(stats: dict[str, dict], key: str, ylabel: str, title: str,
                 path: str | Path, panels: list[tuple[str, str]], *,
                 theory: dict | None = None,
                 theory_label: str = "N = inf (predicted)",
                 caption: str | None = None) -> Path:
  """A metric against the width, one panel per ``(variant, title)`` of
  ``panels``: the mean over nets with a +-std band on a log2 axis.

  ``stats[variant]`` holds ``width``, ``<key>_mean`` and ``<key>_std``;
  ``theory[variant]`` (an infinite-width prediction with ``<key>_mean`` and
  ``<key>_std``) is drawn as a horizontal line, with a band where its std
  is positive; ``caption``: one line for the reports."""
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
  return save_figure(fig, path, caption=caption)


