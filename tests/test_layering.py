"""The package's layers only point down (CONTRIBUTING.md, "Layers").

core -> registry/configs -> backends (torch/, keras/) -> deploy/io -> api/pipeline/cli; book helpers
apart. Imports are read with ``ast`` from the source (imports inside functions included), so a lazy
import counts like a top-level one: it is the same dependency, only paid later.
"""
from __future__ import annotations

import ast
import pathlib
from typing import Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "compresslib"

# the backends may not import these (nor anything inside them)
ABOVE_BACKENDS = ("compresslib.io", "compresslib.deploy", "compresslib.twin",
                  "compresslib.api", "compresslib.pipeline", "compresslib.cli")
BACKENDS = ("compresslib.torch", "compresslib.keras")


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str:
    """The module of ``compresslib`` that ``name`` (a module or a name inside one) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports(module: str) -> Iterator[tuple[str, str, int]]:
    """``(imported module, imported name or "", line)`` for every import of ``compresslib`` in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("compresslib"):
                    yield _resolve(alias.name), "", node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not (source == "compresslib" or source.startswith("compresslib.")):
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if full in MODULES:        # `from compresslib.core import packing`: a module
                    yield full, "", node.lineno
                else:                      # `from compresslib.core.packing import pack`: a name
                    yield _resolve(source), alias.name, node.lineno


def graph() -> dict[str, set[str]]:
    """``{module: modules of compresslib it imports}`` (the package ``compresslib`` itself left out:
    its ``__init__`` only names lazy attributes)."""
    return {m: {dep for dep, _, _ in imports(m) if dep not in (m, "compresslib")} for m in MODULES}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other (strongly connected components of more than one)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_graph_is_read():
    edges = graph()
    assert "compresslib.registry" in edges["compresslib.api"]                 # a top-level import
    assert "compresslib.io" in edges["compresslib.api"]                       # one inside a function
    assert "compresslib.core.quant" in edges["compresslib.torch.layers"]      # `from compresslib.core import quant`
    assert all(dep in MODULES for deps in edges.values() for dep in deps)


def test_cycles_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(graph())
    assert found == [], "import cycles inside compresslib: " + "; ".join(" <-> ".join(g) for g in found)


def test_core_imports_only_core():
    bad = [f"{m}:{line} imports {dep}" for m in MODULES if _within(m, ("compresslib.core",))
           for dep, _, line in imports(m) if not _within(dep, ("compresslib.core",))]
    assert bad == []


def test_backends_never_import_upward():
    bad = [f"{m}:{line} imports {dep}" for m in MODULES if _within(m, BACKENDS)
           for dep, _, line in imports(m) if _within(dep, ABOVE_BACKENDS)]
    assert bad == []


def test_no_private_name_crosses_a_module():
    """``from compresslib.x import _name`` is private to ``x``. Dunders are fine, and so is
    ``compresslib._dispatch`` itself: a module private to the package (its public names are for
    compresslib's own modules, not users)."""
    bad = [f"{m}:{line} imports {dep}.{name}" for m in MODULES for dep, name, line in imports(m)
           if name.startswith("_") and not name.startswith("__")]
    assert bad == []


def test_no_private_attribute_of_another_module():
    """``module._name`` read from another compresslib module (``packing._short(...)``)."""
    bad = []
    for m, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("compresslib"):
                for a in node.names:
                    if f"{node.module}.{a.name}" in MODULES:
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("compresslib") and a.asname:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and aliases[node.value.id] != m):
                bad.append(f"{m}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert bad == []


@pytest.mark.parametrize("rule", ["cycles", "core", "backends", "private"])
def test_the_rules_catch_a_violation(rule, tmp_path):
    """Each rule fails on a made-up module that breaks it (so the tests above can fail)."""
    if rule == "cycles":
        assert cycles({"compresslib.api": {"compresslib.pipeline"}, "compresslib.pipeline": {"compresslib.api"}})
    elif rule == "core":
        assert not _within("compresslib.report", ("compresslib.core",))
    elif rule == "backends":
        assert _within("compresslib.deploy.runtime", ABOVE_BACKENDS)
        assert not _within("compresslib.iox", ABOVE_BACKENDS)
    else:
        path = PACKAGE / "core" / "_layering_probe.py"
        MODULES["compresslib.core._layering_probe"] = tmp_path / "probe.py"
        (tmp_path / "probe.py").write_text("def f():\n    from compresslib.core.packing import _x\n")
        try:
            assert list(imports("compresslib.core._layering_probe")) == [("compresslib.core.packing", "_x", 2)]
        finally:
            del MODULES["compresslib.core._layering_probe"]
        assert not path.exists()


def test_case_studies_stand_apart():
    """Book case studies build on the library; the library never imports them."""
    bad = [f"{m}:{line} imports {dep}" for m in MODULES if not _within(m, ("compresslib.casestudies",))
           for dep, _, line in imports(m) if _within(dep, ("compresslib.casestudies",))]
    assert bad == []
    assert "compresslib.api" in graph()["compresslib.casestudies.minilm"]  # SmoothQuant through cl.transform
