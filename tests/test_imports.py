"""The house's structure: imports between the top-level packages ("pillars") of `src/ailab`.

Every `import` counts, wherever it is written: at module level, inside a function (a lazy import is still a
dependency) or under `if TYPE_CHECKING:`. The test fails on a cycle between pillars, on an import that breaks
a layering rule, and on a reach past a pillar's door. Type-only imports (under `if TYPE_CHECKING:`) count for
the layering rules and the doors but not for cycles: they never run, so they cannot close an import circle,
and a view typed against the state that mounts it (the console against the server's `LabState`) is the one
place they point back up; the printout lists them apart.

`python tests/test_imports.py` (or `python -m tests.test_imports`) prints the pillar graph, its cycles and
every breach, with the import lines that make them.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "ailab"

# Layering: these pillars sit below the request path and the composition root, so they import none of it.
LOW = ("ledger", "secrets", "config", "db")
HIGH = ("gateway", "knowledge", "server", "cli")
# The shared leaves (`ailab/types.py`, `ailab/text.py`) import no pillar at all.
LEAVES = ("types", "text", "doors")

# One door per pillar: another pillar imports `ailab.<pillar>` (its `__init__`), never a module inside it.
# The pillars whose door is enforced; the others are still on the way there.
DOORS = (
    "ledger",
    "secrets",
    "db",
    "types",
    "limits",
    "observability",
    "access",
    "gateway",
    "stack",
    "knowledge",
    "config",
    "apps",
    "ops",
)
# A pillar's second door: a sub-package others may import as a whole (its `__init__` says what it offers).
SUB_DOORS = frozenset({f"{ROOT}.access.sso"})
# Deliberate reaches past a door: (importing module, imported module) -> why.
DEEP_ALLOWED: dict[tuple[str, str], str] = {}
# Imports left out of the cycle check until the change that removes them lands: (module, imported) -> why.
PENDING: dict[tuple[str, str], str] = {
    # Issue 15.1 (engineer `plugins`): the local embedder registers as a provider entry point instead.
    ("ailab.gateway.providers.registry", "ailab.knowledge.local_provider"): "plugins registers it",
}


@dataclass(frozen=True)
class Edge:
    """One import of a module of pillar `dst` written in a module of pillar `src`."""

    src: str
    dst: str
    module: str  # the importing module
    target: str  # the imported module, as precisely as the source tree resolves it
    line: int
    text: str
    typing_only: bool = False  # under `if TYPE_CHECKING:`

    def where(self) -> str:
        path = self.module.replace(".", "/")
        return f"{path}:{self.line}: {self.text}"


def module_names(src: Path = SRC) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out: dict[str, Path] = {}
    for path in sorted((src / ROOT).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def pillar(module: str) -> str:
    """`ailab.gateway.api` -> `gateway`; `ailab.types` -> `types`; `ailab` itself -> `ailab`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def exported(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each package's `__all__`: a submodule named there (e.g. `ailab.ledger.schema`) is part of its door."""
    out: dict[str, set[str]] = {}
    for name, path in modules.items():
        if not _is_package(path):
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                out[name] = set(ast.literal_eval(node.value))
    return out


def _imported(
    node: ast.Import | ast.ImportFrom, module: str, path: Path, known: set[str], doors: dict[str, set[str]]
) -> Iterator[str]:
    """The modules one import statement loads, resolved against the source tree (a name a package's
    `__all__` exports resolves to the package, even when it is a submodule)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = node.module or ""
    if node.level:
        here = module.split(".") if _is_package(path) else module.split(".")[:-1]
        anchor = here[: len(here) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    door = doors.get(base, set())
    targets = {
        f"{base}.{a.name}" if f"{base}.{a.name}" in known and a.name not in door else base for a in node.names
    }
    yield from sorted(targets)


def _type_checking_imports(tree: ast.Module) -> set[int]:
    """ids of the import nodes under an `if TYPE_CHECKING:` block."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                out.update(
                    id(n)
                    for b in node.body
                    for n in ast.walk(b)
                    if isinstance(n, ast.Import | ast.ImportFrom)
                )
    return out


