"""The reports of ``randconv reproduce``: statuses, the self-contained
report.html (parsed with the standard library), report.md and the README's
generated results table."""

import base64
import importlib
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from randconv.plotting import save_png
from randconv.repro import registry, report
from randconv.repro.cli import main
from randconv.repro.registry import ClaimResult


class _Page(HTMLParser):
  """Sections, images, links, and the text outside <details>."""

  def __init__(self):
    super().__init__()
    self.sections, self.images, self.links = [], [], []
    self.outside, self._details = [], 0

  def handle_starttag(self, tag, attrs):
    a = dict(attrs)
    if tag == "section" and a.get("class") == "claim":
      self.sections.append(a["id"])
    if tag == "img":
      self.images.append(a["src"])
    if tag == "a":
      self.links.append(a.get("href", ""))
    if tag == "details":
      self._details += 1

  def handle_endtag(self, tag):
    if tag == "details":
      self._details -= 1

  def handle_data(self, data):
    if not self._details:
      self.outside.append(data)


def _results(tmp_path: Path) -> list[ClaimResult]:
  fig = tmp_path / "exp" / "curve.png"
  fig.parent.mkdir(parents=True)
  save_png(fig, np.linspace(0, 1, 64).reshape(8, 8))
  measured = {"ssim_mean": [0.1, 0.2], "nested": {"a": 1}}
  return [
      ClaimResult("S4c", registry.claim_text("S4c"), measured, False,
                  figures=[str(fig)], summary="SSIM 0.080 -> 0.078",
                  rule="Welch t >= 3", explanation="T7 predicts a plateau",
                  sensitivity=[{"reading": "128 px", "summary": "t 0.1",
                                "status": "does not hold"}],
                  deciding={"Welch t": -0.08}),
      ClaimResult("S3c", registry.claim_text("S3c"), measured, False,
                  status="inconclusive", reason="not converged: VGG"),
      ClaimResult("S3a", registry.claim_text("S3a"), measured, None,
                  status="needs weights", figures=[str(fig)]),
      ClaimResult("T7", registry.claim_text("T7"), measured, True,
                  figures=[str(fig)], summary="slopes -0.55"),
      registry.not_implemented("S4f"),
  ]


@pytest.mark.parametrize("preset", ["cpu", "quick"])
def test_report_html_is_self_contained_and_readable(tmp_path, preset):
  smoke = preset == "quick"
  # Section 3 and 4 experiments name quick a smoke preset; the theory not.
  entries = [registry.finalise(r, tmp_path, smoke and r.id.startswith("S"))
             for r in _results(tmp_path)]
  claims = registry.write_report(tmp_path, preset, entries, 75.0)
  statuses = {c["id"]: c["status"] for c in claims}
  assert statuses == {"S4c": "smoke" if smoke else "does not hold",
                      "S3c": "smoke" if smoke else "inconclusive",
                      "S3a": "smoke" if smoke else "needs weights",
                      "T7": "holds", "S4f": "not implemented"}
  page = _Page()
  text = (tmp_path / "report.html").read_text()
  page.feed(text)
  assert sorted(page.sections) == sorted(statuses)
  assert len(page.images) == 3
  for src in page.images:
    head, data = src.split(",", 1)
    assert head == "data:image/png;base64"
    assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
  assert str(tmp_path) not in text
  assert all(link.startswith("#") for link in page.links)
  outside = "".join(page.outside)
  assert '{"' not in outside and '"nested"' not in outside
  assert "extension" in outside.lower() and "Decision rule" in outside
  assert ("smoke" in outside) == smoke
  # claims.json: full measured, relative figures, the new fields.
  saved = {c["id"]: c for c in json.loads(
      (tmp_path / "claims.json").read_text())}
  assert saved["S4c"]["measured"] == {"ssim_mean": [0.1, 0.2],
                                      "nested": {"a": 1}}
  assert saved["S4c"]["figures"] == ["exp/curve.png"]
  assert saved["S4c"]["paper_ref"] == "Sec. 4.2, Figs. 8-9 (a)"
  assert saved["T7"]["extension"] and not saved["S4c"]["extension"]
  md = (tmp_path / "report.md").read_text()
  assert "](exp/curve.png)" in md and "| S4c |" in md


