"""Do Ctrl-Cs end ``randconv reproduce`` cleanly and resumably? Runs the
command once uninterrupted, then ``--tries`` times in fresh folders, each
sent one signal at another moment (spread evenly over the uninterrupted
run's length) and then run again to the end; prints per try the moment,
the exit status (130 for SIGINT, 143 for SIGTERM; 139 was a segfault), the
seconds from the signal to the exit, the stage it was in, the resumed run's
status and whether its claims.json equals the uninterrupted run's (time
fields aside).

  nice -n 10 python benchmarks/interrupts.py                  # ~12 min
  python benchmarks/interrupts.py --only S4f --tries 3 --signal SIGTERM

Run it from the repository root, with nothing else heavy on the machine:
the moments are wall-clock seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIME_KEYS = ("second", "time", "date")  # fields that depend on the clock


def timeless(obj):
  """``obj`` without the dictionary keys that name a time."""
  if isinstance(obj, dict):
    return {k: timeless(v) for k, v in obj.items()
            if not any(t in k.lower() for t in TIME_KEYS)}
  if isinstance(obj, list):
    return [timeless(v) for v in obj]
  return obj


def command(a, out: Path) -> list[str]:
  return [sys.executable, "-m", "randconv.repro.cli", "reproduce", "--preset",
          a.preset, "--out", str(out), "--only", *a.only]


def stage(err: str) -> str:
  """The last ``[reproduce]`` experiment, and its last progress bar."""
  lines = [s.strip() for s in err.replace("\r", "\n").splitlines()]
  heads = [i for i, s in enumerate(lines) if s.startswith("[reproduce]")]
  if not heads:
    return "start"
  bars = [s.split(":")[0] for s in lines[heads[-1]:] if "%|" in s]
  return lines[heads[-1]].split()[1] + (f" / {bars[-1]}" if bars else "")


def interrupted(a, out: Path, moment: float, sig) -> tuple[int, float, str]:
  proc = subprocess.Popen(command(a, out), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  time.sleep(moment)
  sent = time.time()
  if proc.poll() is None:
    proc.send_signal(sig)
  err = proc.communicate()[1]
  return proc.returncode, time.time() - sent, stage(err)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--preset", default="quick")
  ap.add_argument("--only", nargs="+", default=["S4c", "T7"])
  ap.add_argument("--tries", type=int, default=10)
  ap.add_argument("--signal", default="SIGINT", choices=("SIGINT",
                                                         "SIGTERM"))
  ap.add_argument("--work", default=None,
                  help="folder for the runs (default: a temporary one, "
                       "removed at the end)")
  a = ap.parse_args()
  sig = getattr(signal, a.signal)
  work = Path(a.work or tempfile.mkdtemp(prefix="randconv-interrupts-"))
  t0 = time.time()
  ref = subprocess.run(command(a, work / "plain"), capture_output=True,
                       text=True)
  length = time.time() - t0
  if ref.returncode:
    sys.exit(f"the uninterrupted run failed ({ref.returncode}): "
             f"{ref.stderr[-500:]}")
  want = timeless(json.loads((work / "plain" / "claims.json").read_text()))
  print(f"reproduce --preset {a.preset} --only {' '.join(a.only)}: "
        f"{length:.1f} s uninterrupted; {a.tries} x {a.signal}")
  print(f"{'try':>3} {'at s':>6} {'exit':>5} {'exit s':>7}  "
        f"{'resumed':>7} {'claims':>7}  stage")
  clean = same = 0
  for i in range(a.tries):
    moment = 3 + i * max(length - 6, 0) / max(a.tries - 1, 1)
    out = work / f"try{i}"
    code, took, where = interrupted(a, out, moment, sig)
    again = subprocess.run(command(a, out), capture_output=True, text=True)
    equal = again.returncode == 0 and timeless(json.loads(
        (out / "claims.json").read_text())) == want
    clean += code == 128 + sig
    same += equal
    print(f"{i:>3} {moment:>6.1f} {code:>5} {took:>7.1f}  "
          f"{again.returncode:>7} {'same' if equal else 'DIFFER':>7}  "
          f"{where}", flush=True)
  print(f"{clean} of {a.tries} exits with {128 + sig}; {same} of {a.tries} "
        "resumed runs with the uninterrupted run's claims")
  if not a.work:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
