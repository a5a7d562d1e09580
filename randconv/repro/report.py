"""The reports of ``randconv reproduce``: ``claims.json``, ``report.md`` and a
self-contained ``report.html`` (figures embedded, so it opens from a zip or
an e-mail), and the README's results table.

A claim's entry carries its ``status`` (:data:`STATUSES`), a one-sentence
``summary`` with the deciding numbers against the ``rule``, the paper's
reference, the figures (paths relative to the run folder; each PNG carries
its one-line caption, :func:`randconv.plotting.caption_of`), an optional
``explanation`` (what theory or an independent check says), ``sensitivity``
rows (the verdict under another reading of the paper) and the full
``measured`` record.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import os
import subprocess
from pathlib import Path

STATUSES = ("holds", "does not hold", "inconclusive", "needs weights",
            "partial", "not implemented", "smoke")
COLOURS = {"holds": "#1a7f37", "does not hold": "#b42318",
           "inconclusive": "#b54708", "needs weights": "#475467",
           "partial": "#6941c6", "not implemented": "#98a2b3",
           "smoke": "#0e7090"}
README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"


def run_metadata(preset: str, seconds: float) -> dict:
  """Preset, date, commit, backend and device, total run time."""
  try:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True,
        text=True, cwd=Path(__file__).resolve().parent, timeout=10,
        check=False).stdout.strip() or "unknown"
  except (OSError, subprocess.SubprocessError):
    commit = "unknown"
  try:
    import jax
    devs = jax.devices()
    kind = devs[0].device_kind
    if jax.default_backend() == "cpu":
      kind = f"{os.cpu_count()} cores"
    device = f"{jax.default_backend()}: {len(devs)} x {kind}"
  except Exception:  # noqa: BLE001 - the report must still be written
    device = "unknown"
  return {"preset": preset,
          "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
          "commit": commit, "device": device,
          "seconds": round(float(seconds), 1)}


def _duration(s: float) -> str:
  s = int(round(s))
  return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else \
      f"{s // 60} min {s % 60:02d} s"


def counts(claims: list[dict]) -> dict[str, int]:
  out = {s: 0 for s in STATUSES}
  for c in claims:
    out[c["status"]] = out.get(c["status"], 0) + 1
  return {s: n for s, n in out.items() if n}


def _group(c: dict) -> str:
  if c.get("extension"):
    return "Extensions beyond the paper"
  if c["id"].startswith("T"):
    return "Section 5: theory checks"
  return f"Section {c['id'][1]}: experiments"


def _cell(v) -> str:
  """A markdown table cell: pipes escaped."""
  return (v if isinstance(v, str) else _fmt(v)).replace("|", "\\|")


def _fmt(v) -> str:
  if isinstance(v, float):
    return f"{v:.4g}"
  if isinstance(v, (list, tuple)):
    return ", ".join(_fmt(x) for x in v)
  if isinstance(v, dict):
    return "; ".join(f"{k} {_fmt(x)}" for k, x in v.items())
  return str(v)


# --------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#101828;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:2em;font-size:1.25em}
h3{font-size:1.1em;margin-bottom:.3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{border:1px solid #d0d5dd;padding:4px 8px;vertical-align:top;
text-align:left}
th{background:#f2f4f7}.badge{display:inline-block;padding:1px 8px;
border-radius:10px;color:#fff;font-size:.85em;white-space:nowrap}
.meta td:first-child{font-weight:600}.claim{border-top:1px solid #d0d5dd;
margin-top:1.6em;padding-top:.4em}.label{font-weight:600}
.note{background:#f0f9ff;border-left:4px solid #0e7090;padding:.5em .8em}
figure{margin:.8em 0}figure img{max-width:100%;border:1px solid #eaecf0}
figcaption{font-size:.85em;color:#475467}
details pre{font-size:.8em;background:#f9fafb;padding:.6em;overflow:auto;
max-height:30em}
"""


def badge(status: str) -> str:
  colour = COLOURS.get(status, "#475467")
  return (f"<span class='badge' style='background:{colour}'>"
          f"{html.escape(status)}</span>")


def caption(run_dir: Path | None, figure: str) -> str:
  """A figure's one-line caption: the one saved in its PNG, else (a
  figure from before captions, or no run folder) its path."""
  from randconv.plotting import caption_of
  found = caption_of(Path(run_dir) / figure) if run_dir is not None \
      else None
  return found or figure


def _image_tag(path: Path, text: str, name: str) -> str:
  """The figure, embedded, with its caption ``text``; its path ``name``
  is the image's tooltip."""
  data = base64.b64encode(path.read_bytes()).decode("ascii")
  return (f"<figure><img alt='{html.escape(text)}' "
          f"title='{html.escape(name)}' "
          f"src='data:image/png;base64,{data}'><figcaption>"
          f"{html.escape(text)}</figcaption></figure>")


