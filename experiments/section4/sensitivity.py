"""Do S4a's and S4c's verdicts depend on our reading of the paper?

Two choices the paper leaves open are flipped, and the deciding cells run
once more with each alternative (where the config's ``sensitivity_size``
is set, the cpu preset):

* the inputs: raw RGB in [0, 1] (as run) or minus their per-channel mean;
* the size: S4c's width sweep runs at 64 px at the cpu preset, S4a's Fig. 7
  at 227 px; the alternative is 128 px for both.

S4c's deciding cells are the smallest and the largest width (its rule
compares them), S4a's are row 1 of Fig. 7 (Conv1..Conv5). The cells go into
the experiment's own log as ``sens/<reading>/...``, so they resume like the
rest, and each row is decided by the claim's own rule.
"""

from __future__ import annotations

import numpy as np

from experiments.section4.cells import run_cells, scores, sweep_post
from experiments.section4.data import offline_images, sample_images
from experiments.section4.fig7 import fig7_cells, fig7_stats
from experiments.section4.rules import RISE_T, rise, rise_summary, s4a_decision
from experiments.section4.width import width_stats
from randconv import images
from randconv.spec import make_spec


def _readings(size: int, alt: int) -> list[tuple[str, str, int, bool]]:
  """(cell tag, label, size, centred): the tag names the size, so a
  changed preset never reuses another size's cells."""
  return [(f"center{size}", f"inputs minus their per-channel mean, "
           f"{size} px", size, True),
          (f"size{alt}", f"raw inputs, {alt} px", alt, False)]


def _verdict(holds: bool | None) -> str:
  return "partial" if holds is None else ("holds" if holds
                                          else "does not hold")


def s4c_rows(log, cfg, keys, result) -> list[dict]:
  """S4c under each reading: the rise from the smallest to the largest
  width of the conv-output net, by S4c's rule (Welch t >= 3)."""
  ends = [cfg.widths[0], cfg.widths[-1]]
  main = width_stats(log, "conv", cfg.widths, len(keys))
  rows = [{"reading": f"as run: raw inputs in [0, 1], {cfg.size} px",
           "summary": rise_summary(main),
           "status": _verdict(result.holds)}]
  for tag, label, size, center in _readings(cfg.size, cfg.sensitivity_size):
    x, _, _ = sample_images(cfg.images, size, cfg.source)
    if center:
      x = images.center_input(x)
    for w in ends:
      spec = make_spec("vgg16", "pool1", width=w, output="conv")
      run_cells(log, spec, keys, x, sweep_post,
                lambda i, w=w, tag=tag: f"sens/{tag}/conv/w{w}/n{i}",
                lambda res, w=w: {"variant": "conv", "width": w,
                                  **scores(res)})
    st = width_stats(log, f"sens/{tag}/conv", ends, len(keys))
    if len(st["width"]) < 2:
      rows.append({"reading": label, "summary": "not run (time budget)",
                   "status": "partial"})
      continue
    rows.append({"reading": label, "summary": rise_summary(st),
                 "status": _verdict(rise(st)["t"] >= RISE_T)})
  return rows


def s4a_rows(log, cfg, keys, result) -> list[dict]:
  """S4a under each reading: Fig. 7 row 1 (the cat through Conv1..Conv5)
  decided by S4a's rule."""
  m = result.measured
  rows = [{"reading": f"as run: raw inputs in [0, 1], {cfg.size} px",
           "summary": result.summary, "status": _verdict(result.holds),
           "fails": _s4a_fails({"decays": m["decays"],
                                "contours": m["contours_conv1_3"],
                                "rough": m["rough_contour_conv4"]})}]
  for tag, label, size, center in _readings(cfg.size, cfg.sensitivity_size):
    x, _ = offline_images(1 + cfg.others, size)
    if center:
      x = images.center_input(x).astype(np.float32)
    prefix = f"sens/{tag}/"
    done, total = fig7_cells(log, x, cfg, keys, {"original": False},
                             prefix)
    stats = fig7_stats(log, prefix + "original", len(keys))
    if done < total or any(s is None for s in stats):
      rows.append({"reading": label, "summary": "not run (time budget)",
                   "status": "partial"})
      continue
    d = s4a_decision(stats)
    rows.append({"reading": label, "summary": d["summary"],
                 "status": _verdict(d["holds"]), "fails": _s4a_fails(d)})
  return rows


def _s4a_fails(d: dict) -> list[str]:
  """The parts of S4a's rule that fail."""
  return [name for name, ok in (("decay with depth", d["decays"]),
                                ("contours at Conv1-3", d["contours"]),
                                ("rough contour at Conv4", d["rough"]))
          if not ok]


def explain(result) -> None:
  """Adds what the sensitivity rows say to a claim that does not hold: our
  reading differs (another reading flips the verdict) or the verdict stands
  under every reading that ran."""
  if result.holds is not False or not result.sensitivity:
    return
  rows = result.sensitivity[1:]
  flips = [r["reading"] for r in rows if r["status"] == "holds"]
  stays = [r["reading"] for r in rows if r["status"] == "does not hold"]
  cut = [r["reading"] for r in rows if r["status"] == "partial"]
  parts = []
  if flips:
    parts.append("Our reading differs: the claim holds with "
                 + " and with ".join(flips) + ".")
  elif stays:
    parts.append("The verdict does not depend on our reading: it does not "
                 "hold with " + " nor with ".join(stays) + " either.")
    failing = [f"{r['reading']}: {', '.join(r['fails'])}"
               for r in result.sensitivity if r.get("fails")]
    if failing:
      parts.append("What fails, by reading: " + "; ".join(failing) + ".")
    if not result.explanation:
      parts.append("No theory or independent check covers this claim yet: "
                   "in these runs the effect is absent, at least in part.")
  if cut:
    parts.append("Not run within the time budget: " + "; ".join(cut) + ".")
  result.explanation = " ".join(t for t in [result.explanation] + parts if t)
