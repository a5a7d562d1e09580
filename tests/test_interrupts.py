"""Ctrl-C and SIGTERM (randconv.repro.interrupts): a real ``randconv reproduce``
in a subprocess, interrupted between cells by SIGINT and then by SIGTERM,
exits with 130 and 143 and one line each time; the same command then
finishes with the claims of an uninterrupted run. And a Ctrl-C that Python
drops (raised inside a ``gc`` callback, as JAX's is) still ends the
process."""

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import has_lines, signal_when

# The kernel sweep (S4f) of the quick preset, made small: one group of
# cells per kernel, a new program (compile) for each.
FIELDS = dict(size=16, kernels=(1, 3, 5, 7), nets=2, images=2)

REPRODUCE = """
import sys
from experiments.section4 import configs
configs.OVERRIDES[configs.KernelConfig]["quick"].update({fields!r})
from randconv.repro.cli import main
sys.exit(main(["reproduce", "--preset", "quick", "--only", "S4f",
               "--out", sys.argv[1]]))
"""

LINE = {signal.SIGINT: "randconv: interrupted; run the same command again "
                       "to resume",
        signal.SIGTERM: "randconv: terminated (SIGTERM); run the same "
                        "command again to resume"}


def _claims(out) -> list[dict]:
  """claims.json without what depends on the clock (none of its fields
  does today; run.json holds the seconds)."""
  return json.loads((out / "claims.json").read_text())


def test_interrupted_reproduce_exits_130_then_143_and_resumes(tmp_path):
  cmd = [sys.executable, "-c", REPRODUCE.format(fields=FIELDS)]
  metrics = tmp_path / "cut" / "kernel_sweep" / "metrics.jsonl"
  nets, kernels = FIELDS["nets"], len(FIELDS["kernels"])
  for sig, lines in ((signal.SIGINT, nets), (signal.SIGTERM, 2 * nets)):
    code, err = signal_when([*cmd, str(tmp_path / "cut")],
                             has_lines(metrics, lines), sig)
    assert code == 128 + sig, err[-800:]
    assert err.rstrip().endswith(LINE[sig]), err[-800:]
    assert err.count("randconv: ") == 1 and "Traceback" not in err
    assert lines <= metrics.read_text().count("\n") < nets * kernels
  done = subprocess.run([*cmd, str(tmp_path / "cut")], capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-800:]
  plain = subprocess.run([*cmd, str(tmp_path / "plain")],
                         capture_output=True, text=True, timeout=300)
  assert plain.returncode == 0, plain.stderr[-800:]
  got, want = _claims(tmp_path / "cut"), _claims(tmp_path / "plain")
  assert [c["status"] for c in want] == ["smoke"]
  assert got == want


DROPPED = """
import gc, sys, time
from randconv.repro import interrupts
more, interrupts.GRACE_S = map(float, sys.argv[1:])

def slow_callback(phase, info):
  # A Ctrl-C raised here is printed ("Exception ignored") and dropped.
  if phase == "start" and not sys.stdout.closed:
    print("in the callback", flush=True)
    end = time.time() + 1
    while time.time() < end:
      pass

with interrupts.handled():
  try:
    gc.callbacks.append(slow_callback)
    gc.collect()
    gc.callbacks.remove(slow_callback)
    time.sleep(more)  # the run goes on
  except KeyboardInterrupt as e:
    interrupts.leave(e.signum)
print("not interrupted", flush=True)
"""


@pytest.mark.parametrize("more, grace", [(0.1, 30), (5, 1)],
                         ids=["work-ends-first", "timer-ends-it"])
def test_a_dropped_interrupt_still_ends_the_process(more, grace):
  """The work left after the signal is shorter than the grace (the
  command ends: 130 all the same) or longer (the timer ends it)."""
  start = time.time()
  proc = subprocess.Popen([sys.executable, "-c", DROPPED, str(more),
                           str(grace)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  try:
    assert proc.stdout.readline() == "in the callback\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.communicate()
  assert "Exception ignored" in err  # Python did drop it
  assert proc.returncode == 130, err
  assert "not interrupted" not in out
  assert err.rstrip().endswith(LINE[signal.SIGINT])
  assert time.time() - start < 5  # neither all the work nor the grace
