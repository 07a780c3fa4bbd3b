"""The house's import rules, read from the source with ``ast`` (every import, at module level or inside a
function): no import cycle between modules, and the layers point one way: compiler imports neither training nor
deploy, training does not import deploy, and only deploy/cli/ imports deploy/cli/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"compiler": "loihic.compiler", "training": "loihic.training", "deploy": "loihic.deploy", "loihic": "loihic"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The loihic modules that ``name`` imports (``from P import m`` counts as P.m where that is a module)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: ``from . import m`` / ``from ..x import m``
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return {m for m in out if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_graph_sees_the_house() -> None:
    graph = _graph()
    assert "loihic.compiler.driver" in graph and "loihic.deploy.cli.main" in graph
    assert "loihic.compiler.driver" in graph["loihic.training.deployment"]  # the parser resolves imports


def test_no_import_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_layers_point_one_way() -> None:
    bad = []
    for m, deps in _graph().items():
        for d in deps:
            if m.startswith("loihic.compiler.") and d.startswith(("loihic.training", "loihic.deploy")):
                bad.append(f"{m} -> {d}")
            if m.startswith("loihic.training.") and d.startswith("loihic.deploy"):
                bad.append(f"{m} -> {d}")
            if d.startswith("loihic.deploy.cli") and not m.startswith(("loihic.deploy.cli", "loihic.__main__")):
                bad.append(f"{m} -> {d} (only the CLI imports the CLI)")
    assert not bad, "\n".join(sorted(bad))


def test_every_module_imports() -> None:
    """A moved or renamed name breaks an import somewhere; every module is imported here (Lava's process folder
    and ``__main__`` aside: the former loads only after lava/compat.py, the latter runs the CLI)."""
    import importlib

    failed = []
    for name in sorted(_modules()):
        if ".lavaproc" in name or name.endswith("__main__"):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - every failure is reported by name
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not failed, "\n".join(failed)
