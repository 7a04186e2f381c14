"""The architecture, read from the source tree with `ast`: who may import what, and module size.

server/app.py                 the only module that imports a `*.routes` module
server/generation/            the core: no HTTP layer, no API family, no web framework
engine/, chat_templates/      below the server: import nothing from it
every .py file                at most 400 lines
"""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO

PACKAGES = ("server", "engine", "chat_templates", "bench", "tests")
MAX_LINES = 400


@dataclass(frozen=True)
class Import:
    """One import statement: where it is, as written, and the modules it may load."""

    file: str  # relative to the repository, with forward slashes
    line: int
    statement: str
    modules: tuple[str, ...]  # `from a.b import c` may load `a.b` and `a.b.c`

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.statement}"


def python_files(*folders: str) -> list[Path]:
    return sorted(
        path
        for folder in folders
        for path in (REPO / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    )


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def imports(path: Path) -> Iterator[Import]:
    """Every import statement of `path`, wherever it is (inside functions too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = relative(path).removesuffix(".py").split("/")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = tuple(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            modules = (module, *(f"{module}.{alias.name}" for alias in node.names))
        else:
            continue
        yield Import(relative(path), node.lineno, ast.unparse(node), modules)


def within(module: str, *prefixes: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def is_routes(module: str) -> bool:
    return within(module, "server") and module.rsplit(".", 1)[-1] == "routes"


HTTP_AND_API_FAMILIES = (
    "server.http",
    "server.workers_ai",
    "server.openai_api",
    "server.catalog",
    "server.finetunes",
    "fastapi",
    "starlette",
)
ROUTES_OWNER = "server/app.py"
API_ROUTES = (
    "server.workers_ai.routes",
    "server.openai_api.routes",
    "server.catalog.routes",
    "server.finetunes.routes",
    "server.binding.routes",
)


def test_the_scan_sees_the_app_mount_every_api_family() -> None:
    seen = {module for found in imports(REPO / ROUTES_OWNER) for module in found.modules}

    assert set(API_ROUTES) <= seen


def test_only_the_app_imports_route_modules() -> None:
    violations = [
        str(found)
        for path in python_files(*PACKAGES)
        if relative(path) != ROUTES_OWNER
        for found in imports(path)
        if any(map(is_routes, found.modules))
    ]

    assert not violations, "only server/app.py mounts routes:\n" + "\n".join(violations)


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        pytest.param("server/generation", HTTP_AND_API_FAMILIES, id="generation-has-no-http"),
        pytest.param("engine", ("server",), id="engine-has-no-server"),
        pytest.param("chat_templates", ("server",), id="chat-templates-have-no-server"),
    ],
)
def test_a_lower_layer_imports_nothing_above_it(folder: str, forbidden: tuple[str, ...]) -> None:
    files = python_files(folder)
    violations = [
        str(found)
        for path in files
        for found in imports(path)
        if any(within(module, *forbidden) for module in found.modules)
    ]

    assert files, f"no Python files under {folder}/"
    assert not violations, f"{folder}/ must not import {', '.join(forbidden)}:\n" + "\n".join(
        violations
    )


def test_no_module_is_over_400_lines() -> None:
    lengths = {
        relative(path): len(path.read_text(encoding="utf-8").splitlines())
        for path in python_files(*PACKAGES)
    }
    too_long = [f"{file}: {count} lines" for file, count in lengths.items() if count > MAX_LINES]

    assert not too_long, f"split by topic, at most {MAX_LINES} lines each:\n" + "\n".join(too_long)
