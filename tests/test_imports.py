"""The import graph of the packages, read from their source with ``ast`` (nothing is imported).

1. No cycle between modules. Every import statement counts: at module level, inside a function
   (a lazy import that only dodges a cycle is still an edge), under ``if TYPE_CHECKING``.
   ``from .x import name`` is an edge to module ``x`` (and to ``x.name`` when that is a submodule);
   ``from . import x`` an edge to the submodule ``x`` (not to the package ``__init__``);
   ``import a.b`` an edge to ``a.b``.
2. No module imports an underscore-prefixed name of another module (``from .x import _helper``):
   a helper shared between modules is a public, documented name of its owner.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("opo_toolkit", "tabular", "llm", "figures", "proofs_check")


def module_files(root: Path, packages) -> dict[str, tuple[Path, bool]]:
    """``{dotted module name: (file, is a package __init__)}`` of every .py file of ``packages``."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            modules[".".join(parts)] = (path, is_package)
    return modules


def _from_target(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module name a ``from ... import`` statement reads from."""
    if node.level == 0:
        return node.module
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str, modules) -> str | None:
    """``name``, or its longest prefix, that is one of ``modules``; None outside the packages."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path, packages=PACKAGES):
    """``(edges, private)``: ``edges[module]`` the set of modules it imports (within ``packages``);
    ``private`` a list of ``(module, line, source module, name)``, one per underscore-prefixed name
    imported from another module."""
    modules = module_files(root, packages)
    edges = {m: set() for m in modules}
    private = []
    for module, (path, is_package) in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _known(alias.name, modules)
                    if target:
                        edges[module].add(target)
            elif isinstance(node, ast.ImportFrom):
                source = _from_target(module, is_package, node)
                if _known(source, modules) is None:
                    continue  # another package (numpy, torch, ...)
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if submodule in modules:  # a module, not a name defined in ``source``
                        edges[module].add(submodule)
                        if node.module is not None:  # from .x import y: x runs too
                            edges[module].add(_known(source, modules))
                        continue
                    edges[module].add(_known(source, modules))
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append((module, node.lineno, source, alias.name))
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of the graph with more than one module, or one module that
    imports itself (each a sorted list): exactly the modules that lie on an import cycle."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = iter(range(len(edges) + 1))

    def visit(v):  # Tarjan's algorithm (the graph has ~100 modules: recursion is fine)
        index[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def describe(component: list[str], edges) -> str:
    """One line per module of a cycle: the modules of the cycle it imports."""
    return "; ".join(f"{m} -> {', '.join(sorted(edges[m] & set(component)))}" for m in component)


def test_the_packages_have_no_import_cycle():
    edges, _ = import_graph(ROOT)
    assert len(edges) > 50 and sum(map(len, edges.values())) > 100  # the source was read
    found = cycles(edges)
    assert not found, "import cycles (module -> the modules of its cycle it imports): " + " | ".join(
        f"[{', '.join(c)}]: {describe(c, edges)}" for c in found)


def test_tabular_imports_nothing_that_builds_on_it():
    """``tabular`` is the core: ``llm``, ``proofs_check`` and ``figures`` build on it, never the
    reverse; it may use the toolkit (``opo_toolkit``), which imports none of the others."""
    edges, _ = import_graph(ROOT)
    layers = {"opo_toolkit": {"opo_toolkit"}, "tabular": {"opo_toolkit", "tabular"}}
    for package, allowed in layers.items():
        modules = [m for m in edges if m.split(".")[0] == package]
        assert len(modules) >= 6, package
        upward = {m: sorted(t for t in edges[m] if t.split(".")[0] not in allowed) for m in modules}
        assert not any(upward.values()), {m: t for m, t in upward.items() if t}


def test_no_module_imports_another_modules_private_name():
    _, private = import_graph(ROOT)
    assert not private, "private names imported from another module: " + "; ".join(
        f"{m}:{line} imports {name} from {source}" for m, line, source, name in private)


def _write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_checks_find_a_planted_cycle_and_a_planted_private_import(tmp_path):
    _write_package(tmp_path, {
        "pkg/__init__.py": "from .cli import main\n",
        "pkg/cli.py": "from . import helpers\n\ndef main():\n    return helpers\n",  # not a cycle
        "pkg/helpers.py": "import os\n",
        "pkg/a.py": "def f():\n    from .b import g  # lazy: still an edge\n    return g\n",
        "pkg/b.py": """\
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from pkg.c import C  # still an edge
            def g():
                pass
            """,
        "pkg/c.py": "from .a import f\nfrom .helpers import _hidden, __doc__\nC = f\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/d.py": "from ..helpers import os\nfrom .. import helpers\n",
    })
    edges, private = import_graph(tmp_path, ("pkg",))
    assert edges["pkg"] == {"pkg.cli"} and edges["pkg.cli"] == {"pkg.helpers"}
    assert edges["pkg.sub.d"] == {"pkg.helpers"}
    assert cycles(edges) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert describe(["pkg.a", "pkg.b", "pkg.c"], edges) == "pkg.a -> pkg.b; pkg.b -> pkg.c; pkg.c -> pkg.a"
    assert private == [("pkg.c", 2, "pkg.helpers", "_hidden")]
    # a module that imports itself is a cycle too; removing the lazy import breaks the planted one
    assert cycles({"m": {"m"}}) == [["m"]]
    (tmp_path / "pkg/a.py").write_text("def f():\n    pass\n")
    assert cycles(import_graph(tmp_path, ("pkg",))[0]) == []