class _Figures(HTMLParser):
  """Each <figure>'s caption text and its image's alt text."""

  def __init__(self):
    super().__init__()
    self.captions, self.alts, self._in = [], [], False

  def handle_starttag(self, tag, attrs):
    if tag == "img":
      self.alts.append(dict(attrs).get("alt"))
    self._in = tag == "figcaption"

  def handle_endtag(self, tag):
    self._in = False

  def handle_data(self, data):
    if self._in:
      self.captions.append(data)


def test_figures_carry_their_captions_not_their_paths(tmp_path):
  """A figure saved with a caption shows it (in report.html and
  report.md); one saved before captions existed still shows its path."""
  from PIL import Image

  from randconv import plotting
  words = "Fig. 7: the cat and its outputs, net 0 of 2 [min-max scaled]"
  new, old = tmp_path / "exp" / "new.png", tmp_path / "exp" / "old.png"
  fig = plotting._plt().figure(figsize=(2, 1))
  plotting.save_figure(fig, new, caption=words)
  save_png(old, np.zeros((4, 4)))
  with Image.open(new) as im:  # in the PNG's own text, as saved
    assert im.text[plotting.CAPTION_KEY] == words
  assert plotting.caption_of(old) is None
  r = ClaimResult("S4a", registry.claim_text("S4a"), {"x": 1.0}, True,
                  figures=[str(new), str(old)])
  registry.write_report(tmp_path, "cpu", [r])
  page = _Figures()
  page.feed((tmp_path / "report.html").read_text())
  assert page.captions == [words, "exp/old.png"]
  assert page.alts == [words, "exp/old.png"]
  md = (tmp_path / "report.md").read_text()
  assert f"*{words}*" in md and "](exp/new.png)" in md
  assert "*exp/old.png*" in md
  # Old claims.json entries (figures as paths) re-render the same way.
  entries = json.loads((tmp_path / "claims.json").read_text())
  assert entries[0]["figures"] == ["exp/new.png", "exp/old.png"]
  assert main(["report", str(tmp_path)]) == 0
  again = _Figures()
  again.feed((tmp_path / "report.html").read_text())
  assert again.captions == page.captions


def test_image_grid_titles_clear_the_images_above(tmp_path, monkeypatch):
  """Fig. 7's shape (2 x 6 square images, two-line titles): every title's
  box lies below the bottom of the image above it (with tight_layout
  alone the second row's titles ran 3 px into the first row's images)
  and below the suptitle."""
  from randconv import plotting
  seen = {}

  def keep(fig, path, dpi=100, caption=None):  # save_figure's layout
    if fig.get_layout_engine() is None:
      fig.tight_layout()
    fig.canvas.draw()
    seen.update(fig=fig, caption=caption)
    return path
  monkeypatch.setattr(plotting, "save_figure", keep)
  img = np.linspace(0, 1, 64 * 64).reshape(64, 64)
  rows = [[img] * 6 for _ in range(2)]
  titles = [[f"Conv{j}  SSIM 0.123\nnet {i} of 8" for j in range(6)]
            for i in range(2)]
  plotting.image_grid(rows, tmp_path / "g.png", titles=titles, cell=2.0,
                      row_labels=["a", "b"], caption="c",
                      suptitle="a title\nof two lines")
  fig = seen["fig"]
  renderer = fig.canvas.get_renderer()
  axes = np.array(fig.axes).reshape(2, 6)
  for i in range(1, 2):
    for j in range(6):
      title = axes[i, j].title.get_window_extent(renderer)
      above = axes[i - 1, j].get_window_extent(renderer)
      assert title.y1 < above.y0, (i, j, title, above)
  top = axes[0, 0].title.get_window_extent(renderer)
  sup = fig._suptitle.get_window_extent(renderer)
  assert top.y1 < sup.y0 and sup.y1 <= fig.bbox.y1
  assert seen["caption"] == "c"
  plotting._plt().close(fig)


