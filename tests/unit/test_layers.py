"""The layering of builder, read from its source with `ast` (nothing is imported):

- builder.core is the bottom layer: it imports nothing of builder outside itself;
- only builder.core.proc starts processes, so every child is journalled or said not to need it;
- no module imports another's private (`_x`) name, nor reaches one through a module it imported;
- the import graph has no cycles. Imports inside functions count too: a lazy import defers a
  cycle to run time, it does not remove it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "builder"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


MODULES = _modules()


def _base(module: str, f: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if f.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, str | None, ast.AST]]:
    """(imported module, name taken from it or None, node) for every builder import of `module`."""
    f = MODULES[module]
    out: list[tuple[str, str | None, ast.AST]] = []
    for node in ast.walk(ast.parse(f.read_text(), str(f))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node) for a in node.names if a.name.split(".")[0] == "builder"]
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, f, node)
            if base.split(".")[0] != "builder":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub, None, node) if sub in MODULES else (base, a.name, node))
    return out


def _where(module: str, node: ast.AST) -> str:
    return f"{MODULES[module].relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', '?')}"


def test_core_imports_nothing_above_it():
    core = [m for m in MODULES if m.startswith("builder.core.")]
    assert {"builder.core.results", "builder.core.digests", "builder.core.proc", "builder.core.runs"} <= set(core)
    bad = [f"{_where(m, n)} imports {t}" for m in core for t, _, n in _imports(m)
           if t != "builder.core" and not t.startswith("builder.core.")]
    assert not bad, "\n".join(bad)


SPAWNERS = {"subprocess": {"run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"},
            "os": {"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", *(
                f"{f}{s}" for f in ("exec", "spawn") for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe"))}}


def test_only_core_proc_starts_processes():
    """Types and exceptions of subprocess may be used anywhere; starting a process only in core.proc."""
    bad = []
    for m, f in MODULES.items():
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom) and node.module in SPAWNERS:
                bad += [f"{_where(m, node)} imports {node.module}.{a.name}" for a in node.names
                        if a.name in SPAWNERS[node.module]]
            elif (isinstance(node, ast.Call) and isinstance(fn := node.func, ast.Attribute)
                  and isinstance(fn.value, ast.Name) and fn.attr in SPAWNERS.get(fn.value.id, ())
                  and m != "builder.core.proc"):
                bad.append(f"{_where(m, node)} calls {fn.value.id}.{fn.attr}")
    assert not bad, "\n".join(bad)


def _module_names(module: str) -> dict[str, str]:
    """Local names bound to a builder module by `module`'s imports (`from . import runs`)."""
    out = {}
    for target, name, node in _imports(module):
        if name is None and isinstance(node, ast.ImportFrom):
            out.update({a.asname or a.name: target for a in node.names if a.name == target.rsplit(".", 1)[-1]})
        elif name is None and isinstance(node, ast.Import):
            out.update({a.asname: target for a in node.names if a.name == target and a.asname})
    return out


def test_no_private_name_crosses_a_module():
    bad = [f"{_where(m, n)} imports {name} from {t}"
           for m in MODULES for t, name, n in _imports(m) if name is not None and name.startswith("_")]
    for m, f in MODULES.items():
        names = _module_names(m)
        bad += [f"{_where(m, node)} reaches {node.value.id}.{node.attr}"
                for node in ast.walk(ast.parse(f.read_text(), str(f)))
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names
                and node.attr.startswith("_") and not node.attr.startswith("__")]
    assert not bad, "\n".join(bad)


def test_import_graph_has_no_cycles():
    graph = {m: sorted({t for t, _, _ in _imports(m) if t in MODULES and t != m}) for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in graph[m]:
            if state.get(t) == 1:
                cycles.append(path[path.index(t):] + [m, t])
            elif t not in state:
                visit(t, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
