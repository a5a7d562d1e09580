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




# Charts whose reading does not depend on the axis: Section 3's loss curves
# and train/validation bars.

DECADE = 10.0  # values spanning at least this factor get a log axis


def y_scale(values) -> str:
  """``"log"`` where the positive finite ``values`` (None skipped) span at
  least a factor :data:`DECADE`, else ``"linear"``: on a log axis starting
  near 230, bars of 240 and 340 read as 1 to 4."""
  v = np.asarray([np.nan if x is None else x for x in values], np.float64)
  v = v[np.isfinite(v) & (v > 0)]
  if v.size < 2 or v.max() < DECADE * v.min():
    return "linear"
  return "log"


def short_number(v: float) -> str:
  """A tick label a reader takes in at a glance: 500, 2k, 100k, 5M."""
  for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
    if abs(v) >= scale:
      return f"{v / scale:g}{unit}"
  return f"{v:g}"


def bar_number(v: float) -> str:
  """A bar's value: 4 digits below 10,000 (1075, 76.53), else 3 and a
  unit (2.97M), never 1.07e+03."""
  return f"{v:.4g}" if abs(v) < 1e4 else short_number(float(f"{v:.3g}"))


def _axis(ax, yscale: str, values) -> None:
  """A log axis labelled with plain numbers (not bare powers of ten a
  reader has to interpolate): at 1, 2 and 5 per decade where ``values``
  span at most three decades, else at each power of ten."""
  if yscale == "log":
    from matplotlib import ticker
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    few = v.size and v.max() <= 1e3 * v.min()
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.LogLocator(
        10, subs=(1.0, 2.0, 5.0) if few else (1.0,)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(
        lambda v, _: short_number(v)))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
  ax.grid(axis="y", alpha=0.3, which="major")


LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def line_chart(curves: dict[str, tuple[np.ndarray, np.ndarray]],
               path: str | Path, *, title: str, xlabel: str, ylabel: str,
               yscale: str = "linear", caption: str | None = None,
               bands: dict | None = None) -> Path:
  """One line per ``label: (x, y)`` of ``curves``, each with its own line
  style and hollow marker, the markers staggered along x so that lines
  lying on one another all show (S3b's sigmas coincide); earlier lines are
  drawn wider, so one exactly under another still shows at its edges. The
  legend lists every curve. ``bands``: ``label: (low, high)`` arrays
  shaded around that curve (the spread over replicates)."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6.4, 4))
  k = max(len(curves), 1)
  for i, (label, (x, y)) in enumerate(curves.items()):
    if not len(y):
      continue
    every = max(k, len(y) // 8)
    ax.plot(x, y, LINE_STYLES[i % len(LINE_STYLES)],
            marker=MARKERS[i % len(MARKERS)], markevery=(i * every // k,
                                                         every),
            ms=7 - 4 * i / k, mfc="none", lw=2.6 - 1.6 * i / k,
            color=f"C{i}", label=label)
    if bands and label in bands:
      ax.fill_between(x, *bands[label], color=f"C{i}", alpha=0.18, lw=0)
  _axis(ax, yscale, np.concatenate([np.asarray(c[1], np.float64).ravel()
                                    for c in curves.values()] or [[]]))
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel + (" (log axis)" if yscale == "log" else ""))
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7)
  return save_figure(fig, path, caption=caption)


def bar_chart(groups: list[str], series: dict[str, list[float | None]],
              path: str | Path, *, title: str, ylabel: str,
              yscale: str = "linear", caption: str | None = None,
              errors: dict[str, list[float | None]] | None = None) -> Path:
  """Grouped bars, one colour per series, each bar labelled with its value
  (a missing one: "not run"), so that the heights need no axis to compare.
  ``errors``: per series, a half-height of an error bar per group (the
  spread over replicates; None: none)."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(7.5, 4))
  n = max(len(series), 1)
  width = 0.8 / n
  x = np.arange(len(groups))
  for i, (label, values) in enumerate(series.items()):
    ok = [v is not None and np.isfinite(v) for v in values]
    at = x + (i - (n - 1) / 2) * width
    err = (errors or {}).get(label)
    bars = ax.bar(at, [v if good else np.nan
                       for v, good in zip(values, ok, strict=True)],
                  width, label=label, color=f"C{i}",
                  yerr=None if err is None else [e or 0.0 for e in err],
                  capsize=2 if err is not None else 0)
    ax.bar_label(bars, [bar_number(v) if good else ""
                        for v, good in zip(values, ok, strict=True)],
                 fontsize=7, padding=1)
    for xi, good in zip(at, ok, strict=True):
      if not good:  # x in data, y in axes coordinates: any scale
        ax.text(xi, 0.02, "not run", rotation=90, fontsize=6,
                ha="center", va="bottom", transform=ax.get_xaxis_transform())
  _axis(ax, yscale, [v for vs in series.values() for v in vs
                     if v is not None])
  ax.margins(y=0.1)
  ax.set_xticks(x)
  ax.set_xticklabels(groups)
  ax.set_ylabel(ylabel + (" (log axis)" if yscale == "log" else ""))
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7)
  return save_figure(fig, path, caption=caption)
