"""The run folder, the deadline and the settings every experiment shares."""

import json
import time

import pytest

from randconv import settings
from randconv.deadline import NO_DEADLINE, Deadline
from randconv.rundir import RunDir, WorkdirError, read_jsonl


def test_a_cut_line_is_dropped_and_recomputed(tmp_path):
  run = RunDir(tmp_path, {"a": 1})
  run.append([{"cell": "x", "v": 1.5}, {"cell": "y", "v": 2.0}])
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"cell": "z", "v": 3')  # a kill in the middle of a write
  again = RunDir(tmp_path, {"a": 1})
  assert [r["cell"] for r in again.records] == ["x", "y"]
  assert again.has("y") and not again.has("z")
  assert (tmp_path / "metrics.jsonl").read_text().endswith("2.0}\n")
  again.append({"cell": "z", "v": 3.0})
  assert RunDir(tmp_path, {"a": 1}).get("z") == {"cell": "z", "v": 3.0}


def test_another_config_is_refused_naming_the_fields(tmp_path):
  RunDir(tmp_path, {"a": 1, "b": [1, 2], "impl": "x"})
  with pytest.raises(WorkdirError, match=r"\(a, b differ\)"):
    RunDir(tmp_path, {"a": 2, "b": (1, 3), "impl": "x"})
  # Tuples are stored as lists: the same config.
  RunDir(tmp_path, {"a": 1, "b": (1, 2), "impl": "x"})
  # A field that may differ does not count; the first value is kept.
  RunDir(tmp_path, {"a": 1, "b": [1, 2], "impl": "y"}, may_differ=["impl"])
  assert json.loads((tmp_path / "config.json").read_text())["impl"] == "x"


def test_an_unwritable_folder_is_one_error(tmp_path):
  (tmp_path / "file").write_text("")
  with pytest.raises(WorkdirError, match="cannot create the run folder"):
    RunDir(tmp_path / "file" / "run", {})


def test_summaries_are_written_atomically(tmp_path):
  run = RunDir(tmp_path, {})
  run.write_json("summary.json", {"loss": 0.5})
  assert run.read_json("summary.json") == {"loss": 0.5}
  assert not list(tmp_path.glob("*.tmp"))
  run.rewrite([{"step": 1}])
  assert read_jsonl(tmp_path / "metrics.jsonl") == [{"step": 1}]
  assert run.find(step=1) == {"step": 1} and run.find(step=2) is None


def test_deadline_and_its_shares():
  assert not NO_DEADLINE.expired() and NO_DEADLINE.left() is None
  assert NO_DEADLINE.share(3) is NO_DEADLINE
  assert Deadline.after(0).expired()
  d = Deadline.after(30)
  assert not d.expired() and 29 < d.left() <= 30
  share = d.share(3)
  assert 9 < share.left() <= 10 and share.at < d.at
  assert Deadline.after(-1).left() == 0


def test_settings_map_the_environment_in_one_place(monkeypatch):
  for name in settings.ENV:
    monkeypatch.delenv(name, raising=False)
  assert settings.current() == settings.Settings()
  monkeypatch.setenv("RANDCONV_TIME_BUDGET_S", "12.5")
  monkeypatch.setenv("RANDCONV_WEIGHTS", "a.pth:b.h5")
  s = settings.current()
  assert s.time_budget_s == 12.5 and s.weights == ("a.pth", "b.h5")
  assert settings.current(time_budget_s=3).time_budget_s == 3  # a flag wins
  monkeypatch.setenv("RANDCONV_TIME_BUDGET_S", "soon")
  with pytest.raises(ValueError, match="RANDCONV_TIME_BUDGET_S='soon'"):
    settings.current()


def test_a_run_folder_checks_the_deadline(tmp_path):
  run = RunDir(tmp_path, {}, deadline=Deadline.after(0.05))
  assert not run.out_of_time()
  time.sleep(0.06)
  assert run.out_of_time()
