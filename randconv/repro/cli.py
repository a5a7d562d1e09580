"""The ``randconv`` command line.

Subcommands: ``describe``, ``invert``, ``reproduce`` and ``report`` here;
other modules add theirs through the ``randconv.commands`` entry points
(``pyproject.toml``; each names an ``add_commands(sub)``).
Bad input (a :class:`~randconv.errors.RandconvError`, raised before any
work where it can be: :mod:`randconv.repro.preflight` checks output paths
and memory) prints one line on stderr and exits with code 2; results go to
stdout (one JSON line with ``--json``); progress bars go to stderr (none
with ``--json``: :mod:`randconv.progress`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from randconv import distributed, progress
from randconv.errors import RandconvError
from randconv.repro import interrupts, launch, plugins
from randconv.repro.preflight import (
  check_net_fits,
  check_size,
  out_folder,
  positive_float,
  positive_int,
)

COMMANDS_GROUP = "randconv.commands"  # entry points: add_commands(sub)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
  """Every option's help ends with its default: ``(default: X)``, or
  ``(required)``; a help text that already says what its default means
  (the word "default" in it) is left as written, and a flag that is off
  unless given says so."""

  def _get_help_string(self, action):
    text = action.help or ""
    if (not action.option_strings or "default" in text
        or action.default is argparse.SUPPRESS):
      return text
    if action.required:
      return f"{text} (required)"
    if action.nargs == 0:  # store_true and the like
      return f"{text} (default: off)"
    if action.default is None:
      return f"{text} (default: none)"
    value = action.default
    if isinstance(value, (list, tuple)):
      value = " ".join(map(str, value))
    return f"{text} (default: {str(value).replace('%', '%%')})"


class _Parser(argparse.ArgumentParser):
  """argparse with :class:`HelpFormatter`, and a usage error that is one
  line (``randconv: error: argument --width: ...``) and exit code 2."""

  def __init__(self, *args, **kwargs):
    kwargs.setdefault("formatter_class", HelpFormatter)
    super().__init__(*args, **kwargs)

  def error(self, message):
    raise RandconvError(message)


def add_arch_arg(p: argparse.ArgumentParser, default: str | None = "vgg16",
                 note: str | None = None) -> None:
  """``--arch``, the network (``note``: said after the names, in
  parentheses)."""
  text = "vgg16, alexnet or alexnet_torchvision"
  p.add_argument("--arch", default=default,
                 help=f"{text} ({note})" if note else text)


def add_image_arg(p: argparse.ArgumentParser) -> None:
  """The one image a command reads: a file, or an offline photo's name."""
  p.add_argument("image", metavar="IMAGE_OR_NAME",
                 help="an image file or an offline photo name (chelsea, ...)")


def add_net_args(p: argparse.ArgumentParser, layer_default: str = "conv1"):
  add_arch_arg(p)
  p.add_argument("--layer", default=layer_default,
                 help="conv1..conv5 (ConvK) or a layer name such as conv1_1, "
                      "pool1")
  p.add_argument("--width", type=positive_int, default=None,
                 help="replaces every hidden channel count (default: the "
                      "paper's widths, 64..512)")
  p.add_argument("--output", default="conv", choices=("conv", "mean"),
                 help="conv: 3-channel output conv; mean: channel mean")
  p.add_argument("--pooling", default=None, choices=("max", "l2", "avg"),
                 help="replaces every pooling layer (default: the "
                      "architecture's max pooling)")
  p.add_argument("--simplified", action="store_true",
                 help="the simplified ConvK net of Fig. 7 (row 2)")
  p.add_argument("--kernel-size", type=positive_int, default=None,
                 help="every conv's kernel (Section 4.3; default: the "
                      "architecture's)")


def spec_from_args(a):
  from randconv.spec import make_spec
  return make_spec(a.arch, a.layer, width=a.width, output=a.output,
                   pooling=a.pooling, simplified=a.simplified,
                   kernel_size=a.kernel_size)


def emit(args, payload: dict, text: str) -> None:
  """Prints a command's result on stdout (process 0 alone prints it)."""
  if not distributed.is_main():
    return
  if getattr(args, "json", False):
    print(json.dumps(payload, default=float))
  else:
    print(text)


