"""The project's plugins: entry points (``pyproject.toml``) loaded by group.

``randconv.commands`` add subcommands to the CLI; ``randconv.claims`` and
``randconv.experiments`` feed :mod:`randconv.repro.registry`. A plugin
that cannot be loaded is an error naming it, never a silent skip.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from randconv.errors import RandconvError


class PluginError(RandconvError):
  """An entry point that cannot be loaded."""


def load(group: str) -> list[tuple[str, object]]:
  """``(name, object)`` of every entry point of ``group``, by name."""
  out = []
  for ep in sorted(entry_points(group=group), key=lambda e: e.name):
    try:
      out.append((ep.name, ep.load()))
    except Exception as e:  # noqa: BLE001 - named, never skipped
      raise PluginError(f"the {group} entry point {ep.name!r} ({ep.value}) "
                        f"cannot be loaded: {type(e).__name__}: {e}") from e
  return out
