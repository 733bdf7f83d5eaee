"""The package's shape: imports point one way, and starting the command line does not load PyTorch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import object2vec

PACKAGE = Path(object2vec.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path) -> set[str]:
    """Modules of this package that ``path`` imports when it is imported (not inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, ast.FunctionDef | ast.ClassDef) else ():
            if isinstance(sub, ast.ImportFrom):
                if sub.level:
                    base = package.split(".")
                    base = base[: len(base) - sub.level + 1]
                    target = ".".join([*base, sub.module] if sub.module else base)
                else:
                    target = sub.module or ""
                if target.startswith("object2vec"):
                    for alias in sub.names:
                        candidate = f"{target}.{alias.name}"
                        found.add(candidate if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists()
                                  or (PACKAGE.parent / candidate.replace(".", "/") / "__init__.py").exists() else target)  # fmt: skip
            elif isinstance(sub, ast.Import):
                found.update(a.name for a in sub.names if a.name.startswith("object2vec"))
    return found - {name}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _top_level_imports(p) for p in PACKAGE.rglob("*.py")}


def test_the_package_has_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_command_modules_import_only_the_shared_base_from_cli():
    graph = _graph()
    for module, imports in graph.items():
        if module.startswith("object2vec.cli.") and module != "object2vec.cli.base":
            assert {i for i in imports if i.startswith("object2vec.cli")} <= {"object2vec.cli.base"}, module


def test_lower_layers_do_not_import_higher_ones():
    order = ["cli", "tuning", "serving", "retrieval", "estimator", "training", "nn", "text", "data"]
    graph = _graph()
    for module, imports in graph.items():
        layer = module.split(".")[1] if "." in module else ""
        if layer not in order:
            continue
        for target in imports:
            other = target.split(".")[1] if target.count(".") else ""
            if other in order:
                assert order.index(other) >= order.index(layer), f"{module} imports {target}"


def test_the_command_line_starts_without_pytorch():
    code = "import sys, object2vec.cli, object2vec; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_names_load_on_first_use():
    assert object2vec.Object2Vec.__name__ == "Object2Vec"
    assert "read_pairs" in dir(object2vec)
