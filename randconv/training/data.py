"""Training images for Section 3 (docs/design.md §7): tensorflow-datasets
in, grain out.

Two kinds of source, both read as tfds data sources (random access, numpy,
no TensorFlow):

* **packed**: the offline photos (``photos``) or a folder of the user's
  images, packed by the tfds builder :class:`RandconvImages` into
  array_record files with plain uint8 tensor features (tfds' ``Image``
  feature would need TensorFlow to encode). Each image is resized so that
  its shorter side is ``short_side``. The split is fixed by the seed:
  ``val_images`` images are held out for validation (the ``holdout`` names
  first, the cat by default, then a seeded draw; the two views of the
  stereo pair stay on one side), the rest are for training.
* **catalog**: ``imagenet2012`` or ``imagenette`` through
  ``tfds.data_source`` where the user has prepared them in array_record
  format (imagenet2012 needs a manual download; nothing is downloaded here).
  Images are resized to ``short_side`` on the fly.

Samples are crops of ``crop x crop``. A packed image is cut into windows on
a grid of stride ``crop // 2``; an epoch visits every training window once,
in a seeded order, each moved by a random offset within the stride and
flipped left-right with probability 1/2. A catalog image gives one random
crop per epoch. Validation (and the training-set evaluation of S3d) uses
fixed windows without offset or flip, at most ``val_samples`` of them.

Why grain: it reads tfds data sources directly, its ``MapDataset`` is random
access, so batch ``t`` is a pure function of the seed and ``t`` (a resumed
run gets exactly the batches an uninterrupted one would, with no iterator
state to checkpoint), and it prefetches with threads for the GPU preset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from randconv import distributed, images, progress, settings
from randconv.errors import RandconvError

CATALOG = ("imagenet2012", "imagenette")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff",
                  ".webp")


class DataError(RandconvError):
  """A dataset is missing, empty, or too small for the request."""


@dataclass(frozen=True)
class DataConfig:
  """What to train on.

  Attributes:
    source: ``photos`` (offline), ``imagenet2012``, ``imagenette`` or a
      folder of images.
    crop: side of the square training crops.
    short_side: images are resized so that their shorter side is this.
    seed: fixes the split, the order of the crops, their offsets and flips.
    holdout: offline photos always held out for validation (the cat, so
      that S3f and S3g show an image the decoder never saw).
    val_images: images held out in a packed set (None: 3 of the 9 photos,
      a fifth of a folder, at least 1).
    val_samples: at most this many validation (and train-evaluation) crops.
    data_dir: the tfds data folder (None: ``$RANDCONV_DATA_DIR``, else tfds'
      default, ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``, for the
      catalog sources, and the project's cache for packed ones).
  """

  source: str = "photos"
  crop: int = 32
  short_side: int = 64
  seed: int = 0
  holdout: tuple[str, ...] = ("chelsea",)
  val_images: int | None = None
  val_samples: int = 256
  data_dir: str | None = None

  def as_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["holdout"] = list(self.holdout)
    return d


def _data_dir(cfg: DataConfig) -> str | None:
  return cfg.data_dir or settings.current().data_dir


def _packed_dir(cfg: DataConfig) -> str:
  """Where a packed source goes: the data folder when one is named, else
  ``tfds/`` in the project's cache (``$RANDCONV_CACHE_DIR``), never tfds'
  own folder: a packed set is made from files the project has, and is
  made again when deleted."""
  return _data_dir(cfg) or os.path.join(settings.cache_folder(), "tfds")


# --------------------------------------------------------------------------
# The builder that packs photos and folders.

def _tfds():
  import tensorflow_datasets as tfds
  return tfds


def _folder_files(folder: Path) -> list[Path]:
  if not folder.is_dir():
    raise DataError(f"no such dataset or folder: {folder} (use photos, "
                    f"{', '.join(CATALOG)} or a folder of images)")
  files = sorted(p for p in folder.iterdir()
                 if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
  if not files:
    raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
  return files


def _items(cfg: DataConfig) -> list[tuple[str, object]]:
  """(name, loader) pairs of a packed source, in a fixed order."""
  if cfg.source == "photos":
    return [(n, lambda n=n: images.load(n)) for n in images.photo_names()]
  return [(p.name, lambda p=p: images.read_file(p))
          for p in _folder_files(Path(cfg.source))]


# Bumped whenever split_names changes: it is part of a packed set's name,
# so a set packed by an older split is never read. 2: twins stay together.
SPLIT_VERSION = 2


def _groups(names: list[str], cfg: DataConfig) -> list[tuple[str, ...]]:
  """Images that go to one side of the split together: the photos' twins
  (:data:`images.PHOTO_TWINS`), every other image alone (a folder has no
  known twins)."""
  twins = images.PHOTO_TWINS if cfg.source == "photos" else ()
  group = {n: (n,) for n in names}
  for twin in twins:
    for n in twin:
      if n in group:
        group[n] = tuple(t for t in twin if t in group)
  return list(dict.fromkeys(group[n] for n in names))


def _draw(groups: list[tuple[str, ...]], n: int) -> list[str]:
  """The names of the groups, in their order, that make up ``n`` images or,
  where no choice of them does, the largest count below: a group is taken
  when the count still missing after it can be made by the groups after
  it (so a group that would overshoot is skipped for the next one)."""
  reach = [{0}]  # then reach[i]: the counts that groups[i:] can make
  for g in reversed(groups):
    reach.insert(0, reach[0] | {r + len(g) for r in reach[0]})
  missing = max(r for r in reach[0] if r <= n)
  taken = []
  for i, g in enumerate(groups):
    if missing - len(g) in reach[i + 1]:
      taken += g
      missing -= len(g)
  return taken


def split_names(names: list[str], cfg: DataConfig) -> tuple[list[str],
                                                            list[str]]:
  """(train, validation) names, twins on one side (:func:`_groups`): the
  groups of the holdout names, then groups in a seeded order, until
  ``val_images`` are held out (fewer only where groups leave no choice)."""
  n_val = cfg.val_images
  if n_val is None:
    n_val = 3 if cfg.source == "photos" else max(1, len(names) // 5)
  if len(names) < 2:
    raise DataError(f"{cfg.source} has {len(names)} image; at least 2 are "
                    "needed (one is held out for validation)")
  if not 1 <= n_val < len(names):
    raise DataError(f"cannot hold out {n_val} of {len(names)} images for "
                    "validation")
  groups = _groups(names, cfg)
  forced = list(dict.fromkeys(g for h in cfg.holdout for g in groups
                              if h in g))
  val = _draw(forced, n_val)
  rest = [g for g in groups if not set(g) & set(val)]
  order = np.random.default_rng(cfg.seed).permutation(len(rest))
  val += _draw([rest[i] for i in order], n_val - len(val))
  if not val:
    raise DataError(f"cannot hold out {n_val} of {len(names)} images for "
                    "validation without splitting twins")
  return [n for n in names if n not in val], val


def _source_label(cfg: DataConfig) -> str:
  if cfg.source == "photos":
    return "photos"
  h = hashlib.sha1()
  folder = Path(cfg.source).resolve()
  h.update(str(folder).encode())
  for p in _folder_files(folder):
    st = p.stat()
    h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
  return "folder_" + h.hexdigest()[:10]


def _to_uint8(img: np.ndarray, short_side: int) -> np.ndarray:
  from skimage.transform import resize
  h, w = img.shape[:2]
  scale = short_side / min(h, w)
  size = (max(short_side, round(h * scale)), max(short_side, round(w * scale)))
  if size != (h, w):
    img = resize(img, size, order=1, anti_aliasing=scale < 1,
                 preserve_range=True)
  return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _builder_class():
  """Defined lazily so that importing this module does not import tfds."""
  global _BUILDER
  if _BUILDER is not None:
    return _BUILDER
  tfds = _tfds()

  @dataclasses.dataclass(eq=False)
  class ImagesConfig(tfds.core.BuilderConfig):
    data: DataConfig | None = None

  class RandconvImages(tfds.core.GeneratorBasedBuilder,
                       skip_registration=True):
    """Photos or a folder of images as uint8 [H, W, 3] tensors, split into
    train and validation by the seed."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIG_CLASS = ImagesConfig

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          description=self.__doc__,
          features=tfds.features.FeaturesDict({
              "image": tfds.features.Tensor(
                  shape=(None, None, 3), dtype=np.uint8,
                  encoding=tfds.features.Encoding.ZLIB),
              "name": tfds.features.Tensor(shape=(), dtype=np.str_),
          }))

    def _split_generators(self, dl_manager):
      del dl_manager
      cfg = self.builder_config.data
      items = dict(_items(cfg))
      train, val = split_names(list(items), cfg)
      return {"train": self._generate_examples(items, train, cfg),
              "validation": self._generate_examples(items, val, cfg)}

    def _generate_examples(self, items, names, cfg):
      for name in names:
        yield name, {"image": _to_uint8(items[name](), cfg.short_side),
                     "name": name}

    # tfds announces "Downloading and preparing dataset Unknown size" and
    # "... downloaded and prepared" on stdout: nothing is downloaded here,
    # and packed_builder says what happens in one line.
    def _log_download_bytes(self):
      pass

    def _log_download_done(self):
      pass

  ImagesConfig.__name__ = "ImagesConfig"
  _BUILDER = (RandconvImages, ImagesConfig)
  return _BUILDER