def test_readme_table_is_regenerated_between_markers(tmp_path, capsys):
  registry.write_report(tmp_path, "cpu", _results(tmp_path), 10.0)
  readme = tmp_path / "README.md"
  readme.write_text(f"# x\n\nbefore\n{report.README_START}\nSTALE TABLE\n"
                    f"{report.README_END}\nafter\n")
  assert main(["report", str(tmp_path), "--readme", str(readme)]) == 0
  text = readme.read_text()
  assert "STALE" not in text and "before" in text and "after" in text
  assert "| S4c | Sec. 4.2, Figs. 8-9 (a) |" in text
  assert "**inconclusive**" in text
  # A second run gives the same file (it never drifts from the run).
  assert main(["report", str(tmp_path), "--readme", str(readme)]) == 0
  assert readme.read_text() == text
  capsys.readouterr()
  assert main(["report", str(tmp_path / "none")]) == 2
  assert "no claims.json" in capsys.readouterr().err


def test_reproduce_refuses_unknown_claim_ids(tmp_path, capsys):
  assert main(["reproduce", "--only", "S9z", "--out", str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert "S9z" in err and "S4c" in err
  assert not (tmp_path / "report.html").exists()


def test_claims_not_run_yet_are_partial_not_missing():
  """While reproduce runs (or after a kill), a claim whose experiment has
  not run is `partial`; only a claim no experiment covers is `not
  implemented`."""
  [c] = registry._all({}, {"S4c"})
  assert c["status"] == "partial" and "not run yet" in c["reason"]


def test_claims_and_experiments_are_plugins():
  """The harness finds the catalog and the experiments through entry
  points: every claim is covered once (that ``randconv/`` imports neither
  plugin package is tests/test_layout.py's)."""
  claims, exps = registry.catalog(), registry.experiments()
  covered = [i for e in exps.values() for i in e.ids]
  assert sorted(covered) == sorted(claims)
  assert claims["T7"].extension and not claims["S4c"].extension


def test_a_broken_plugin_is_an_error_naming_it(monkeypatch):
  from importlib.metadata import EntryPoint
  broken = EntryPoint("broken", "experiments.no_such_module:EXPERIMENTS",
                      registry.EXPERIMENTS_GROUP)
  from randconv.repro import plugins
  monkeypatch.setattr(plugins, "entry_points", lambda group: [broken])
  registry.experiments.cache_clear()
  registry.catalog.cache_clear()
  try:
    with pytest.raises(plugins.PluginError,
                       match="'broken' .*no_such_module"):
      registry.experiments()
  finally:
    registry.experiments.cache_clear()
    registry.catalog.cache_clear()


def test_reproduce_records_each_experiments_config(tmp_path, monkeypatch):
  """``experiment.json`` holds the whole config dataclass: a reader can
  rebuild it; the run gets the invocation's deadline."""
  from experiments.section4.configs import KernelConfig, config_for
  from randconv.deadline import Deadline
  seen = {}

  def run(cfg, workdir, deadline):
    seen.update(cfg=cfg, deadline=deadline)
    return [ClaimResult("S4f", registry.claim_text("S4f"), {"x": 1.0}, True)]

  exp = registry.Experiment("kernels", ("S4f",), "t", run,
                            lambda p, s: config_for(KernelConfig, p),
                            smoke_presets=("quick",))
  monkeypatch.setattr(registry, "experiments", lambda: {"kernels": exp})
  deadline = Deadline.after(100)
  [c] = registry.reproduce("quick", tmp_path, only=["S4f"],
                           deadline=deadline)
  assert c["status"] == "smoke" and seen["deadline"] is deadline
  saved = json.loads((tmp_path / "kernels" / "experiment.json").read_text())
  module, name = saved["config_class"].rsplit(".", 1)
  assert getattr(importlib.import_module(module), name) is KernelConfig
  fields = {k: tuple(v) if isinstance(v, list) else v
            for k, v in saved["config"].items()}
  assert KernelConfig(**fields) == seen["cfg"] == config_for(KernelConfig,
                                                             "quick")
