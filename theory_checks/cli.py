"""``randconv theory`` and ``randconv limit`` (added to the core CLI)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from randconv.errors import RandconvError

CHECK_IDS = ("T1", "T2", "T3", "T4", "T5", "T6")


def _short(measured: dict) -> str:
  """The one or two numbers of a check that fit in a table cell."""
  m = measured
  if "slope_per_image" in m:
    s = list(m["slope_per_image"].values())
    return (f"slopes {min(s):+.2f}..{max(s):+.2f}, agree "
            f"{m['limit_agreement']:.0e}, engines |z| {m['engine_max_z']}")
  if "pooled_N_rel_err" in m:
    return (f"N E|y-y^|^2/|y^|^2 = {m['pooled_N_rel_err']:.3f} +- "
            f"{m['pooled_se']:.3f} (pi-1 = 2.142); quantile/bound <= "
            f"{m['worst_quantile_over_bound']:.2f}")
  if "slope_by_depth" in m:
    lo, hi = m["slope_range"]
    last = list(m["mean_angle_by_depth"].values())[-1]
    return (f"slopes {lo:+.2f}..{hi:+.2f}; angle depth 2 -> "
            f"{len(last) + 1}: {last[0]:.3f} -> {last[-1]:.3f}")
  if "cos_alpha" in m:
    return (f"min cos - bound {m['min_gap_cos_minus_middle']:.1e}; falls "
            f"with k: {m['cos_falls_with_kernel']}")
  if "ratio_at_max_N" in m:
    r = list(m["ratio_at_max_N"].values())
    b = list(m["input_limit_angle"].values())
    return (f"angle/input-angle at max N {min(r):.2f}..{max(r):.2f} "
            f"(input angle {min(b):.2f}..{max(b):.2f})")
  return json.dumps(m)[:60]


def cmd_theory(a) -> None:
  from theory_checks import checks
  only = [i.upper() for i in a.only] if a.only else None
  bad = [i for i in only or [] if i not in CHECK_IDS]
  if bad:
    raise RandconvError(f"unknown check {bad[0]}; choose from "
                        f"{', '.join(CHECK_IDS)}")
  out = Path(a.out)
  start = time.time()
  results = checks.run_checks(a.preset, out, only)
  total = time.time() - start
  payload = {"preset": a.preset, "out": str(out), "seconds": round(total, 1),
             "holds": all(r.holds for r in results),
             "checks": [r.as_dict() for r in results]}
  (out / "theory.json").write_text(json.dumps(payload, indent=1,
                                              default=float) + "\n")
  lines = [f"Section 5 theory checks, preset {a.preset} ({total:.0f} s)",
           f"{'id':<3} {'pass':<5} {'s':>5}  measured",
           ]
  for r in results:
    lines.append(f"{r.id:<3} {'yes' if r.holds else 'NO':<5} "
                 f"{r.seconds:>5.0f}  {_short(r.measured)}")
    lines.append(f"{'':>15}claim: {r.statement}")
    lines.append(f"{'':>15}tolerance: {r.tolerance}")
  lines.append(f"details: {out / 'theory.json'}; figures in {out}/t*/")
  from randconv.cli import emit
  emit(a, payload, "\n".join(lines))


def cmd_limit(a) -> None:
  import numpy as np

  from randconv import images, plotting
  from randconv.spec import make_spec
  from theory_checks import limits

  spec = make_spec(a.arch, a.layer, output="mean", pooling=a.pooling)
  x = images.load_batch([a.image], a.size, spec.min_size())[0]
  start = time.time()
  y = limits.limit_image(spec, x, a.pooling)
  seconds = time.time() - start
  grey = x @ np.array([0.299, 0.587, 0.114])
  ang = float(limits.angle(grey, y))
  out = Path(a.out)
  out.mkdir(parents=True, exist_ok=True)
  np.save(out / "limit.npy", y.astype(np.float32))
  lo, hi = float(y.min()), float(y.max())
  plotting.save_png(out / "limit.png", (y - lo) / (hi - lo) if hi > lo
                    else np.zeros_like(y))
  payload = {"image": a.image, "arch": spec.arch, "layer": spec.layer,
             "size": a.size, "pooling": a.pooling,
             "angle_to_grey_input": ang,
             "cos_to_grey_input": float(np.cos(ang)),
             "convs": limits.n_convs(spec), "seconds": round(seconds, 4),
             "limit": str(out / "limit.npy"), "png": str(out / "limit.png"),
             "scale": "N(0, 1) weights; multiply by sigma ** convs for "
                      "N(0, sigma^2)"}
  emit_text = (f"limit image of {a.image} through {spec.arch} {spec.layer} "
               f"({a.pooling} pooling, {a.size}x{a.size}) in {seconds:.3f} "
               f"s\nangle to the grey input: {ang:.4f} rad (cos "
               f"{np.cos(ang):.4f})\nwrote {out / 'limit.npy'} and "
               f"{out / 'limit.png'}")
  from randconv.cli import emit
  emit(a, payload, emit_text)


def add_commands(sub) -> None:
  from randconv.cli import positive_int
  p = sub.add_parser(
      "theory", help="Section 5 theory checks T1-T6 (limit image, "
      "convergence, variance and angle bounds)")
  p.add_argument("--preset", default="cpu", choices=("quick", "cpu",
                                                      "paper"))
  p.add_argument("--out", default="runs/theory",
                 help="output folder (a rerun resumes there)")
  p.add_argument("--only", nargs="+", default=None, metavar="ID",
                 help="checks to run (T1 .. T6)")
  p.add_argument("--json", action="store_true")
  p.set_defaults(func=cmd_theory)

  p = sub.add_parser(
      "limit", help="the infinite-width limit image of the channel-mean "
      "network (Theorem 5.1 / A.7)")
  p.add_argument("image", metavar="IMAGE_OR_NAME",
                 help="an image file or an offline photo name (chelsea, ...)")
  p.add_argument("--arch", default="vgg16")
  p.add_argument("--layer", default="conv1",
                 help="conv1..conv5 (ConvK) or a layer name such as pool1")
  p.add_argument("--size", type=positive_int, default=227)
  p.add_argument("--pooling", default="l2", choices=("l2", "avg"))
  p.add_argument("--out", required=True)
  p.add_argument("--json", action="store_true")
  p.set_defaults(func=cmd_limit)