def _kv_table(rows: dict, head=("", "")) -> str:
  body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>"
                 f"{html.escape(_fmt(v))}</td></tr>" for k, v in rows.items())
  return (f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body}"
          "</table>")


def _sensitivity_table(rows: list[dict]) -> str:
  head = "".join(f"<th>{h}</th>" for h in ("reading", "deciding numbers",
                                           "verdict"))
  body = "".join(
      f"<tr><td>{html.escape(r['reading'])}</td><td>"
      f"{html.escape(r.get('summary', ''))}</td><td>"
      f"{badge(r['status'])}</td></tr>" for r in rows)
  return f"<table><tr>{head}</tr>{body}</table>"


def _section(c: dict, run_dir: Path) -> str:
  kind = "Extension" if c.get("extension") else "Paper"
  parts = [f"<section class='claim' id='{c['id']}'>",
           f"<h3>{c['id']} {badge(c['status'])} "
           f"<small>{html.escape(c.get('paper_ref', ''))}</small></h3>",
           f"<p><span class='label'>{kind}:</span> "
           f"{html.escape(c.get('title', ''))}: "
           f"{html.escape(c['claim'])}</p>"]
  why = (f"Why {c['status']}" if c["status"] in (
      "inconclusive", "partial", "needs weights") else "Note")
  for key, label, cls in (("rule", "Decision rule", ""),
                          ("summary", "Measured", ""),
                          ("reason", why, ""),
                          ("explanation", "Explanation", "note")):
    if c.get(key):
      parts.append(f"<p class='{cls}'><span class='label'>"
                   f"{html.escape(label)}:</span> "
                   f"{html.escape(c[key])}</p>")
  if c.get("deciding"):
    parts.append(_kv_table(c["deciding"], ("deciding number", "value")))
  if c.get("sensitivity"):
    parts.append("<p><span class='label'>Sensitivity to our reading of "
                 "the paper:</span></p>")
    parts.append(_sensitivity_table(c["sensitivity"]))
  for f in c.get("figures", []):
    path = run_dir / f
    if path.exists() and path.suffix == ".png":
      parts.append(_image_tag(path, caption(run_dir, f), f))
  if c.get("measured") is not None:
    parts.append("<details><summary>everything measured (JSON)</summary>"
                 f"<pre>{html.escape(json.dumps(c['measured'], indent=1))}"
                 "</pre></details>")
  parts.append("</section>")
  return "".join(parts)


def render_html(claims: list[dict], meta: dict, run_dir: Path) -> str:
  n = counts(claims)
  head = "".join(f"{badge(s)} {k} &nbsp; " for s, k in n.items())
  meta_rows = {"preset": meta.get("preset"), "date": meta.get("date"),
               "commit": meta.get("commit"), "backend, device":
               meta.get("device"), "time of this invocation (earlier invocations' "
               "cells are reused)": _duration(meta.get("seconds", 0.0))}
  rows = "".join(
      f"<tr><td><a href='#{c['id']}'>{c['id']}</a>"
      f"{'<br><small>extension</small>' if c.get('extension') else ''}</td><td>"
      f"{html.escape(c.get('paper_ref', ''))}</td><td>"
      f"{html.escape(c['claim'])}</td><td>{badge(c['status'])}</td><td>"
      f"{html.escape(c.get('summary', ''))}</td></tr>" for c in claims)
  smoke = ("<p class='note'>The verdicts at this preset are <b>smoke</b>: "
           "the machinery ran and the numbers are shown, but the sizes are "
           "too small to be evidence. Run <code>randconv reproduce --preset "
           "cpu</code> for evidence on a CPU.</p>"
           if n.get("smoke") else "")
  meta_table = "".join(f"<tr><td>{k}</td><td>{html.escape(str(v))}</td></tr>"
                       for k, v in meta_rows.items())
  title = html.escape(str(meta.get("preset")))
  sections, group = [], None
  for c in claims:
    if _group(c) != group:
      group = _group(c)
      sections.append(f"<h2>{html.escape(group)}</h2>")
    sections.append(_section(c, run_dir))
  return ("<!doctype html><html lang='en'><meta charset='utf-8'>"
          "<meta name='viewport' content='width=device-width'>"
          f"<title>randconv reproduce, preset {title}</title>"
          f"<style>{_CSS}</style><body>"
          "<h1>randconv: He et al., <i>Randomness in Deconvolutional Networks "
          "for Visual Representation</i>, reproduced</h1>"
          f"<table class='meta'>{meta_table}</table>"
          f"<p>{head}</p>{smoke}<h2>Summary</h2><table><tr><th>id</th>"
          "<th>paper</th><th>claim</th><th>status</th><th>deciding numbers"
          f"</th></tr>{rows}</table>{''.join(sections)}</body></html>\n")


# --------------------------------------------------------------------------
# Markdown