_BUILDER = None


def packed_builder(cfg: DataConfig):
  """The prepared tfds builder of a packed source, in :func:`_packed_dir`;
  packing it first if needed, with one line saying where and tfds'
  progress bars (neither under ``--json``) on stderr."""
  tfds = _tfds()
  builder_cls, config_cls = _builder_class()
  holdout = "-".join(sorted(cfg.holdout)) or "none"
  name = (f"{_source_label(cfg)}_s{cfg.short_side}_v{cfg.val_images}"
          f"_seed{cfg.seed}_h{hashlib.sha1(holdout.encode()).hexdigest()[:6]}"
          f"_split{SPLIT_VERSION}")
  config = config_cls(name=name, version="1.0.0",
                      description=f"{cfg.source} at short side "
                      f"{cfg.short_side}", data=cfg)
  with _quiet_absl():
    builder = builder_cls(config=config, data_dir=_packed_dir(cfg),
                          file_format="array_record")

  def prepare():
    if builder.is_prepared():
      return
    progress.note(f"[data] packing {cfg.source} (short side "
                  f"{cfg.short_side}) for training into {builder.data_dir}")
    tfds.display_progress_bar(not progress.quiet())
    # tfds may still print on stdout; keep stdout for results.
    with contextlib.redirect_stdout(sys.stderr):
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig())

  with _quiet_absl():
    distributed.main_first(prepare, "randconv-data-" + name)
  return builder


