"""The project's layout, read from its source with ``ast`` (nothing is
imported): the import graph of every module of randconv, experiments and
theory_checks has no cycle, and the imports go one way down: the harness
(``randconv/repro/``) and the plugin packages (experiments, theory_checks)
import the library (the rest of ``randconv/``), never the other way.

Every import counts, at the top of a module or inside a function;
``from package import name`` is an import of the submodule ``name`` when
there is one, else of the package (its ``__init__``). That importing
``a.b`` first runs ``a/__init__`` is not an edge: every package whose
``__init__`` re-exports its submodules would otherwise be a cycle with
them. Each check is run on a planted tree too, so that none can pass
because it sees nothing.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("randconv", "experiments", "theory_checks")
HARNESS = "randconv.repro"

def modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
  """Dotted module name -> source file, for every ``.py`` of the
  packages (a package is its ``__init__``)."""
  out = {}
  for package in packages:
    for path in sorted((root / package).rglob("*.py")):
      parts = list(path.relative_to(root).with_suffix("").parts)
      if parts[-1] == "__init__":
        parts.pop()
      out[".".join(parts)] = path
  return out


def _known(name: str, known) -> str | None:
  """The longest prefix of ``name`` that is a module of ``known``."""
  parts = name.split(".")
  for n in range(len(parts), 0, -1):
    if ".".join(parts[:n]) in known:
      return ".".join(parts[:n])
  return None


def imports(name: str, path: Path, known) -> set[str]:
  """The modules of ``known`` that module ``name`` (at ``path``) imports,
  anywhere in its source."""
  package = name.split(".")
  if path.stem != "__init__":
    package.pop()
  out = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      out |= {_known(a.name, known) for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: from the package, up level - 1
        up = package[:len(package) - node.level + 1]
        base = ".".join(up + ([base] if base else []))
      for a in node.names:
        sub = f"{base}.{a.name}"
        out.add(sub if sub in known else _known(base, known))
  return out - {None, name}


def import_graph(root: Path = ROOT, packages=PACKAGES) -> dict[str, set]:
  known = modules(root, packages)
  return {m: imports(m, p, known) for m, p in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle as its modules, the first repeated at the end
  (``[a, b, a]``), or None."""
  state, stack = {}, []

  def visit(m):
    state[m] = "open"
    stack.append(m)
    for d in sorted(graph.get(m, ())):
      if state.get(d) == "open":
        return stack[stack.index(d):] + [d]
      if d not in state and (cycle := visit(d)):
        return cycle
    state[m] = "done"
    stack.pop()
    return None

  for m in sorted(graph):
    if m not in state and (cycle := visit(m)):
      return cycle
  return None


def in_package(module: str, package: str) -> bool:
  return module == package or module.startswith(package + ".")


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
  """Every import against the direction: the library importing the
  harness or a plugin package, theory_checks importing experiments."""
  bad = []
  for m, deps in sorted(graph.items()):
    for d in sorted(deps):
      library = in_package(m, "randconv") and not in_package(m, HARNESS)
      if (library and in_package(d, HARNESS)) or \
          (in_package(m, "randconv") and d.split(".")[0] in (
              "experiments", "theory_checks")) or \
          (in_package(m, "theory_checks") and in_package(d, "experiments")):
        bad.append(f"{m} imports {d}")
  return bad


# --------------------------------------------------------------------------
# The project.

def test_the_graph_sees_the_imports():
  """The graph is the project's, with the kinds of import the checks rely
  on: a function-level ``from package import submodule`` (the registry's
  report), and top-level ones of modules and of names."""
  graph = import_graph()
  assert {"randconv", "randconv.repro.cli", "randconv.training.train",
          "experiments.catalog", "theory_checks.cli"} <= set(graph)
  assert "randconv.repro.report" in graph["randconv.repro.registry"]
  assert "randconv.repro.launch" in graph["randconv.repro.cli"]
  assert "randconv.training.objective" in graph["randconv.training.features"]
  assert "randconv.repro.registry" in graph["experiments.catalog"]


def test_no_import_cycle():
  """No cycle among the modules of randconv, experiments and
  theory_checks, imports inside functions included."""
  cycle = find_cycle(import_graph())
  assert cycle is None, " -> ".join(cycle)


def test_the_library_never_imports_the_harness():
  """No module of randconv outside randconv/repro imports the harness,
  and randconv imports neither experiments nor theory_checks (they are
  plugins of the harness, found through entry points); theory_checks
  does not import experiments."""
  assert wrong_way(import_graph()) == []


# --------------------------------------------------------------------------
# Negative controls: the same checks on a planted tree.

def plant(root: Path, files: dict[str, str]) -> Path:
  for name, text in files.items():
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
  return root


def test_a_planted_cycle_is_found(tmp_path):
  """A cycle closed by an import inside a function, and one closed by a
  relative ``from . import submodule``: each is reported as its modules."""
  root = plant(tmp_path, {
      "randconv/__init__.py": "",
      "randconv/a.py": "import randconv.b\n",
      "randconv/b.py": "def f():\n  from randconv import a\n",
      "experiments/__init__.py": "",
      "experiments/c.py": "from . import d\n",
      "experiments/d.py": "from .c import x\n",
      "theory_checks/__init__.py": "import os\n"})
  graph = import_graph(root)
  assert find_cycle(graph) == ["experiments.c", "experiments.d",
                               "experiments.c"]
  graph["experiments.d"] = set()
  assert find_cycle(graph) == ["randconv.a", "randconv.b", "randconv.a"]
  graph["randconv.b"] = set()
  assert find_cycle(graph) is None


def test_a_planted_wrong_way_import_is_found(tmp_path):
  root = plant(tmp_path, {
      "randconv/__init__.py": "",
      "randconv/spec.py": "def f():\n  from randconv.repro import cli\n",
      "randconv/engine.py": "import experiments.catalog\n",
      "randconv/repro/__init__.py": "",
      "randconv/repro/cli.py": "from randconv import spec\n",
      "experiments/__init__.py": "",
      "experiments/catalog.py": "from randconv.repro.cli import main\n",
      "theory_checks/__init__.py": "from experiments import catalog\n"})
  assert wrong_way(import_graph(root)) == [
      "randconv.engine imports experiments.catalog",
      "randconv.spec imports randconv.repro.cli",
      "theory_checks imports experiments.catalog"]
