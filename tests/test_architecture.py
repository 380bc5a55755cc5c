"""The house's floors import only downward: interface -> stages -> resources -> models.

Every import in every module counts, including the ones inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package prefix -> prefixes it must never import
FORBIDDEN = {
    "models": ("fleetcast", "flows", "tasks", "prefect", "prefect_dask", "boto3", "duckdb"),
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
