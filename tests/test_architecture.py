"""The house's floors import only downward: interface -> stages -> resources -> models.

Every import in every module counts, including the ones inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package prefix -> prefixes it must never import
FORBIDDEN = {
    "models": ("fleetcast", "flows", "tasks", "prefect", "distributed", "dask", "boto3", "duckdb"),
    "fleetcast.resources": ("fleetcast.stages", "fleetcast.interface", "flows", "tasks"),
    "fleetcast.stages": ("fleetcast.interface", "flows", "tasks"),
    "tasks": ("fleetcast.interface", "flows"),
    "flows": ("fleetcast.interface",),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, absolute, wherever the import statement sits."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _violations(package: str, banned: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py")):
        for name in sorted(imports_of(path)):
            if any(name == b or name.startswith(b + ".") for b in banned):
                out.append(f"{_module_name(path)} imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_only_downward(package: str) -> None:
    assert _violations(package, FORBIDDEN[package]) == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from fleetcast.interface.cli import main\n    import boto3\n")
    assert {"fleetcast.interface.cli", "fleetcast.interface.cli.main", "boto3"} <= imports_of(f)


def test_fleetcast_has_three_floors_and_the_root() -> None:
    top = {p.name for p in (ROOT / "fleetcast").iterdir() if not p.name.startswith("__pycache")}
    assert top == {"__init__.py", "config.py", "interface", "stages", "resources"}


# --------------------------------------------------------------------------- no import cycles

PACKAGES = ("fleetcast", "models", "tasks", "flows")


def project_modules(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    out: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in the file, also inside functions
    and under ``TYPE_CHECKING``); ``from a.b import c`` counts as ``a.b.c`` when that is a
    module, else ``a.b``."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for imported in imports_of(path):
            parts = imported.split(".")
            for i in range(len(parts), 0, -1):
                candidate = ".".join(parts[:i])
                if candidate in modules:
                    if candidate != name:
                        deps.add(candidate)
                    break
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_between_modules() -> None:
    cycle = find_cycle(import_graph(project_modules()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_a_cycle_through_a_function_import(tmp_path: Path) -> None:
    pkg = tmp_path / "fleetcast"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from fleetcast.b import g\n")
    (pkg / "b.py").write_text("def g():\n    from fleetcast import a\n")
    (pkg / "c.py").write_text("import fleetcast.a\n")
    graph = import_graph(project_modules(tmp_path, ("fleetcast",)))
    assert find_cycle(graph) == ["fleetcast.a", "fleetcast.b", "fleetcast.a"]
    (pkg / "b.py").write_text("def g():\n    return 1\n")
    assert find_cycle(import_graph(project_modules(tmp_path, ("fleetcast",)))) is None
