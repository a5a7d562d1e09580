"""Many processes on this CPU: jobs of 2 processes x 2 forced CPU devices
on 127.0.0.1 (JAX's distributed runtime, gloo collectives), against one
process on one device: data-parallel decoder training, a lost process and
the rerun that resumes, and a width sweep whose nets are split over the
job's devices."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import Job, job_flags, training_records
from randconv.repro.cli import main
from randconv.repro.launch import LOST_EXIT
from randconv.training import train as T

HERE = Path(__file__).parent
RANDCONV = shutil.which("randconv") or "randconv"
# A small decoder: batch 8 is 2 rows per device of a 4-device job.
TRAIN = ["train", "--layer", "conv1", "--width", "4", "--size", "16",
         "--short-side", "32", "--batch", "8", "--steps", "20",
         "--val-samples", "16", "--eval-every", "10", "--checkpoint-every",
         "5", "--log-every", "5", "--json"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  """One tfds folder for every process of the module (the photos are
  packed once); the compile cache is the test run's (conftest)."""
  return dict(os.environ,
              RANDCONV_DATA_DIR=str(tmp_path_factory.mktemp("tfds")))


@pytest.fixture(scope="module")
def reference(env, tmp_path_factory):
  """The run on one process with one device (this one)."""
  out = tmp_path_factory.mktemp("one") / "run"
  saved = os.environ.get("RANDCONV_DATA_DIR")
  os.environ["RANDCONV_DATA_DIR"] = env["RANDCONV_DATA_DIR"]
  try:
    assert main([*TRAIN, "--out", str(out)]) == 0
  finally:
    if saved is None:
      del os.environ["RANDCONV_DATA_DIR"]
    else:
      os.environ["RANDCONV_DATA_DIR"] = saved
  return out


def _train_job(out: Path, env) -> Job:
  return Job(lambda i, port: [RANDCONV, *TRAIN, "--out", str(out),
                              *job_flags(i, port)], env=env)


def _relative(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _same_training(run: Path, ref: Path, tol: float = 1e-5) -> None:
  """Same steps, batch losses, evaluations and final params (relative
  error at most ``tol``; the two reduce the batch in another order)."""
  (la, ea), (lb, eb) = training_records(run), training_records(ref)
  assert [s for s, _ in la] == [s for s, _ in lb] == list(range(20))
  assert _relative([v for _, v in la], [v for _, v in lb]) < tol
  assert [e[0] for e in ea] == [e[0] for e in eb] == [0, 10, 20]
  assert _relative(np.array(ea)[:, 1:], np.array(eb)[:, 1:]) < tol
  pa, pb = T.load_run(run)[3], T.load_run(ref)[3]
  assert pa.keys() == pb.keys()
  for layer in pa:
    for k in pa[layer]:
      assert _relative(pa[layer][k], pb[layer][k]) < tol, (layer, k)


def test_two_processes_train_like_one_device(env, reference, tmp_path):
  out = tmp_path / "job"
  with _train_job(out, env) as job:
    (c0, out0, err0), (c1, out1, err1) = job.wait()
  assert (c0, c1) == (0, 0), err0[-800:] + err1[-800:]
  result = json.loads(out0)  # process 0 prints the result, alone
  assert out1 == ""
  assert result["done"] and (result["devices"], result["processes"]) == (4, 2)
  _same_training(out, reference)
  # Process 0 alone wrote the records: each step once.
  steps = [r["step"] for r in T.read_metrics(out) if "loss" in r]
  assert steps == sorted(set(steps))


def test_two_processes_train_on_cached_features_like_one_device(
    env, reference, tmp_path):
  """Each process caches every crop's features and feeds its own rows: the
  uncached one-device run's numbers (20 steps x batch 8 = 160 crops)."""
  out = tmp_path / "cached"
  with Job(lambda i, port: [RANDCONV, *TRAIN, "--feature-cache", "160",
                            "--out", str(out), *job_flags(i, port)],
           env=env) as job:
    (c0, out0, err0), (c1, _, err1) = job.wait()
  assert (c0, c1) == (0, 0), err0[-800:] + err1[-800:]
  assert json.loads(out0)["devices"] == 4
  _same_training(out, reference)


def test_a_lost_process_ends_the_job_and_a_rerun_resumes(env, reference,
                                                         tmp_path):
  """SIGKILL of process 1 after the job's first checkpoint."""
  out = tmp_path / "job"
  with _train_job(out, env) as job:
    stop = time.time() + 120
    while time.time() < stop and not any(
        r.get("event") == "checkpoint" for r in T.read_metrics(out)):
      assert all(p.poll() is None for p in job.procs), "ended too early"
      time.sleep(0.01)
    job.procs[1].send_signal(signal.SIGKILL)
    t0 = time.time()
    (c0, _, err0), (c1, _, _) = job.wait(timeout=60)
    seconds = time.time() - t0
  assert c1 == -signal.SIGKILL
  assert not (out / "summary.json").exists(), "killed too late to test"
  # The survivor ends with one clear line, after the 5 s heartbeats.
  assert c0 == LOST_EXIT, err0[-800:]
  lines = [ln for ln in err0.splitlines() if ln.startswith("randconv:")]
  assert len(lines) == 1 and "process 1 of 2 stopped sending heartbeats" \
      in lines[0] and "run the same launch again" in lines[0], err0[-800:]
  assert seconds < 30
  # A rerun resumes from the last checkpoint, here on one process with one
  # device (a checkpoint holds whole arrays), and ends as one device would.
  done = subprocess.run([RANDCONV, *TRAIN, "--out", str(out)],
                        env=dict(env, JAX_NUM_CPU_DEVICES="1"),
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-800:]
  resumed = [r["step"] for r in T.read_metrics(out)
             if r.get("event") == "resumed"]
  assert resumed and resumed[0] % 5 == 0 and 0 < resumed[0] < 20
  _same_training(out, reference)


def test_width_sweep_on_two_processes_matches_one(tmp_path):
  sys.path.insert(0, str(HERE))
  import distributed_sweep
  one = tmp_path / "one"
  statuses = [r.status for r in distributed_sweep.run(one)]
  # Process 1 is given a folder of its own: it must never make it.
  outs = [tmp_path / "job", tmp_path / "process1"]
  with Job(lambda i, port: [sys.executable, str(HERE / "distributed_sweep.py"),
                            str(outs[i]), *job_flags(i, port)]) as job:
    (c0, out0, err0), (c1, out1, err1) = job.wait()
  assert (c0, c1) == (0, 0), err0[-800:] + err1[-800:]
  assert json.loads(out0) == statuses and out1 == ""
  assert not outs[1].exists()
  assert sorted(p.name for p in outs[0].iterdir()) == sorted(
      p.name for p in one.iterdir())
  a = [json.loads(ln) for ln in (one / "metrics.jsonl").open()]
  b = [json.loads(ln) for ln in (outs[0] / "metrics.jsonl").open()]
  assert [r["cell"] for r in a] == [r["cell"] for r in b]
  for ra, rb in zip(a, b, strict=True):
    assert ra.keys() == rb.keys()
    for k in ("ssim", "pearson"):  # float32 sums in another order
      assert _relative(rb[k], ra[k]) < 1e-6, (ra["cell"], k)
