"""The shape of the code, read from its imports (``ast``, nothing imported): one way down the stages, no cycles,
no TensorFlow on the ``--help`` path, no module over ~400 lines.

docs/architecture.md draws the same stages; a failure names the offending import (file:line).
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cnnctl"

# The stages, lowest first: a module may import its own stage and the stages before it, never one after it.
# A module belongs to the stage of the longest prefix that names it.
STAGES = [
    ("base", ("cnnctl._version", "cnnctl.errors", "cnnctl.tables", "cnnctl._tfimport", "cnnctl.registry",
              "cnnctl.filekinds", "cnnctl.pictures")),
    ("recipe", ("cnnctl.recipe",)),
    ("run", ("cnnctl.run",)),
    ("model", ("cnnctl.model",)),
    ("data", ("cnnctl.data",)),
    ("serving", ("cnnctl.serving",)),
    ("exports", ("cnnctl.exports",)),
    ("tensorboard", ("cnnctl.tensorboard",)),
    ("training", ("cnnctl.training",)),
    ("api", ("cnnctl", "cnnctl.api")),
    ("cli", ("cnnctl.cli", "cnnctl.__main__")),
]
HEAVY = ("tensorflow", "keras", "tensorboard", "onnx", "onnxruntime", "tf2onnx", "sklearn", "PIL")
MAX_LINES = 420  # "about 400"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def stage_of(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"{module} belongs to no stage: add it to STAGES (and docs/architecture.md)"
    return rank


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(module: str, *, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) for every import of ``module`` outside ``if TYPE_CHECKING:``; with
    ``top_level_only``, only those that run when the module is imported (not inside a function)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or _type_checking_only(node, parents):
            continue
        if top_level_only and any(isinstance(p, ast.FunctionDef | ast.AsyncFunctionDef)
                                  for p in _ancestors(node, parents)):
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif node.level:  # relative imports are not used in cnnctl; say so if one appears
            pytest.fail(f"{MODULES[module]}:{node.lineno}: a relative import; cnnctl imports absolutely")
        else:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub if sub in MODULES else node.module, node.lineno))
    return found


def _ancestors(node: ast.AST, parents: dict):
    while node in parents:
        node = parents[node]
        yield node


def internal_edges() -> dict[str, list[tuple[str, int]]]:
    return {m: [(t, line) for t, line in imports(m) if t in MODULES and t != m] for m in MODULES}


def test_every_stage_imports_only_the_stages_below_it():
    wrong = []
    for module, targets in internal_edges().items():
        for target, line in targets:
            if stage_of(target) > stage_of(module):
                wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}: {module} "
                             f"({STAGES[stage_of(module)][0]}) imports {target} ({STAGES[stage_of(target)][0]}), "
                             "a stage above it")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_back_through_others():
    edges = internal_edges()
    cycles, done, path = [], set(), []

    def visit(module: str) -> None:
        if module in path:
            loop = [*path[path.index(module):], module]
            cycles.append(" -> ".join(f"{a} (line {_line(edges, a, b)})" for a, b in itertools.pairwise(loop))
                          + f" -> {module}")
            return
        if module in done:
            return
        path.append(module)
        for target, _ in edges[module]:
            if not (module.startswith(target + ".") and MODULES[target].name == "__init__.py"):
                visit(target)  # a module importing its own package's __init__ is how Python imports it anyway
        path.pop()
        done.add(module)

    for module in MODULES:
        visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _line(edges: dict, a: str, b: str) -> int:
    return next(line for target, line in edges[a] if target == b)


def test_help_reaches_no_heavy_library():
    """What ``cnnctl --help`` imports: the CLI's module-level imports, followed through cnnctl, plus the modules the
    registries load when the CLI lists the export formats (a registry imports its built-ins by name)."""
    from cnnctl.registry import FORMATS, SOURCES

    dynamic = {m for m in MODULES for registry in (FORMATS, SOURCES) if m.startswith(registry.builtins)}
    reached, todo, via = set(), ["cnnctl.cli", "cnnctl", *dynamic], {}
    heavy = []
    while todo:
        module = todo.pop()
        if module in reached:
            continue
        reached.add(module)
        for name in _enclosing_packages(module):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            if name not in reached:
                todo.append(name)
        for target, line in imports(module, top_level_only=True):
            root = target.split(".")[0]
            if target in MODULES:
                via.setdefault(target, f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}")
                todo.append(target)
            elif root in HEAVY:
                heavy.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}: {module} imports {target} "
                             f"(reached from {via.get(module, 'cnnctl.cli')})")
    assert not heavy, "\n".join(heavy)


def _enclosing_packages(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in MODULES]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_short(module):
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module]}: {lines} lines; split it by what its parts are about"


def test_the_stages_cover_every_module_and_the_architecture_page_names_them():
    for module in MODULES:
        stage_of(module)
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name, prefixes in STAGES:
        for prefix in prefixes:
            if prefix != "cnnctl":
                assert f"`{prefix.removeprefix('cnnctl.').replace('.', '/')}" in page, (name, prefix)
