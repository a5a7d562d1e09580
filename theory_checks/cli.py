"""``randconv theory`` and ``randconv limit`` (added to the core CLI)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from randconv.errors import RandconvError
from randconv.repro.preflight import (
  check_memory,
  check_size,
  out_folder,
  positive_int,
)

CHECK_IDS = ("T1", "T2", "T3", "T4", "T5", "T6", "T7")
SCALING = "min-max scaled (black = min, white = max)"


def cmd_theory(a) -> None:
  from theory_checks import checks
  from theory_checks.claims import summary_of
  only = [i.upper() for i in a.only] if a.only else None
  bad = [i for i in only or [] if i not in CHECK_IDS]
  if bad:
    raise RandconvError(f"unknown check {bad[0]}; choose from "
                        f"{', '.join(CHECK_IDS)}")
  from randconv import settings
  from randconv.deadline import Deadline
  out = Path(a.out)
  start = time.time()
  # This command's one clock ($RANDCONV_TIME_BUDGET_S); a stopped check
  # keeps its widths and the same command resumes it.
  deadline = Deadline.after(settings.current().time_budget_s)
  results, stopped = checks.run_checks(a.preset, out, only,
                                       deadline=deadline)
  total = time.time() - start
  payload = {"preset": a.preset, "out": str(out), "seconds": round(total, 1),
             "holds": all(r.holds for r in results) and not stopped,
             "stopped": stopped,
             "checks": [r.as_dict() for r in results]}
  from randconv import distributed
  if distributed.is_main():
    out.mkdir(parents=True, exist_ok=True)
    (out / "theory.json").write_text(json.dumps(payload, indent=1,
                                                default=float) + "\n")
  lines = [f"Section 5 theory checks, preset {a.preset} ({total:.0f} s)",
           f"{'id':<3} {'pass':<5} {'s':>5}  measured",
           ]
  for r in results:
    lines.append(f"{r.id:<3} {'yes' if r.holds else 'NO':<5} "
                 f"{r.seconds:>5.0f}  {summary_of(r.measured)}")
    lines.append(f"{'':>15}claim: {r.statement}")
    lines.append(f"{'':>15}tolerance: {r.tolerance}")
  if stopped:
    lines.append(f"partial: {stopped}")
  lines.append(f"details: {out / 'theory.json'}; figures in {out}/t*/")
  from randconv.repro.cli import emit
  emit(a, payload, "\n".join(lines))


def limit_bytes(spec, size: int, output: str, pooling: str) -> int:
  """A lower bound of the bytes ``randconv limit`` holds at once: the image
  (float32, then float64) and the recursion's largest arrays: a step's
  input and output [HW, HW] kernels (conv output), two energy maps (L2
  pooling) or the banded covariance at the input (average or max)."""
  from theory_checks import gp, limits
  pixels = size * size
  image = pixels * 3 * (4 + 8)
  if output == "conv":
    steps = gp.law_steps(spec, size, size)
    biggest = max([pixels] + [o[0] * o[1] for _, _, o in steps])
    return image + 2 * biggest ** 2 * 8
  if pooling == "l2":
    return image + 2 * pixels * 8
  steps = limits.section5_steps(spec, size, size, pooling="avg",
                                sampled=pooling == "max")
  dy, dx = limits.required_offsets(steps)[0]
  return image + pixels * (2 * dy + 1) * (2 * dx + 1) * 8


def cmd_limit(a) -> None:
  import numpy as np

  from randconv import images
  from randconv.metrics import GREY_WEIGHTS
  from randconv.spec import make_spec
  from theory_checks import gp, limits

  spec = make_spec(a.arch, a.layer, output=a.output, pooling=a.pooling)
  check_size(spec, a.size)  # SSIM and |r| are measured on the output
  check_memory(limit_bytes(spec, a.size, a.output, a.pooling),
               f"the {a.output} limit of {spec.arch} {spec.layer} at "
               f"{a.size}x{a.size}", "lower --size")
  x = images.load_batch([a.image], a.size, spec.min_size())[0]
  out = Path(a.out)
  out.mkdir(parents=True, exist_ok=True)
  start = time.time()
  payload = {"image": a.image, "arch": spec.arch, "layer": spec.layer,
             "size": a.size, "pooling": a.pooling, "output": a.output}
  if a.output == "conv":
    a.samples = a.samples or 200
    pred = gp.predict_conv(spec, x, n=a.samples)
    seconds = time.time() - start
    np.save(out / "kernel.npy", pred["law"].kernel.astype(np.float32))
    conv_figure(out / "samples.png", x, a.image, pred,
                f"{spec.arch} {spec.layer}, {a.pooling} pooling, {a.size}x"
                f"{a.size}")
    ssim, r = gp.summarise(pred["ssim"]), gp.summarise(pred["pearson_abs"])
    payload.update({
        "ssim_mean": ssim["mean"], "ssim_std": ssim["std"],
        "pearson_abs_mean": r["mean"], "pearson_abs_std": r["std"],
        "samples": a.samples, "pool_rel_se": pred["law"].pool_rel_se,
        "seconds": round(seconds, 3), "kernel": str(out / "kernel.npy"),
        "png": str(out / "samples.png")})
    text = (f"infinite-width law of the conv output of {a.image} through "
            f"{spec.arch} {spec.layer} ({a.pooling} pooling, {a.size}x"
            f"{a.size}) in {seconds:.1f} s: a Gaussian process\n"
            f"over {a.samples} samples: SSIM {ssim['mean']:.4f} +- "
            f"{ssim['std']:.4f}, |r| {r['mean']:.4f} +- {r['std']:.4f}\n"
            f"wrote {out / 'kernel.npy'} and {out / 'samples.png'}")
  else:
    info = {}
    y = limits.limit_image(spec, x, a.pooling, samples=a.samples,
                           info=info)
    seconds = time.time() - start
    grey = x @ np.array(GREY_WEIGHTS)
    ang = float(limits.angle(grey, y))
    np.save(out / "limit.npy", y.astype(np.float32))
    mean_figure(out / "limit.png", x, grey, a.image, y, ang,
                f"{spec.arch} {spec.layer}, {a.pooling} pooling, {a.size}x"
                f"{a.size}")
    m = gp.metric_samples(x, y[None].astype(np.float32))
    payload.update({
        "ssim_mean": float(m["ssim"][0]), "ssim_std": 0.0,
        "pearson_abs_mean": float(m["pearson_abs"][0]),
        "angle": ang, "angle_to_grey_input": ang,
        "cos_to_grey_input": float(np.cos(ang)),
        "convs": limits.n_convs(spec), "seconds": round(seconds, 4),
        "limit": str(out / "limit.npy"), "png": str(out / "limit.png"),
        "scale": "N(0, 1) weights; multiply by sigma ** convs for "
                 "N(0, sigma^2)"})
    if info.get("pool_rel_se"):
      payload["pool_rel_se"] = info["pool_rel_se"]
    text = (f"limit image of {a.image} through {spec.arch} {spec.layer} "
            f"({a.pooling} pooling, {a.size}x{a.size}) in {seconds:.3f} "
            f"s\nangle to the grey input: {ang:.4f} rad (cos "
            f"{np.cos(ang):.4f}); SSIM {payload['ssim_mean']:.4f}, |r| "
            f"{payload['pearson_abs_mean']:.4f}\nwrote {out / 'limit.npy'} "
            f"and {out / 'limit.png'}")
  from randconv.repro.cli import emit
  emit(a, payload, text)


def _range(a) -> str:
  return f"range {float(a.min()):.3g} to {float(a.max()):.3g}"


def mean_figure(path: Path, x, grey, name: str, y, ang: float, what: str
                ) -> Path:
  """``limit``'s figure of a channel-mean output: the input, its grey
  version (what the angle compares with) and the limit image ``y``, each
  panel titled, the limit min-max scaled with its range stated."""
  from randconv import plotting
  return plotting.image_grid(
      [[x, grey, plotting.unit(y)]], path, cell=2.0,
      titles=[[f"input: {name[:18]}", "grey input\n(0.299 R + 0.587 G + "
               "0.114 B)", f"limit image (N = inf)\n{_range(y)}"]],
      suptitle=f"{what}: the channel-mean output's infinite-width limit\n"
      f"angle to the grey input {ang:.3f} rad; the limit {SCALING}",
      caption=f"The input {name}, its grey version and the infinite-width "
      f"limit image of the channel-mean output (min-max scaled) of {what}; "
      f"angle to the grey input {ang:.3f} rad.")


def conv_figure(path: Path, x, name: str, pred: dict, what: str,
                n_show: int = 5) -> Path:
  """``limit``'s figure of a conv output, whose limit is a Gaussian
  process, not an image: the input, the process's standard deviation per
  pixel and a few of its draws, each min-max scaled, its range stated."""
  import numpy as np

  from randconv import plotting
  law = pred["law"]
  std = np.sqrt(np.clip(np.diag(law.kernel), 0, None)).reshape(law.hw)
  draws = pred["samples"][:n_show]
  return plotting.image_grid(
      [[x, plotting.unit(std)] + [plotting.unit(d) for d in draws]], path,
      cell=1.6, titles=[[f"input: {name[:18]}", f"GP std per pixel\n"
                         f"{_range(std)}"] + [
          f"GP sample {i + 1}\n{_range(d)}" for i, d in enumerate(draws)]],
      suptitle=f"{what}: the conv output's infinite-width limit, a "
      f"Gaussian process\nits std per pixel and {len(draws)} draws, each "
      f"{SCALING}",
      caption=f"The input {name}, then the infinite-width Gaussian process "
      f"of the conv output of {what}: its standard deviation per pixel and "
      f"{len(draws)} draws, each min-max scaled.")


def add_commands(sub) -> None:
  from randconv.repro.cli import add_arch_arg, add_image_arg, command
  p = command(sub, "theory", "Section 5 theory checks T1-T7 (limit image, "
              "convergence, variance and angle bounds)", cmd_theory,
              launchable=True)
  p.add_argument("--preset", default="cpu", choices=("quick", "cpu",
                                                      "paper"),
                 help="Monte Carlo widths and draws: quick (smoke), cpu, "
                      "paper (a GPU)")
  p.add_argument("--out", default="runs/theory", type=out_folder,
                 help="output folder (a rerun resumes there)")
  p.add_argument("--only", nargs="+", default=None, metavar="ID",
                 help="checks to run (T1 .. T7; default: all)")

  p = command(sub, "limit", "the infinite-width limit: the channel-mean "
              "output's image (Theorem 5.1 / A.7; max pooling sampled) or "
              "the conv output's Gaussian process (T7)", cmd_limit)
  add_image_arg(p)
  add_arch_arg(p)
  p.add_argument("--layer", default="conv1",
                 help="conv1..conv5 (ConvK) or a layer name such as pool1")
  p.add_argument("--size", type=positive_int, default=227,
                 help="the image is resized to SIZE x SIZE pixels (at least "
                      "SSIM's 11 x 11 window)")
  p.add_argument("--pooling", default="l2", choices=("l2", "avg", "max"),
                 help="every pooling layer: l2 (Section 5's), avg, or max "
                      "(sampled)")
  p.add_argument("--output", default="mean", choices=("mean", "conv"),
                 help="mean: the limit image; conv: the Gaussian process of "
                      "the conv output (maps up to 64x64)")
  p.add_argument("--samples", type=positive_int, default=None,
                 help="GP samples for --output conv (default 200); draws "
                      "per max-pool window for --output mean (default "
                      "65536)")
  p.add_argument("--out", required=True, type=out_folder,
                 help="output folder")
