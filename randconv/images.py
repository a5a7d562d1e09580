"""Images: the offline photo set (docs/design.md §7) and user files, as RGB float32 in
[0, 1], resized and centre-cropped to the network's input size."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from randconv.errors import RandconvError


class ImageError(RandconvError):
  """An image could not be read or is unfit for the request."""


def _skimage(name):
  def load():
    import skimage.data  # imported lazily: slow
    if name.startswith("motorcycle_"):
      left, right, _ = skimage.data.stereo_motorcycle()
      return left if name.endswith("left") else right
    return getattr(skimage.data, name)()
  return load


# Colour photos shipped inside scikit-image's wheel (no download). The cat
# comes first: the paper's Figs. 6, 7 and S3f use it.
PHOTOS = {
    "chelsea": _skimage("chelsea"),
    "astronaut": _skimage("astronaut"),
    "coffee": _skimage("coffee"),
    "rocket": _skimage("rocket"),
    "motorcycle_left": _skimage("motorcycle_left"),
    "motorcycle_right": _skimage("motorcycle_right"),
    "hubble_deep_field": _skimage("hubble_deep_field"),
    "immunohistochemistry": _skimage("immunohistochemistry"),
    "retina": _skimage("retina"),
}
ALIASES = {"cat": "chelsea"}
# Photos of one scene: the two views of scikit-image's stereo pair. A
# training split keeps each group on one side (randconv.training.data), or
# a decoder trained on one view would be validated on the other, nearly
# the same image.
PHOTO_TWINS = (("motorcycle_left", "motorcycle_right"),)


def photo_names() -> list[str]:
  return list(PHOTOS)


def to_float_rgb(a: np.ndarray) -> np.ndarray:
  """Grey, grey+alpha, RGB or RGBA of any integer or float type ->
  [H, W, 3] float32 in [0, 1]. Alpha is dropped (composited over white)."""
  a = np.asarray(a)
  if np.issubdtype(a.dtype, np.integer):
    a = a.astype(np.float64) / np.iinfo(a.dtype).max
  elif a.dtype == bool:
    a = a.astype(np.float64)
  else:
    a = a.astype(np.float64)
    if a.size and a.max() > 1.0:
      a = a / 255.0 if a.max() <= 255.0 else a / a.max()
  if a.ndim == 2:
    a = a[..., None]
  if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
    raise ImageError(f"cannot read an image of shape {a.shape}")
  if a.shape[-1] in (2, 4):
    alpha = a[..., -1:]
    a = a[..., :-1] * alpha + (1.0 - alpha)
  if a.shape[-1] == 1:
    a = np.repeat(a, 3, axis=-1)
  return np.clip(a, 0.0, 1.0).astype(np.float32)


def read_file(path: str | os.PathLike) -> np.ndarray:
  """Reads a PNG/JPEG (or anything Pillow reads) as [H, W, 3] float32.

  Raises:
    ImageError: missing, not an image, or truncated.
  """
  from PIL import Image, UnidentifiedImageError
  path = Path(path)
  if not path.exists():
    raise ImageError(f"no such file: {path}")
  if path.is_dir():
    raise ImageError(f"{path} is a folder, not an image")
  try:
    with Image.open(path) as im:
      im.load()
      if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
        im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info
                        else "RGB")
      a = np.array(im)
  except UnidentifiedImageError:
    raise ImageError(f"{path} is not an image Pillow can read") from None
  except (OSError, SyntaxError, ValueError) as e:
    raise ImageError(f"{path} is damaged or truncated ({e})") from None
  if a.dtype == np.int32 and a.max() > 255:  # Pillow's "I" mode for 16-bit
    a = (a.astype(np.float64) / 65535.0).clip(0, 1)
  return to_float_rgb(a)


def load(name_or_path: str) -> np.ndarray:
  """An offline photo by name (``chelsea``, ``cat``...) or a file path."""
  key = ALIASES.get(name_or_path, name_or_path)
  if key in PHOTOS and not Path(name_or_path).exists():
    return to_float_rgb(PHOTOS[key]())
  if not Path(name_or_path).exists() and os.sep not in name_or_path and \
      "." not in name_or_path:
    raise ImageError(f"{name_or_path!r} is neither a file nor an offline "
                     f"photo ({', '.join(PHOTOS)})")
  return read_file(name_or_path)


def resize_center_crop(img: np.ndarray, size: int) -> np.ndarray:
  """Resizes the shorter side to ``size`` (antialiased) and centre-crops
  to ``size x size``."""
  from skimage.transform import resize
  h, w = img.shape[:2]
  scale = size / min(h, w)
  nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
  if (nh, nw) != (h, w):
    img = resize(img, (nh, nw), order=1, anti_aliasing=scale < 1,
                 preserve_range=True)
  top, left = (nh - size) // 2, (nw - size) // 2
  return np.ascontiguousarray(img[top:top + size, left:left + size],
                              dtype=np.float32)


def load_batch(names: list[str], size: int, min_size: int = 1) -> np.ndarray:
  """[B, size, size, 3] float32 for photo names and paths.

  Raises:
    ImageError: an image cannot be read, or its shorter side is below
      ``min_size`` (the network's smallest input; images are never
      upsampled from below it).
  """
  if size < min_size:
    raise ImageError(f"size {size} is smaller than the network's smallest "
                     f"input {min_size}")
  out = []
  for name in names:
    img = load(name)
    if min(img.shape[:2]) < min_size:
      raise ImageError(f"{name} is {img.shape[0]}x{img.shape[1]}, smaller "
                       f"than the network's smallest input {min_size}x"
                       f"{min_size}")
    out.append(resize_center_crop(img, size))
  return np.stack(out)


def center_input(x: np.ndarray) -> np.ndarray:
  """docs/design.md §5: choice for a random encoder in Section 3: the input minus
  its per-channel mean (per image)."""
  return x - x.mean(axis=(-3, -2), keepdims=True)


CAFFE_BGR_MEAN = np.array([104.007, 116.669, 122.679], np.float32)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def preprocess(x: np.ndarray, mode: str) -> np.ndarray:
  """docs/design.md §5 preprocessing of [..., H, W, 3] RGB in [0, 1].

  ``none`` (Sections 4 and 5: as is), ``center`` (random encoder of Section
  3), ``torchvision`` (ImageNet mean/std on RGB), ``caffe`` (BGR in 0..255
  minus the mean pixel; Keras and Caffe-derived weights).
  """
  if mode == "none":
    return x
  if mode == "center":
    return center_input(x)
  if mode == "torchvision":
    return (x - IMAGENET_MEAN) / IMAGENET_STD
  if mode == "caffe":
    return x[..., ::-1] * 255.0 - CAFFE_BGR_MEAN
  raise ValueError(f"unknown preprocessing {mode!r}")
