"""The layout's two rules, checked on every change: no source file over 500 lines, and no import circle among the
package's modules (imports inside functions count too: a circle hidden in a function is still one)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO_DIR / "speedrun"
MAX_LINES = 500


def test_no_source_file_is_over_500_lines():
    files = [p for folder in ("speedrun", "tests", "benchmarks", "scripts") for p in (REPO_DIR / folder).rglob("*.py")]
    long = {str(p.relative_to(REPO_DIR)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert len(files) > 50 and long == {}


def module_imports() -> dict[str, set[str]]:
    """Each package module -> the package modules it imports (`from speedrun.x import name` names module x, or
    module x.name where that is one)."""
    modules = {".".join(p.relative_to(REPO_DIR).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE_DIR.rglob("*.py")}

    def module_of(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("speedrun"):
                targets = [module_of(f"{node.module}.{alias.name}") for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [module_of(alias.name) for alias in node.names if alias.name.startswith("speedrun")]
            else:
                continue
            graph[name] |= {t for t in targets if t and t != name}
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (its modules in order, the first again at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = "open"
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        path.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_circle_among_the_package_modules():
    graph = module_imports()
    assert "speedrun.data.documents" in graph["speedrun.data.tokenize"]  # the graph sees imports
    assert "speedrun.model.gpt" in graph["speedrun.launch"]  # ... also those inside functions
    assert find_circle(graph) is None, " -> ".join(find_circle(graph))


def test_the_circle_finder_finds_one():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