@contextlib.contextmanager
def _quiet_absl():
  """tfds' warnings at ERROR while it builds and packs our own dataset: it
  says "Using custom data configuration" (expected: ours) and, while it
  writes a version folder, "Variant folder ... has no dataset_info.json"
  about that very folder. Nothing of the packing itself is hidden: its
  errors still show."""
  absl = logging.getLogger("absl")
  level = absl.level
  absl.setLevel(logging.ERROR)
  try:
    yield
  finally:
    absl.setLevel(level)


def _catalog_source(cfg: DataConfig, split: str):
  tfds = _tfds()
  try:
    return tfds.data_source(cfg.source, split=split, data_dir=_data_dir(cfg),
                            download=False)
  except Exception as e:  # noqa: BLE001 - tfds raises many kinds here
    where = _data_dir(cfg) or os.environ.get("TFDS_DATA_DIR") or \
        "~/tensorflow_datasets"
    msg = str(e).strip().splitlines()[0] if str(e).strip() else \
        type(e).__name__
    raise DataError(
        f"dataset {cfg.source} ({split}) is not prepared in {where} as "
        f"array_record ({msg[:160]}); prepare it with tensorflow-datasets "
        "(file_format='array_record'; imagenet2012 needs its manual "
        "download) or use --data photos") from None


# --------------------------------------------------------------------------
# Windows and the grain pipeline.

@dataclass
class Split:
  """A split: a random-access source of ``{"image": uint8 [H, W, 3]}`` and
  its windows, rows ``(record, top, left, jitter_h, jitter_w)``; a row with
  ``top == -1`` is a crop anywhere in the (resized) image."""

  source: object
  windows: np.ndarray  # [N, 5] int64
  resize_to: int | None  # resize on the fly (catalog sources)
  # Decoded images of a packed source, kept after the first read (a packed
  # set is small; a catalog one is never cached).
  cache: dict = dataclasses.field(default_factory=dict)
  cached_bytes: int = 0