def edges(src: Path = SRC) -> list[Edge]:
    """Every import from one pillar's module into another pillar."""
    modules = module_names(src)
    known = set(modules)
    doors = exported(modules)
    out: list[Edge] = []
    for module, path in modules.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        tree = ast.parse(source, filename=str(path))
        typing_only = _type_checking_imports(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _imported(node, module, path, known, doors):
                if target != ROOT and not target.startswith(ROOT + "."):
                    continue
                a, b = pillar(module), pillar(target)
                if a != b:
                    text = lines[node.lineno - 1].strip()
                    out.append(Edge(a, b, module, target, node.lineno, text, id(node) in typing_only))
    return out


def runtime(all_edges: list[Edge]) -> list[Edge]:
    """The imports that run (module level or lazy), less the pending ones: what can close a circle."""
    return [e for e in all_edges if not e.typing_only and (e.module, e.target) not in PENDING]


def graph(all_edges: list[Edge]) -> dict[str, set[str]]:
    g: dict[str, set[str]] = defaultdict(set)
    for e in all_edges:
        g[e.src].add(e.dst)
    return g


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one pillar (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(set(g) | {w for ws in g.values() for w in ws}):
        if v not in index:
            visit(v)
    return sorted(found)


def mutual_pairs(g: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of pillars that import each other (the shortest cycles)."""
    return sorted((a, b) for a in g for b in g[a] if a < b and a in g.get(b, ()))


def cycle_report(all_edges: list[Edge]) -> list[str]:
    """Each cycle (a strongly connected set of pillars) with the import lines inside it."""
    out: list[str] = []
    g = graph(all_edges)
    for comp in cycles(g):
        members = set(comp)
        out.append("cycle: " + ", ".join(comp))
        pairs = [f"{a}<->{b}" for a, b in mutual_pairs(g) if a in members]
        if pairs:
            out.append("  pillars importing each other: " + " ".join(pairs))
        for e in sorted(all_edges, key=lambda e: (e.src, e.dst, e.module, e.line)):
            if e.src in members and e.dst in members:
                out.append(f"  {e.src} -> {e.dst}  {e.where()}")
    return out


def layer_breaches(all_edges: list[Edge]) -> list[str]:
    out = []
    for e in all_edges:
        if e.src in LOW and e.dst in HIGH:
            out.append(f"{e.src} must not import {e.dst}: {e.where()}")
        if e.src in LEAVES:
            out.append(f"{e.src} is a leaf and imports no pillar: {e.where()}")
    return out


def door_breaches(all_edges: list[Edge]) -> list[str]:
    out = []
    for e in all_edges:
        door = f"{ROOT}.{e.dst}"
        if (
            e.dst in DOORS
            and e.target != door
            and e.target not in SUB_DOORS
            and (e.module, e.target) not in DEEP_ALLOWED
        ):
            out.append(f"{e.src} reaches past {door}'s door to {e.target}: {e.where()}")
    return out


def test_no_cycle_between_pillars() -> None:
    report = cycle_report(runtime(edges()))
    assert not report, "import cycles between pillars:\n" + "\n".join(report)


def test_low_pillars_import_nothing_above_them() -> None:
    report = layer_breaches(edges())
    assert not report, "layering breaches:\n" + "\n".join(report)


def test_pillars_import_each_other_through_their_doors() -> None:
    report = door_breaches(edges())
    assert not report, "imports past a pillar's door:\n" + "\n".join(report)


def test_deep_allowlist_is_current() -> None:
    """Every allowlisted deep import still exists, so the list cannot rot."""
    present = {(e.module, e.target) for e in edges()}
    stale = [f"{m} -> {t}" for (m, t) in DEEP_ALLOWED if (m, t) not in present]
    assert not stale, "stale DEEP_ALLOWED entries:\n" + "\n".join(stale)


def main() -> int:
    all_edges = edges()
    g = graph(all_edges)
    print("pillar graph (pillar -> pillars it imports):")
    for p in sorted(set(g) | {w for ws in g.values() for w in ws}):
        print(f"  {p:14} -> {', '.join(sorted(g.get(p, ()))) or '-'}")
    run = runtime(all_edges)
    up = graph(run)
    kept = set(run)
    back = [e for e in all_edges if e not in kept and e.src in up.get(e.dst, set())]
    sections = (
        ("cycles (imports that run)", cycle_report(run)),
        ("layering breaches", layer_breaches(all_edges)),
        ("door breaches", door_breaches(all_edges)),
    )
    for title, lines in sections:
        print(f"\n{title}: {sum(not line.startswith(' ') for line in lines)}")
        for line in lines:
            print(f"  {line}")
    print(f"\ntype-only or pending imports against the runtime direction (not a cycle): {len(back)}")
    for e in back:
        print(f"  {e.src} -> {e.dst}  {e.where()}{'' if e.typing_only else '  [pending]'}")
    return 1 if any(lines for _, lines in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