# --------------------------------------------------------------------------
def cmd_describe(a) -> None:
  spec = spec_from_args(a)
  check_size(spec, a.size, metric=False)
  enc, dec = spec.shapes(a.size, a.size)
  h, w, c = spec.feature_shape(a.size, a.size)
  feature = {"name": enc[-1].name, "shape": [h, w, c], "dimension": h * w * c}
  payload = {"arch": spec.arch, "layer": spec.layer, "size": a.size,
             "encoder": [s.as_dict() for s in enc],
             "decoder": [s.as_dict() for s in dec], "feature": feature}
  lines = [f"{spec.arch} truncated at {spec.layer}, input {a.size} x "
           f"{a.size} x 3; every shape is H x W x C (the arrays are NHWC)"]
  for title, part in (("encoder", enc), ("decoder", dec)):
    lines.append(f"{title}:")
    lines += [f"  {s.name:<10} {s.kind:<7} {s.height:>4} x {s.width:>4} x "
              f"{s.channels:>4}" for s in part]
  lines.append(f"feature {feature['name']}: {h} x {w} x {c} = "
               f"{feature['dimension']:,} dimensions")
  emit(a, payload, "\n".join(lines))


def cmd_invert(a) -> None:
  import jax
  import numpy as np

  from randconv import engine, images, metrics, plotting
  from randconv.distributions import parse_distribution

  spec = spec_from_args(a)
  dist = parse_distribution(a.dist)
  n = len(a.images)
  check_size(spec, a.size)
  check_net_fits(spec, a.size, n, outputs=a.seeds * n,
                 advice="lower --size, --width or --seeds, or give fewer "
                        "images")
  x = images.load_batch(a.images, a.size, spec.min_size())
  net = engine.net_fn(spec, dist, rescale=not spec.has_lrn, policy="direct")

  def fn(key, batch):
    y = net(key, batch)
    m = metrics.reconstruction_metrics(batch, y)
    return {"out": metrics.display(batch, y), **m}

  keys = engine.seed_keys(a.seed, a.seeds)
  res = engine.run_keys(fn, keys, x, strategy=a.strategy,
                        progress="invert" if a.seeds * len(a.images) > 1
                        else False)
  if not np.all(np.isfinite(res["out"])):
    raise RandconvError(
        f"the output is not finite in float32 with {dist} (LRN is not "
        "homogeneous and cannot be rescaled); try a scale nearer 0.015")
  out = Path(a.out)
  names = [Path(n).stem for n in a.images]
  grey_x = np.asarray(metrics.grey(jax.numpy.asarray(x)))
  for j, name in enumerate(names):
    plotting.save_png(out / f"input_{j}_{name}.png", x[j])
    for s in range(a.seeds):
      y = res["out"][s, j]
      plotting.save_png(out / f"output_s{s}_{j}_{name}.png", y)
      plotting.save_png(out / f"output_s{s}_{j}_{name}_grey.png",
                        np.asarray(metrics.grey(jax.numpy.asarray(y))))
  rows = [[x[j]] + [res["out"][s, j] for s in range(a.seeds)]
          for j in range(len(names))]
  titles = [[names[j]] + [f"SSIM {res['ssim'][s, j]:.3f}"
                          for s in range(a.seeds)] for j in range(len(names))]
  plotting.image_grid(rows, out / "grid.png", titles=titles,
                      suptitle=f"{spec.arch} {spec.layer}, width "
                      f"{a.width or 'paper'}, {dist}")
  del grey_x
  per_seed_ssim = res["ssim"].mean(axis=1)
  per_seed_r = np.abs(res["pearson"]).mean(axis=1)
  payload = {
      "arch": spec.arch, "layer": spec.layer, "width": a.width,
      "size": a.size, "dist": str(dist), "output": a.output,
      "images": a.images, "seeds": a.seeds,
      "ssim": res["ssim"].tolist(), "pearson": res["pearson"].tolist(),
      "ssim_mean": float(per_seed_ssim.mean()),
      "ssim_std": float(per_seed_ssim.std()),
      "pearson_abs_mean": float(per_seed_r.mean()),
      "pearson_abs_std": float(per_seed_r.std()),
      "out": str(out)}
  lines = [f"{spec.arch} {spec.layer} width {a.width or 'paper'} {dist}, "
           f"{a.seeds} nets x {len(names)} images at {a.size}x{a.size}"]
  for j, name in enumerate(names):
    lines.append(f"  {name:<22} SSIM " + " ".join(
        f"{v:.3f}" for v in res["ssim"][:, j]) + "   r " + " ".join(
        f"{v:+.3f}" for v in res["pearson"][:, j]))
  lines.append(f"SSIM {payload['ssim_mean']:.4f} +- {payload['ssim_std']:.4f}"
               f" (std over nets), |r| {payload['pearson_abs_mean']:.4f}; "
               f"images in {out}")
  emit(a, payload, "\n".join(lines))