def _grid(h: int, w: int, crop: int, stride: int) -> list[tuple[int, ...]]:
  rows = []
  for top in range(0, h - crop + 1, stride):
    for left in range(0, w - crop + 1, stride):
      rows.append((top, left, min(stride - 1, h - crop - top),
                   min(stride - 1, w - crop - left)))
  return rows


def _packed_split(cfg: DataConfig, builder, split: str) -> Split:
  source = builder.as_data_source(split)
  stride = max(1, cfg.crop // 2)
  rows = []
  for r in range(len(source)):
    example = source[r]
    h, w = example["image"].shape[:2]
    if min(h, w) < cfg.crop:
      raise DataError(f"{example['name']!r} is {h}x{w}, smaller than the "
                      f"{cfg.crop}x{cfg.crop} crop; raise --short-side")
    rows += [(r, *g) for g in _grid(h, w, cfg.crop, stride)]
  return Split(source, np.asarray(rows, np.int64).reshape(-1, 5), None)


def _catalog_split(cfg: DataConfig, split: str) -> Split:
  source = _catalog_source(cfg, split)
  n = len(source)
  rows = np.zeros((n, 5), np.int64)
  rows[:, 0] = np.arange(n)
  rows[:, 1] = -1
  return Split(source, rows, cfg.short_side)


def _resize_short(img: np.ndarray, short_side: int) -> np.ndarray:
  from PIL import Image
  h, w = img.shape[:2]
  if min(h, w) == short_side:
    return img
  scale = short_side / min(h, w)
  size = (max(short_side, round(w * scale)), max(short_side, round(h * scale)))
  return np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))


CACHE_BYTES = 512 << 20


def _image(split: Split, record: int) -> np.ndarray:
  record = int(record)
  if record in split.cache:
    return split.cache[record]
  img = np.asarray(split.source[record]["image"])
  if img.ndim == 2:
    img = np.repeat(img[..., None], 3, axis=-1)
  if split.resize_to is not None:
    img = _resize_short(img, split.resize_to)
  elif split.cached_bytes + img.nbytes <= CACHE_BYTES:
    split.cache[record] = img
    split.cached_bytes += img.nbytes
  return img


def crop_window(split: Split, row, crop: int, rng: np.random.Generator | None
                ) -> np.ndarray:
  """One crop, uint8 [crop, crop, 3]; ``rng`` None: no offset, no flip
  (a catalog image is then centre-cropped)."""
  record, top, left, jh, jw = (int(v) for v in row)
  img = _image(split, record)
  h, w = img.shape[:2]
  if top < 0:
    if rng is None:
      top, left = (h - crop) // 2, (w - crop) // 2
    else:
      top = int(rng.integers(0, h - crop + 1))
      left = int(rng.integers(0, w - crop + 1))
  elif rng is not None:
    top += int(rng.integers(0, jh + 1))
    left += int(rng.integers(0, jw + 1))
  out = img[top:top + crop, left:left + crop]
  if rng is not None and rng.random() < 0.5:
    out = out[:, ::-1]
  return np.ascontiguousarray(out)


