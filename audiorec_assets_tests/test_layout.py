"""The package's layout, read from its source (no import of the package except in the last test): modules import
each other without cycles, the science core knows nothing of Dagster, and every third-party package the code
imports is declared in pyproject.toml."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "audiorec_assets"
# plain Python that the Dagster layer (defs/, definitions.py) and the commands (cli.py, runner.py) build on
SCIENCE_CORE = ("data", "datasets", "encoders", "recommenders", "evaluation")
DAGSTER_LAYER = ("defs", "definitions", "runner", "cli")
# the extras a module may import from only inside the functions (or modules) that need them
EXTRA_IMPORTS = {"music21": "classical", "dask": "cluster", "dagster_dask": "cluster", "dagster_k8s": "cluster"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # what it imports, dotted (for ``from a import b``: ``a.b`` when that is a module, else ``a``)
    line: int
    top_level: bool  # at module level (not in a function; ``if TYPE_CHECKING:`` counts as module level)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package, dotted name → file."""
    found = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports_of(module: str, path: Path) -> list[Import]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(module, alias.name, child.lineno, not in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, *([child.module] if child.module else [])])
                for alias in child.names:
                    submodule = f"{base}.{alias.name}"
                    found.append(Import(module, submodule if submodule in modules() else base, child.lineno,
                                        not in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), False)
    return found


@cache
def all_imports() -> tuple[Import, ...]:
    """Every import statement of the package: module level, in functions and under ``if TYPE_CHECKING:``."""
    return tuple(imp for module, path in modules().items() for imp in _imports_of(module, path))


def _own_module(target: str) -> str | None:
    """The package's module that ``target`` names (``a.b.C`` → ``a.b``), None for another package."""
    while target and target not in modules():
        target = target.rpartition(".")[0]
    return target or None


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in modules()}
    for imp in all_imports():
        if imp.target.split(".")[0] == PACKAGE and (imported := _own_module(imp.target)) not in (None, imp.module):
            graph[imp.module].add(imported)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := walk(start)):
            return cycle
    return None


def _in(module: str, parts: tuple[str, ...]) -> bool:
    return any(module == f"{PACKAGE}.{p}" or module.startswith(f"{PACKAGE}.{p}.") for p in parts)


def test_the_graph_sees_imports_at_every_level():
    graph = import_graph()
    assert "audiorec_assets.datasets.classical.publish" in graph["audiorec_assets.datasets.classical.build"]
    assert "audiorec_assets.runner" in graph["audiorec_assets.cli"]  # inside main()
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    """Counting imports inside functions and under ``if TYPE_CHECKING:`` too: a module that needs one "up" the
    graph takes the shared piece from a lower module instead."""
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_science_core_knows_no_dagster():
    """data/, datasets/, encoders/, recommenders/ and evaluation/ are plain Python: no dagster import, and no
    import of the Dagster layer or the commands (they import the core, not the other way round)."""
    offending = [f"{imp.module}:{imp.line} imports {imp.target}" for imp in all_imports()
                 if _in(imp.module, SCIENCE_CORE)
                 and (imp.target.split(".")[0].startswith("dagster") or _in(imp.target, DAGSTER_LAYER))]
    assert not offending, "\n".join(offending)


def test_the_study_data_does_not_import_the_generators():
    """data/ (sources, ingest, split, quality) reads any raw/; the generators in datasets/ write one."""
    offending = [f"{imp.module}:{imp.line} imports {imp.target}" for imp in all_imports()
                 if _in(imp.module, ("data",)) and _in(imp.target, ("datasets",))]
    assert not offending, "\n".join(offending)


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normalised(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


@cache
def declared() -> dict[str, str]:
    """Distribution (normalised) → where pyproject.toml declares it: ``dependencies`` or the extra's name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    where = {}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        if extra != "test":  # what the tests need; the package may not import it
            where.update({_requirement_name(r): extra for r in requirements})
    where.update({_requirement_name(r): "dependencies" for r in project["dependencies"]})
    return where


def _hand_installed() -> set[str]:
    """Import names an encoder whose code is not on PyPI checks for at run time, with the install to do
    (``REQUIRED_MODULES`` of that encoder's module): not declared, as no index serves them."""
    names = set()
    for path in modules().values():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
            if isinstance(target, ast.Name) and target.id == "REQUIRED_MODULES":
                names.update(module for module, _install in ast.literal_eval(node.value))
    return names


def third_party_imports() -> dict[str, list[Import]]:
    """Top-level import name (``sklearn``, ``yaml``) → where the package imports it."""
    found: dict[str, list[Import]] = {}
    for imp in all_imports():
        name = imp.target.split(".")[0]
        if name and name != PACKAGE and name not in sys.stdlib_module_names and name != "__future__":
            found.setdefault(name, []).append(imp)
    return found


def test_every_direct_import_is_declared():
    distributions = packages_distributions()
    hand_installed = _hand_installed()
    problems = []
    for name, imports in sorted(third_party_imports().items()):
        where = f"{imports[0].module}:{imports[0].line}"
        if name in hand_installed:
            if any(imp.top_level for imp in imports):
                problems.append(f"{name} (not on PyPI) is imported at module level ({where}): import it where used")
            continue
        dists = distributions.get(name)
        if not dists:
            problems.append(f"{name} ({where}) is not installed here: declare its distribution, or list it in the "
                            "REQUIRED_MODULES of the encoder that needs it")
            continue
        places = {declared()[_normalised(d)] for d in dists if _normalised(d) in declared()}
        if not places:
            problems.append(f"{name} ({where}): its distribution {dists} is not declared in pyproject.toml")
        elif "dependencies" not in places and EXTRA_IMPORTS.get(name) not in places:
            problems.append(f"{name} ({where}) is only in the extra(s) {sorted(places)}: add it to EXTRA_IMPORTS "
                            "here with its extra, or to the dependencies")
    assert not problems, "\n".join(problems)


def test_loading_the_definitions_needs_no_extra():
    """Imports of an extra's packages (music21, Dask, Kubernetes) wait for the functions or executors that use
    them: ``dagster dev`` and the commands load the definitions with the dependencies alone."""
    probe = ("import sys, audiorec_assets.definitions\n"
             f"print(sorted(name for name in {sorted(EXTRA_IMPORTS)!r} if name in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
