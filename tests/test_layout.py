"""The package's parts and the one direction its imports flow in.

commands -> daemon -> tools -> control -> engine -> core; control -> model -> core;
training -> model -> core. The daemon takes only the training side's job launcher and options
(the job runs torch in its own process); nothing in the package imports the benchmarks (the
tests reuse their harness). Lazy imports (inside functions) count the same as those at the top
of a module, so an arrow against the direction cannot hide in a function body.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rvaed"

# part -> the parts it may import (besides itself)
ALLOWED = {
    "core": set(),
    "model": {"core"},
    "engine": {"core"},
    "training": {"model", "core"},
    "control": {"engine", "model", "core"},
    "tools": {"control", "engine", "model", "core"},
    "daemon": {"tools", "control", "engine", "model", "core",
               "training.job", "training.options"},
    "commands": {"daemon", "tools", "control", "engine", "model", "core", "training"},
    "benchmarks": {"daemon", "tools", "control", "engine", "model", "core", "training"},
    "cli": {"core"},
    "__init__": set(),
}
PARTS = {"core", "model", "engine", "training", "control", "tools", "daemon", "commands",
         "benchmarks"}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, lazy) for every import in a file, lazy ones included."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.extend((name, node.lineno, id(node) not in top) for name in names)
    return found


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The package module an imported name refers to (longest known prefix), if any."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def part_of(module: str) -> str:
    """rvaed.daemon.service -> daemon; rvaed.cli -> cli; rvaed -> __init__."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    known = modules()
    return {module: {target for name, _line, _lazy in imports_of(path)
                     if (target := resolve(name, known)) and target != module}
            for module, path in known.items()}


def allowed(source: str, target: str) -> bool:
    src, dst = part_of(source), part_of(target)
    if src == dst or dst == "__init__":
        return True
    rules = ALLOWED[src]
    return dst in rules or ".".join(target.split(".")[1:3]) in rules


def test_every_module_belongs_to_a_known_part():
    unknown = {m for m in modules() if part_of(m) not in PARTS | {"cli", "__init__"}}
    assert not unknown, f"modules outside the parts: {sorted(unknown)}"


def test_imports_flow_one_way():
    against = [f"{source} imports {target}"
               for source, targets in graph().items() for target in sorted(targets)
               if not allowed(source, target)]
    assert not against, "imports against the direction:\n" + "\n".join(against)


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*trail[trail.index(target):], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_an_arrow_against_the_direction(tmp_path):
    """A core module importing the daemon, lazily, is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from rvaed.daemon.service import Daemon\n")
    (name, _line, lazy), *_ = imports_of(bad)
    target = resolve(name, modules())
    assert lazy and target == "rvaed.daemon.service"
    assert not allowed("rvaed.core.bad", target)


@pytest.mark.parametrize("forbidden", ["torch", "onnx"])
def test_the_daemon_never_loads_the_training_side(forbidden):
    """Importing the daemon (and everything it imports at start) loads neither torch nor
    onnx; onnx is read on demand only when a model is bent."""
    probe = (f"import sys, rvaed.daemon.service, rvaed.commands.run; "
             f"sys.exit({forbidden!r} in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe]).returncode == 0, \
        f"{forbidden} is in the daemon's import closure"