@dataclass
class Data:
  """The prepared data of a run.

  Attributes:
    train: training windows, served by :meth:`batches`.
    val: fixed validation crops, uint8 [N, crop, crop, 3].
    train_eval: fixed training crops for the train-vs-validation loss (S3d),
      uint8 [N, crop, crop, 3].
    describe: a short description for logs.
  """

  config: DataConfig
  train: Split
  val: np.ndarray
  train_eval: np.ndarray
  describe: str

  def dataset(self, batch: int, rows: slice | None = None):
    """The grain ``MapDataset`` whose item ``t`` is batch ``t``:
    uint8 [batch, crop, crop, 3], or only its ``rows`` (one process's
    share of a data-parallel batch: those crops alone are read). Crop ``i``
    of the endless shuffled stream depends only on the seed and ``i``, so
    batch ``t`` is the same whatever the split."""
    import grain
    split, crop = self.train, self.config.crop

    def sample(row, rng):
      return crop_window(split, row, crop, rng)

    crops = (grain.MapDataset.source(self.train.windows)
             .seed(self.config.seed).shuffle().repeat(None)
             .random_map(sample))
    if rows is None or (rows.start, rows.stop) == (0, batch):
      return crops.batch(batch, drop_remainder=True, batch_fn=np.stack)
    lo, share = rows.start, rows.stop - rows.start
    return (grain.MapDataset.range(0, sys.maxsize)
            .map(lambda k: crops[(k // share) * batch + lo + k % share])
            .batch(share, drop_remainder=True, batch_fn=np.stack))

  def batches(self, batch: int, start: int = 0, threads: int = 1,
              prefetch: int = 2, rows: slice | None = None):
    """Batches ``start, start + 1, ...`` (an endless iterator); ``rows``:
    as :meth:`dataset`."""
    import grain
    ds = self.dataset(batch, rows)
    if threads <= 0:
      return (ds[i] for i in range(start, sys.maxsize))
    return iter(ds.slice(slice(start, None)).to_iter_dataset(
        grain.ReadOptions(num_threads=threads,
                          prefetch_buffer_size=prefetch)))


def _fixed(split: Split, crop: int, count: int, seed: int) -> np.ndarray:
  rows = split.windows
  if len(rows) > count:
    pick = np.sort(np.random.default_rng(seed).choice(len(rows), count,
                                                      replace=False))
    rows = rows[pick]
  return np.stack([crop_window(split, r, crop, None) for r in rows])


def load(cfg: DataConfig, batch: int) -> Data:
  """Prepares the data of a run (packing a packed source the first time).

  Raises:
    DataError: a missing dataset or folder, no images, images smaller than
      the crop, or fewer training crops per epoch than one batch.
  """
  if cfg.crop < 1 or cfg.short_side < cfg.crop:
    raise DataError(f"the crop ({cfg.crop}) must be positive and at most the "
                    f"short side ({cfg.short_side})")
  if cfg.source in CATALOG:
    if cfg in _CATALOG_CACHE:
      data = _CATALOG_CACHE[cfg]
      _check_batch(cfg, data.train, batch)
      return data
    train = _catalog_split(cfg, "train")
    val_split = _catalog_split(cfg, "validation")
    what = (f"{cfg.source}: {len(train.windows)} training images, "
            f"{len(val_split.windows)} validation images")
  else:
    builder = packed_builder(cfg)
    train = _packed_split(cfg, builder, "train")
    val_split = _packed_split(cfg, builder, "validation")
    n_train = len(builder.as_data_source("train"))
    n_val = len(builder.as_data_source("validation"))
    what = (f"{cfg.source}: {n_train} training images ({len(train.windows)} "
            f"crops per epoch), {n_val} held-out images")
  _check_batch(cfg, train, batch)
  if len(val_split.windows) == 0:
    raise DataError(f"{cfg.source} has no validation crops")
  val = _fixed(val_split, cfg.crop, cfg.val_samples, cfg.seed + 1)
  train_eval = _fixed(train, cfg.crop, cfg.val_samples, cfg.seed + 2)
  data = Data(cfg, train, val, train_eval, what)
  if cfg.source in CATALOG:
    # Decoding thousands of JPEGs for the fixed crops takes a minute: the
    # runs of one experiment share them (only the last config is kept).
    _CATALOG_CACHE.clear()
    _CATALOG_CACHE[cfg] = data
  return data


_CATALOG_CACHE: dict[DataConfig, Data] = {}


def _check_batch(cfg: DataConfig, train: Split, batch: int) -> None:
  if len(train.windows) < batch:
    unit = "images" if cfg.source in CATALOG else "crops"
    raise DataError(
        f"{cfg.source} gives {len(train.windows)} training {unit} of "
        f"{cfg.crop}x{cfg.crop} per epoch, fewer than one batch of {batch}: "
        "add images, raise --short-side or lower --batch")


def image_split(cfg: DataConfig) -> tuple[list[str], list[str]]:
  """(training, validation) image names of a packed source, as packed (a
  packed set is named after everything the split depends on), without
  packing or reading an image: for the records of an experiment."""
  return split_names([n for n, _ in _items(cfg)], cfg)


def validation_names(cfg: DataConfig) -> list[str]:
  """The held-out image names of a packed source, sorted."""
  return sorted(image_split(cfg)[1])

