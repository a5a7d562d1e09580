"""Input images for Section 4: the paper's 50 ImageNet validation images
where the user has them, the offline photos otherwise (docs/design.md §7).

Sources, in the order ``auto`` tries them:

1. tensorflow-datasets ``imagenet2012`` then ``imagenette``, validation
   split, through ``tfds.data_source`` (array_record, random access, no
   TensorFlow needed to index it), only when already prepared in
   ``TFDS_DATA_DIR`` (nothing is downloaded);
2. a folder of images (``RANDCONV_IMAGE_DIR``);
3. the offline photos (:func:`offline_images`).

``n`` images are drawn from a source with a fixed seed (the paper "randomly
picks 50 samples"), in sorted index order, each resized on its shorter side
and centre-cropped. The quick and cpu presets use the offline photos only,
so their numbers never depend on what the machine has.

``RANDCONV_IMAGES`` forces a source: ``photos``, ``tfds:NAME`` or a folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from randconv import images as imglib
from randconv import settings

IMAGE_SOURCE_ENV = "RANDCONV_IMAGES"
IMAGE_DIR_ENV = "RANDCONV_IMAGE_DIR"
TFDS_NAMES = ("imagenet2012", "imagenette")
SUFFIXES = (".png", ".jpg", ".jpeg", ".JPEG", ".bmp", ".tif", ".tiff",
            ".webp")

# Crops of the offline photos beyond the first (the whole centre square):
# (fraction of the shorter side, corner). Image k is photo k % 9 under crop
# k // 9, so the first 9 images are the photos themselves (the cat first)
# and every further image is a distinct, deterministic part of one of them.
_CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right",
            "centre")


def _crop_spec(j: int) -> tuple[float, str]:
  j -= 1
  return 0.7 - 0.1 * (j // len(_CORNERS)), _CORNERS[j % len(_CORNERS)]


def _square_crop(img: np.ndarray, frac: float, corner: str) -> np.ndarray:
  h, w = img.shape[:2]
  side = max(1, int(round(min(h, w) * frac)))
  top = {"top": 0, "bottom": h - side}.get(corner.split("-")[0],
                                           (h - side) // 2)
  left = {"left": 0, "right": w - side}.get(corner.split("-")[-1],
                                            (w - side) // 2)
  return img[top:top + side, left:left + side]


def offline_images(n: int, size: int) -> tuple[np.ndarray, list[str]]:
  """``n`` images from the 9 offline photos and their crops.

  Image ``k`` is photo ``k % 9``; ``k // 9 == 0`` is its centre square,
  ``j = k // 9 >= 1`` a square of 70%, 70%, ... (then 60%, ...) of its
  shorter side at the top-left, top-right, bottom-left, bottom-right and
  centre in turn, resized to ``size``.

  Returns:
    ``([n, size, size, 3] float32 in [0, 1], names)``.
  """
  photos = imglib.photo_names()
  cache: dict[str, np.ndarray] = {}
  out, names = [], []
  for k in range(n):
    name = photos[k % len(photos)]
    j = k // len(photos)
    if name not in cache:
      cache[name] = imglib.load(name)
    img = cache[name]
    if j == 0:
      label = name
    else:
      frac, corner = _crop_spec(j)
      if frac <= 0.05:
        raise ValueError(f"{n} offline images is too many distinct crops")
      img = _square_crop(img, frac, corner)
      label = f"{name}:{int(frac * 100)}%{corner}"
    out.append(imglib.resize_center_crop(img, size))
    names.append(label)
  return np.stack(out), names


def _pick(total: int, n: int, seed: int) -> list[int]:
  rng = np.random.default_rng(seed)
  return sorted(rng.choice(total, size=min(n, total), replace=False).tolist())


def tfds_images(name: str, n: int, size: int, seed: int = 0
                ) -> tuple[np.ndarray, list[str]]:
  """``n`` validation images of a prepared tfds dataset (no download).

  Raises:
    Exception: whatever tfds raises when the data is not prepared here.
  """
  import tensorflow_datasets as tfds
  source = tfds.data_source(name, split="validation", download=False)
  idx = _pick(len(source), n, seed)
  out = []
  for i in idx:
    img = source[i]["image"]
    out.append(imglib.resize_center_crop(imglib.to_float_rgb(
        np.asarray(img)), size))
  return np.stack(out), [f"{name}/validation/{i}" for i in idx]


def folder_images(folder: str | os.PathLike, n: int, size: int,
                  seed: int = 0) -> tuple[np.ndarray, list[str]]:
  files = sorted(p for p in Path(folder).rglob("*") if p.suffix in SUFFIXES)
  if not files:
    raise imglib.ImageError(f"no images in {folder}")
  idx = _pick(len(files), n, seed)
  out = [imglib.resize_center_crop(imglib.read_file(files[i]), size)
         for i in idx]
  return np.stack(out), [str(files[i]) for i in idx]


def sample_images(n: int, size: int, source: str = "photos", seed: int = 0
                  ) -> tuple[np.ndarray, list[str], str]:
  """``n`` images at ``size x size`` and the source they came from.

  Args:
    n: how many.
    size: the side in pixels.
    source: ``photos``, ``auto`` (tfds, folder, photos; see the module
      docstring), ``tfds:NAME`` or a folder path. ``RANDCONV_IMAGES``
      overrides it.
    seed: which images a large source gives.

  Returns:
    ``(images [n, size, size, 3], names, source used)``; fewer than ``n``
    images only when a folder or dataset has fewer.
  """
  env = settings.current()
  source = env.images or source
  if source == "photos":
    x, names = offline_images(n, size)
    return x, names, "photos"
  if source.startswith("tfds:"):
    x, names = tfds_images(source[5:], n, size, seed)
    return x, names, source
  if source != "auto":
    x, names = folder_images(source, n, size, seed)
    return x, names, f"folder:{source}"
  for name in TFDS_NAMES:
    try:
      x, names = tfds_images(name, n, size, seed)
      return x, names, f"tfds:{name}"
    except Exception:  # noqa: BLE001 - not prepared here: try the next one
      continue
  folder = env.image_dir
  if folder:
    x, names = folder_images(folder, n, size, seed)
    return x, names, f"folder:{folder}"
  x, names = offline_images(n, size)
  return x, names, "photos"
