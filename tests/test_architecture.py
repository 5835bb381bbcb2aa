"""The rules ARCHITECTURE.md promises, checked over the source with ast so they stay true.

- No app module is longer than 600 lines (migrations aside).
- `mifumo/api/` (the HTTP base layer) imports no app; no app imports the dashboard, the top.
- No import cycle among the project's modules, counting imports inside functions.
- A project module is imported inside a function only in an AppConfig's `ready()`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "contacts",
    "dashboard",
    "inbox",
    "integration",
    "message_templates",
    "mifumo",
    "segments",
    "sms",
    "webhooks",
)
MAX_LINES = 600
# The project's wiring: it names every app, so it may import any of them.
WIRING = {"mifumo.urls", "mifumo.settings"}


@dataclass(frozen=True)
class Import:
    target: str
    line: int
    in_function: str | None


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (a module, or a name in a module)."""
    known = modules()
    while name not in known:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def _walk(node: ast.AST, function: str | None) -> Iterator[tuple[ast.AST, str | None]]:
    for child in ast.iter_child_nodes(node):
        inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else None
        yield child, function
        yield from _walk(child, inner or function)


@cache
def imports(module: str) -> tuple[Import, ...]:
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node, function in _walk(ast.parse(path.read_text()), None):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                found.append(Import(target, getattr(node, "lineno", 0), function))
    return tuple(found)


def _app(module: str) -> str:
    return "mifumo.api" if module.startswith("mifumo.api") else module.partition(".")[0]


def test_no_app_module_is_longer_than_the_limit() -> None:
    long = {
        name: length
        for name, path in modules().items()
        if (length := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_api_base_layer_imports_no_app() -> None:
    wrong = [
        f"{module}:{imp.line} imports {imp.target}"
        for module in modules()
        if _app(module) == "mifumo.api"
        for imp in imports(module)
        if not imp.target.startswith("mifumo.")
    ]
    assert wrong == []


def test_no_app_imports_the_dashboard() -> None:
    wrong = [
        f"{module}:{imp.line} imports {imp.target}"
        for module in modules()
        if _app(module) != "dashboard" and module not in WIRING
        for imp in imports(module)
        if _app(imp.target) == "dashboard"
    ]
    assert wrong == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_cycle_finder_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_modules() -> None:
    graph = {module: {imp.target for imp in imports(module)} for module in modules()}
    # A package's __init__ is imported with each of its modules; that edge is Python's, not
    # a design choice.
    for module in graph:
        graph[module] -= {m for m in graph[module] if module.startswith(m + ".")}
    assert _cycles(graph) == []


def test_project_modules_are_imported_inside_functions_only_in_ready() -> None:
    wrong = [
        f"{module}:{imp.line} imports {imp.target} inside {imp.in_function}()"
        for module in modules()
        for imp in imports(module)
        if imp.in_function not in (None, "ready")
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from sms.models import Message\n", [Import("sms.models", 1, None)]),
        ("def f():\n    from sms import tasks\n", [Import("sms.tasks", 2, "f")]),
        ("import json\n", []),
    ],
)
def test_imports_are_read_at_top_level_and_in_functions(
    source: str, expected: list[Import], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "probe.py"
    path.write_text(source)
    fake = {**modules(), "sms.probe": path}
    monkeypatch.setattr("tests.test_architecture.modules", lambda: fake, raising=True)
    imports.cache_clear()
    try:
        assert list(imports("sms.probe")) == expected
    finally:
        imports.cache_clear()
