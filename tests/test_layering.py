"""Layering: the pure core never imports the runtime, directly or transitively.

DESIGN.md: a pure core (state, actions, reducer, selectors: stdlib + attrs only), a
sans-I/O protocol layer, and a runtime shell, the only place that does I/O or
imports asyncio, websockets or reactivex. This test reads the source of every
module under ``chats_store/`` with :mod:`ast` (nothing is imported, so it is fast
and cannot be fooled by import order) and follows imports between ``chats_store``
modules, so a pure module that imports a runtime module fails as well.

Every import counts: at module level, inside functions, and under
``if TYPE_CHECKING:`` (the pure layer must not even name runtime types), as well
as ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name.
Importing ``chats_store.a.b`` also runs ``chats_store/a/__init__.py``, so subpackage
``__init__`` files count as dependencies of their modules; the top-level
``chats_store/__init__.py`` is the public runtime API and is excluded from that
implicit edge (it is a runtime module itself).
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = "chats_store"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# The runtime shell: the only modules allowed to import what FORBIDDEN lists.
# Exact module names, and package prefixes (everything below them).
RUNTIME_MODULES = frozenset(
    {
        "chats_store",  # chats_store/__init__.py: the public API, imports the facade
        "chats_store.core.affinity",
        "chats_store.core.store",
        "chats_store.chats.transport",
        "chats_store.chats.effects",
        "chats_store.chats.facade",
        "chats_store.chats.derived",  # getters built on the store
        "chats_store.chats.action_log",  # writes and reads files
        "chats_store.cli",
        "chats_store.demo",
        "chats_store.tui",
    }
)
RUNTIME_PACKAGES = frozenset(
    {
        "chats_store.gui",
        "chats_store.testing",
        "chats_store.server",
        "chats_store.websocket",
    }
)

# Top-level names the pure layer must never import.
FORBIDDEN = frozenset({"asyncio", "websockets", "reactivex", "sqlite3", "socket", "threading"})

# Modules that must exist and be pure: guards against the walker silently
# finding nothing (a renamed package, a wrong ROOT).
KNOWN_PURE = (
    "chats_store.core",
    "chats_store.core.reducer",
    "chats_store.chats",
    "chats_store.chats.model",
    "chats_store.chats.actions",
    "chats_store.chats.commands",
    "chats_store.chats.reducer",
    "chats_store.chats.selectors",
    "chats_store.chats.validation",
    "chats_store.chats.serialization",
    "chats_store.errors",
)


def is_runtime(module: str) -> bool:
    return module in RUNTIME_MODULES or any(
        module == package or module.startswith(package + ".") for package in RUNTIME_PACKAGES
    )


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def imported_names(source: str, module: str, is_package: bool) -> set[str]:
    """Every dotted name ``source`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(module, is_package, node.level, node.module)
                if node.level
                else node.module or ""
            )
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            first = node.args[0]
            if (
                called in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                names.add(first.value)
    return names


def dependency_graph(modules: Mapping[str, Path]) -> dict[str, tuple[set[str], set[str]]]:
    """For each module: (the package's modules it depends on, external top-level names)."""
    graph: dict[str, tuple[set[str], set[str]]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        internal: set[str] = set()
        external: set[str] = set()
        for name in imported_names(path.read_text(encoding="utf-8"), module, is_package):
            top = name.split(".")[0]
            if top != PACKAGE:
                external.add(top)
            elif name in modules:
                internal.add(name)
            # else: ``from chats_store.x import SomeClass`` also yields
            # ``chats_store.x.SomeClass``, which is not a module; ``chats_store.x``
            # itself was added too.
        # Importing a.b.c runs a/__init__ and a/b/__init__ (the top package excluded).
        parts = module.split(".")
        for end in range(2, len(parts)):
            parent = ".".join(parts[:end])
            if parent in modules:
                internal.add(parent)
        internal.discard(module)
        graph[module] = (internal, external)
    return graph


def forbidden_chains(
    start: str, graph: Mapping[str, tuple[set[str], set[str]]], forbidden: Iterable[str]
) -> list[str]:
    """Import chains from ``start`` to a forbidden name, e.g. ``a -> b -> asyncio``."""
    forbidden = frozenset(forbidden)
    chains: list[str] = []
    parents: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        internal, external = graph[module]
        path = [module]
        while (parent := parents[path[-1]]) is not None:
            path.append(parent)
        chain = " -> ".join(reversed(path))
        chains.extend(f"{chain} -> {name}" for name in sorted(external & forbidden))
        for dependency in sorted(internal):
            if dependency not in parents:
                parents[dependency] = module
                queue.append(dependency)
    return chains


MODULES = discover(ROOT)
GRAPH = dependency_graph(MODULES)
PURE = sorted(module for module in MODULES if not is_runtime(module))


def test_the_walker_finds_the_package() -> None:
    assert PACKAGE in MODULES
    missing = [module for module in KNOWN_PURE if module not in PURE]
    assert not missing, f"expected pure modules not found under {ROOT}: {missing}"


@pytest.mark.parametrize("module", PURE)
def test_pure_module_does_not_reach_the_runtime(module: str) -> None:
    chains = forbidden_chains(module, GRAPH, FORBIDDEN)
    assert not chains, (
        f"{module} is in the pure layer but imports runtime libraries:\n  "
        + "\n  ".join(chains)
        + "\nMove that code to the runtime shell (store, effects, facade, transport, "
        "websocket, server) or inject it, so the pure core stays stdlib + attrs."
    )


def test_the_protocol_layer_is_pure() -> None:
    protocol = [
        m for m in MODULES if m == f"{PACKAGE}.protocol" or m.startswith(f"{PACKAGE}.protocol.")
    ]
    if not protocol:
        pytest.skip("chats_store/protocol/ does not exist yet")
    assert not [m for m in protocol if is_runtime(m)]
    chains = [chain for module in protocol for chain in forbidden_chains(module, GRAPH, FORBIDDEN)]
    assert not chains, "the sans-I/O protocol layer imports runtime libraries:\n  " + "\n  ".join(
        chains
    )


# The walker itself, on a synthetic package -----------------------------------------------


def _write(root: Path, files: Mapping[str, str]) -> Path:
    package = root / PACKAGE
    for name, source in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return package


def _chains(package: Path, module: str) -> list[str]:
    modules = discover(package)
    return forbidden_chains(module, dependency_graph(modules), FORBIDDEN)


def test_the_walker_follows_imports_transitively(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": "import asyncio\n",  # the top package: runtime, not followed
            "core/__init__.py": '"""Docstring only."""\n',
            "core/pure.py": "from chats_store.core import helper\n",
            "core/helper.py": "from . import deep\n",
            "core/deep.py": "def f():\n    import threading.local_stuff\n",
            "clean.py": "import attrs\nfrom collections import deque\n",
        },
    )

    assert _chains(package, "chats_store.core.pure") == [
        "chats_store.core.pure -> chats_store.core.helper -> chats_store.core.deep -> threading"
    ]
    assert _chains(package, "chats_store.clean") == []


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import reactivex.operators as ops",
        "from websockets.asyncio.client import connect",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from reactivex import Observable",
        "import importlib\nsqlite3 = importlib.import_module('sqlite3')",
        "socket = __import__('socket')",
        "from ..runtime import thing",
    ],
)
def test_the_walker_sees_every_form_of_import(tmp_path: Path, source: str) -> None:
    package = _write(
        tmp_path,
        {
            "chats/__init__.py": "",
            "chats/reducer.py": source + "\n",
            "runtime.py": "import asyncio\n",
        },
    )

    assert _chains(package, "chats_store.chats.reducer")


def test_a_subpackage_init_is_an_implicit_dependency(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "chats/__init__.py": "from chats_store.chats import effects\n",
            "chats/model.py": "",
            "chats/effects.py": "import asyncio\n",
        },
    )

    assert _chains(package, "chats_store.chats.model") == [
        "chats_store.chats.model -> chats_store.chats -> chats_store.chats.effects -> asyncio"
    ]