def results_table(claims: list[dict]) -> str:
  lines = ["| id | paper | claim | status | deciding numbers |",
           "|---|---|---|---|---|"]
  for c in claims:
    label = f"{c['id']} (ext.)" if c.get("extension") else c["id"]
    lines.append(f"| {label} | {c.get('paper_ref', '')} | "
                 f"{_cell(c['claim'])} | **{c['status']}** | "
                 f"{_cell(c.get('summary', ''))} |")
  return "\n".join(lines)


def render_markdown(claims: list[dict], meta: dict,
                    run_dir: Path | None = None) -> str:
  """report.md; the figures' captions come from their PNGs in
  ``run_dir``."""
  n = counts(claims)
  lines = [f"# randconv reproduce, preset `{meta.get('preset')}`", "",
           f"{meta.get('date')}, commit {meta.get('commit')}, "
           f"{meta.get('device')}, {_duration(meta.get('seconds', 0.0))} "
           "for this invocation. "
           + ", ".join(f"{k} {s}" for s, k in n.items()) + ".", ""]
  if n.get("smoke"):
    lines += ["The verdicts at this preset are **smoke**: the machinery "
              "ran; the numbers are not evidence.", ""]
  lines += [results_table(claims), ""]
  for c in claims:
    lines += [f"## {c['id']}: {c.get('title', '')} ({c['status']})", "",
              f"*{c.get('paper_ref', '')}*: {c['claim']}", ""]
    why = (f"Why {c['status']}" if c["status"] in (
        "inconclusive", "partial", "needs weights") else "Note")
    for key, label in (("rule", "Decision rule"), ("summary", "Measured"),
                       ("reason", why),
                       ("explanation", "Explanation")):
      if c.get(key):
        lines += [f"**{label}:** {c[key]}", ""]
    if c.get("deciding"):
      lines += ["| deciding number | value |", "|---|---|"]
      lines += [f"| {_cell(k)} | {_cell(v)} |"
                for k, v in c["deciding"].items()]
      lines.append("")
    if c.get("sensitivity"):
      lines += ["| reading | deciding numbers | verdict |", "|---|---|---|"]
      lines += [f"| {_cell(r['reading'])} | {_cell(r.get('summary', ''))} | "
                f"{r['status']} |" for r in c["sensitivity"]]
      lines.append("")
    for f in c.get("figures", []):
      text = caption(run_dir, f).replace("\n", " ")
      alt = text.replace("[", "\\[").replace("]", "\\]")
      lines += [f"![{alt}]({f})", "", f"*{text}*", ""]
    lines.append("")
  return "\n".join(lines) + "\n"


def write(out: Path, claims: list[dict], meta: dict) -> None:
  """Writes claims.json (with the run's metadata), report.md and
  report.html into the run folder ``out`` (with many processes, process 0
  alone writes them)."""
  from randconv import distributed
  if not distributed.is_main():
    return
  out = Path(out)
  (out / "claims.json").write_text(json.dumps(claims, indent=1,
                                              default=_json) + "\n")
  (out / "run.json").write_text(json.dumps(meta, indent=1) + "\n")
  (out / "report.md").write_text(render_markdown(claims, meta, out))
  (out / "report.html").write_text(render_html(claims, meta, out))


def _json(v):
  """numpy scalars as Python ones (a numpy bool stays a bool)."""
  if hasattr(v, "item"):
    return v.item()
  if hasattr(v, "tolist"):
    return v.tolist()
  raise TypeError(f"{type(v).__name__} is not JSON serialisable")


def load(run_dir: Path) -> tuple[list[dict], dict]:
  run_dir = Path(run_dir)
  claims = json.loads((run_dir / "claims.json").read_text())
  meta_path = run_dir / "run.json"
  meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
  return claims, meta


def update_readme(readme: Path, claims: list[dict], meta: dict) -> None:
  """Rewrites the README's results table between its two markers."""
  text = Path(readme).read_text()
  if README_START not in text or README_END not in text:
    from randconv.errors import RandconvError
    raise RandconvError(f"{readme} has no {README_START} ... {README_END} "
                        "markers to put the table between")
  head, rest = text.split(README_START, 1)
  _, tail = rest.split(README_END, 1)
  n = counts(claims)
  table = (f"\n*Preset `{meta.get('preset')}`, {meta.get('date', '')[:10]}, "
           f"commit {meta.get('commit')}, {meta.get('device')}: "
           + ", ".join(f"{k} {s}" for s, k in n.items())
           + ". Regenerate with `randconv report RUN_DIR --readme "
           "README.md`.*\n\n" + results_table(claims) + "\n")
  Path(readme).write_text(head + README_START + table + README_END + tail)


def relative_figures(figures: list[str], run_dir: Path) -> list[str]:
  """Figure paths relative to the run folder (as the reports need)."""
  run_dir = Path(run_dir).resolve()
  out = []
  for f in figures:
    p = Path(f)
    if not p.is_absolute():
      p = (Path.cwd() / p)
    out.append(os.path.relpath(p.resolve(), run_dir))
  return out
