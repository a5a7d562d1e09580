"""Checks that run before a command does any work, so that bad input is one
line on stderr and exit code 2 (a :class:`~randconv.errors.RandconvError`)
rather than a traceback, and leaves nothing half written:

* :func:`out_folder` and :func:`out_file`, argparse types of output paths:
  the path can be created and written (:func:`randconv.rundir.unwritable`),
  checked at parse time;
* :func:`positive_int`, :func:`positive_float` and :func:`non_negative`,
  argparse types of counts and sizes;
* :func:`check_size`: an input size every map of the network can take,
  and, where a metric is computed, at least SSIM's window;
* :func:`check_memory` and :func:`check_net_fits`: the arrays a command
  would allocate fit in this machine's memory. The estimates are lower
  bounds (what must be alive at once), so a refusal is certain to fail
  and no size that runs today is refused.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from randconv.errors import RandconvError
from randconv.rundir import unwritable

GB = 1e9


# --------------------------------------------------------------------------
# Output paths.

def out_folder(text: str) -> str:
  """argparse type of an output folder that exists or can be made, and can
  be written."""
  why = unwritable(Path(text))
  if why:
    raise argparse.ArgumentTypeError(
        f"{why}; give a folder that can be created and written")
  return text


def out_file(text: str) -> str:
  """argparse type of an output file whose folder can be made and written."""
  path = Path(text)
  if path.is_dir():
    raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name")
  why = unwritable(path.parent)
  if why:
    raise argparse.ArgumentTypeError(
        f"{why}; give a file in a folder that can be created and written")
  return text


# --------------------------------------------------------------------------
# Numbers.

def _number(kind, text: str):
  """``text`` as a ``kind`` number, or argparse's error saying it is not
  one."""
  try:
    return kind(text)
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"{text!r} is not {'an integer' if kind is int else 'a number'}"
    ) from None


def positive_int(text: str) -> int:
  value = _number(int, text)
  if value <= 0:
    raise argparse.ArgumentTypeError(f"must be positive, got {value}")
  return value


def positive_float(text: str) -> float:
  value = _number(float, text)
  if not value > 0:  # NaN too
    raise argparse.ArgumentTypeError(f"must be positive, got {text}")
  return value


def non_negative(kind):
  """An argparse type of a ``kind`` number that may be 0, not below."""
  def parse(text: str):
    value = _number(kind, text)
    if not value >= 0:
      raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value
  parse.__name__ = f"non-negative {kind.__name__}"
  return parse


# --------------------------------------------------------------------------
# Sizes.

def check_size(spec, size: int, *, metric: bool = True,
               flag: str = "--size") -> None:
  """Refuses a ``size`` x ``size`` input for which some map of ``spec`` is
  empty (the spec's own shape computation says which), or, with
  ``metric``, where the output (the size of the input: the decoder crops
  to it) is smaller than SSIM's window: SSIM averages over the window
  positions that fit, so with none it has nothing to average and its
  score means nothing (it printed 1.0).

  Raises:
    RandconvError: one line naming ``flag`` and the smallest size taken.
  """
  from randconv.metrics import SSIM_WINDOW
  from randconv.spec import SpecError
  try:
    spec.shapes(size, size)
  except SpecError as e:  # names the smallest input and the empty map
    raise RandconvError(f"{flag} {size}: {e}") from None
  if metric and size < SSIM_WINDOW:
    smallest = max(SSIM_WINDOW, spec.min_size())
    raise RandconvError(
        f"{flag} {size}: the output would be {size}x{size}, smaller than "
        f"SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window, so no SSIM can be "
        f"measured; give {flag} {smallest} or more")


# --------------------------------------------------------------------------
# Memory.

def machine_memory() -> int:
  """This machine's physical memory in bytes (0 where unknown)."""
  try:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (AttributeError, OSError, ValueError):
    return 0


def accelerator_memory() -> int:
  """The memory of JAX's local accelerators together, in bytes (0 when JAX
  runs on the CPU or does not say)."""
  try:
    import jax
    devices = jax.local_devices()
    if not devices or devices[0].platform == "cpu":
      return 0
    return sum((d.memory_stats() or {}).get("bytes_limit", 0)
               for d in devices)
  except Exception:  # noqa: BLE001 - a backend that cannot answer
    return 0


def check_memory(need: int, what: str, advice: str, *,
                 accelerator: bool = False) -> None:
  """Refuses ``need`` bytes (a lower bound of what ``what`` allocates) where
  they exceed this machine's memory, or, for JAX work (``accelerator``),
  its accelerators' memory too.

  Raises:
    RandconvError: one line naming the estimate, the memory and
      ``advice``.
  """
  have = machine_memory()
  if not have or need <= have:
    return
  device = accelerator_memory() if accelerator else 0
  if need <= device:
    return
  where = f"this machine's {have / GB:.1f} GB"
  if device:
    where += f" (and its accelerators' {device / GB:.1f} GB)"
  raise RandconvError(f"{what} needs at least {need / GB:,.1f} GB of memory, "
                      f"more than {where}; {advice}")


def check_net_fits(spec, size: int, images: int = 1, outputs: int = 0,
                   advice: str = "lower --size") -> None:
  """Refuses a pass of ``images`` images of ``size`` x ``size`` through
  ``spec`` that cannot fit in memory, before anything is allocated. The
  estimate: the images, the largest layer's input and output for all of
  them at once, and ``outputs`` result images of the same size.

  Raises:
    RandconvError: the estimate is over the machine's memory.
  """
  if size < spec.min_size():
    return  # images.load_batch names the smallest input
  from randconv.engine import activation_bytes
  pixels = size * size * spec.in_channels * 4
  need = images * (activation_bytes(spec, size, size) // 2 + pixels) + \
      outputs * pixels
  check_memory(need, f"{spec.arch} {spec.layer} on {images} image"
               f"{'s' * (images != 1)} of {size}x{size}",
               advice, accelerator=True)