def cmd_reproduce(a) -> None:
  from randconv import settings
  from randconv.deadline import Deadline
  from randconv.repro import registry
  if a.only:
    registry.check_ids(a.only)
  # The one clock of this invocation: every experiment shares it.
  env = settings.current(time_budget_s=a.time_budget,
                         weights=getattr(a, "weights", None))
  claims = registry.reproduce(a.preset, Path(a.out), only=a.only,
                              settings=env,
                              deadline=Deadline.after(env.time_budget_s))
  payload = {"preset": a.preset, "out": a.out, "claims": claims}
  lines = [f"{c['id']:<4} {c['status']:<16} {c['summary'] or c['claim']}"
           for c in claims]
  lines.append(f"report: {Path(a.out) / 'report.html'} (also report.md, "
               "claims.json)")
  if any(c["status"] == "smoke" for c in claims):
    lines.append(f"the Section 3 and 4 verdicts at the {a.preset} preset are "
                 "smoke (the machinery ran; not evidence); for evidence on "
                 "this machine run: randconv reproduce --preset cpu --out "
                 "runs/cpu")
  emit(a, payload, "\n".join(lines))


def cmd_report(a) -> None:
  from randconv.repro import report
  run = Path(a.run_dir)
  if not (run / "claims.json").exists():
    raise RandconvError(f"{run} has no claims.json; give a folder that "
                        "randconv reproduce wrote")
  claims, meta = report.load(run)
  report.write(run, claims, meta)
  if a.readme:
    report.update_readme(Path(a.readme), claims, meta)
  text = report.results_table(claims) if a.markdown else (
      f"rewrote {run / 'report.html'} and {run / 'report.md'}"
      + (f"; the results table in {a.readme}" if a.readme else ""))
  emit(a, {"run_dir": str(run), "counts": report.counts(claims),
           "readme": a.readme}, text)


def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="randconv", description=(
      "Random CNN-DCN networks of He et al., Randomness in Deconvolutional "
      "Networks for Visual Representation (arXiv 1704.00330)."))
  sub = parser.add_subparsers(dest="command", required=True,
                              parser_class=_Parser)

  p = command(sub, "describe", "every layer's output shape (H x W x C) and "
              "the feature's dimension at an input size", cmd_describe)
  add_net_args(p)
  p.add_argument("--size", type=positive_int, default=227,
                 help="input height and width in pixels")

  p = command(sub, "invert", "fully random CNN-DCN reconstructions",
              cmd_invert)
  p.add_argument("images", nargs="+", metavar="IMAGE_OR_NAME",
                 help="image files or offline photo names (chelsea, "
                      "astronaut, coffee, rocket, ...)")
  add_net_args(p)
  p.add_argument("--seeds", type=positive_int, default=1,
                 help="number of random nets")
  p.add_argument("--seed", type=int, default=0, help="root seed")
  p.add_argument("--size", type=positive_int, default=227,
                 help="images are resized to SIZE x SIZE pixels (at least "
                      "SSIM's 11 x 11 window)")
  p.add_argument("--dist", default="gaussian:0.015",
                 help="weight distribution: gaussian:S, uniform:A, "
                      "logistic:S, laplace:B or msra")
  p.add_argument("--strategy", default="auto",
                 choices=("auto", "loop", "vmap", "map", "shard"),
                 help="how the nets run at once (same numbers; auto: the "
                      "fastest measured for the backend)")
  p.add_argument("--out", required=True, type=out_folder,
                 help="output folder")

  p = command(sub, "reproduce", "run the paper's experiments", cmd_reproduce,
              launchable=True)
  p.add_argument("--preset", default="quick", choices=("quick", "cpu",
                                                        "paper"),
                 help="sizes: quick (smoke, minutes), cpu (evidence on a "
                      "CPU, about an hour), paper (the paper's, a GPU)")
  p.add_argument("--out", required=True, type=out_folder,
                 help="the run's folder (the same one resumes the run)")
  p.add_argument("--only", nargs="+", default=None, metavar="ID",
                 help="claim ids to run (S4c, T3, ...; default: all)")
  p.add_argument("--time-budget", type=positive_float, default=None,
                 metavar="S",
                 help="seconds for the whole run (default "
                      "$RANDCONV_TIME_BUDGET_S, else none); what is cut is "
                      "reported partial and the same command resumes it")

  p = command(sub, "report", "rewrite a run's report.html and report.md "
              "from its claims.json; print or put its results table in the "
              "README", cmd_report)
  p.add_argument("run_dir", metavar="RUN_DIR",
                 help="a folder that randconv reproduce wrote")
  p.add_argument("--markdown", action="store_true",
                 help="print the results table as markdown")
  p.add_argument("--readme", default=None, metavar="README",
                 help="rewrite the table between the README's "
                      "<!-- results:start --> and <!-- results:end --> "
                      "markers")

  for _, add_commands in plugins.load(COMMANDS_GROUP):
    add_commands(sub)
  finish_commands(sub)
  return parser


def command(sub, name: str, help: str, func, *,
            launchable: bool = False) -> argparse.ArgumentParser:
  """A command ``name`` that runs ``func(args)``; with ``launchable`` it
  also takes the flags that run it on many processes
  (:func:`randconv.repro.launch.add_arguments`). :func:`finish_commands`
  adds those, and ``--json``, after the command's own options."""
  p = sub.add_parser(name, help=help)
  p.set_defaults(func=func)
  p.launchable = launchable
  return p


def finish_commands(sub) -> None:
  """Gives every command its one-line help at the top of its own
  ``--help`` (argparse keeps it for the command list alone) and, after its
  own options, ``--json`` and (``launchable``) the launch flags; a group of
  commands (``weights``) passes them to its commands."""
  for action in sub._choices_actions:
    parser = sub.choices[action.dest]
    if parser.description is None:
      parser.description = action.help
    groups = [a for a in parser._actions
              if isinstance(a, argparse._SubParsersAction)]
    for nested in groups:
      finish_commands(nested)
    if not groups:
      parser.add_argument("--json", action="store_true",
                          help="print the result as one JSON line on stdout")
      if getattr(parser, "launchable", False):
        launch.add_arguments(parser)


def main(argv: list[str] | None = None) -> int:
  """Runs one command; returns its exit status (with many processes:
  process 0's, and a process that fails alone ends at once). SIGINT and
  SIGTERM end the process at once, with status 130 or 143
  (:mod:`randconv.repro.interrupts`)."""
  code = 0
  try:
    args = build_parser().parse_args(argv)
    if hasattr(args, "coordinator"):
      launch.initialize(launch.launch_from_args(args))
    with interrupts.handled(), progress.quieted(getattr(args, "json", False)):
      args.func(args)
  except RandconvError as e:
    print(f"randconv: error: {e}", file=sys.stderr)
    code = 2
  except MemoryError:
    print("randconv: error: out of memory past the size checks; lower "
          "--size (or --width, --batch, --seeds, --samples)",
          file=sys.stderr)
    code = 2
  except KeyboardInterrupt as e:
    # Ends the process here (130, or 143 for SIGTERM): repro.interrupts.
    interrupts.leave(getattr(e, "signum", signal.SIGINT))
  except Exception:
    launch.abort_with_traceback()
    raise
  if code:
    launch.abort(code)
    return code
  try:
    return launch.finish(0)
  except Exception as e:  # noqa: BLE001 - a process lost at the very end
    print(f"randconv: error: the job did not end together ({e}); its "
          "results are written", file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
