"""Layering: the pure core imports only what does no I/O, in its source and at import time.

``docs/architecture.md``: a pure core (state, actions, reducer, selectors,
validation, commands, the sans-I/O protocol) under a runtime shell, the only
place that does I/O or imports asyncio, websockets, reactivex or sqlite3
(:data:`RUNTIME_MODULES`, :data:`RUNTIME_PACKAGES`). Every other module of the
package is pure, and a pure module may import only:

* the standard library modules that do no I/O, :data:`STDLIB_WITHOUT_IO`;
* the libraries of :data:`LIBRARIES`;
* other pure modules of the package;

and of the modules in :data:`ONLY_NAMES`, only the names listed there (PyJWT to
decode a token's claims, not its key-fetching client).

Two checks. **The source**: every module's imports are read with :mod:`ast`
(nothing is imported, so it is fast and cannot be fooled by import order) and
the imports between the package's modules are followed. Every import counts: at
module level, inside functions, ``importlib.import_module("...")`` /
``__import__("...")`` with a literal name, and the parent packages that an import
runs (importing ``chats_store.a.b`` runs ``chats_store/__init__.py`` and
``chats_store/a/__init__.py``). A pure module's imports under ``if TYPE_CHECKING:``
count too: the pure layer does not even name runtime types. The top package is
no exception: it is run by every import, so what it runs must be pure (its public
names are imported lazily, on first use). Only its ``TYPE_CHECKING`` block, which
names the runtime's classes for type checkers and never runs, is not followed;
:func:`test_the_top_package_names_for_type_checkers_only_its_lazy_exports` checks
that the block says nothing else.

**Import time**: a fresh interpreter imports each pure module (and the top
package) and must not have loaded asyncio, websockets, reactivex or sqlite3: what
the source check cannot see, such as a library that loads them.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

import chats_store

PACKAGE = "chats_store"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# The runtime shell: modules that may import anything. Exact module names, and
# package prefixes (everything below them).
RUNTIME_MODULES = frozenset(
    {
        "chats_store.core.affinity",
        "chats_store.core.store",
        "chats_store.chats.transport",
        "chats_store.chats.effects",
        "chats_store.chats.facade",
        "chats_store.chats.derived",  # getters built on the store
        "chats_store.chats.action_log",  # writes and reads files
        "chats_store.chats.persistence",  # the state file (sqlite3)
        "chats_store.protocol.schema",  # reads the schema file shipped in the package
        "chats_store.socket_reads",  # sets asyncio transports up
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

STDLIB_WITHOUT_IO: Mapping[str, str] = {
    "__future__": "postponed annotations",
    "abc": "abstract base classes",
    "bisect": "binary search in sorted tuples (the message log)",
    "collections": "containers and the collections.abc interfaces",
    "enum": "ErrorCode and the other enumerations",
    "functools": "partial, reduce, caches of pure functions",
    "itertools": "iteration tools",
    "json": "the codec: JSON text in, values out, and back (strings, not files)",
    "math": "arithmetic",
    "operator": "attrgetter, itemgetter",
    "re": "text patterns",
    "string": "character constants",
    "sys": "sys.intern only (ONLY_NAMES): the codec shares repeated id strings",
    "types": "MappingProxyType, NoneType, UnionType",
    "typing": "annotations",
    "unicodedata": "character categories (the content rule's blank characters)",
}
"""The standard library a pure module may import, and what for.

Refused (not listed), among others: ``time``, ``uuid``, ``random``, ``secrets``
(clocks, ids and chance are inputs: the facade puts them into the actions),
``os``, ``pathlib``, ``io``, ``logging``, ``socket``, ``ssl``, ``select``,
``threading``, ``asyncio``, ``subprocess``, ``sqlite3``, ``importlib`` (I/O of
every kind); ``weakref`` and ``gc`` (state that changes under the code).
"""

LIBRARIES: Mapping[str, str] = {
    "attrs": "frozen classes",
    "cattrs": "the wire converter, and the action log's (un)structuring",
    "immutables": "persistent maps in the state",
    "msgspec": "the codec's fast path: the large frames read straight into the domain",
    "jwt": "PyJWT, to read a token's claims (ONLY_NAMES: decoding only)",
}
"""The libraries a pure module may import, and what for."""

ONLY_NAMES: Mapping[str, frozenset[str]] = {
    "jwt": frozenset({"decode", "PyJWTError"}),
    "sys": frozenset({"intern"}),
}
"""Of these modules a pure module may use only these names (imported or as attributes)."""

RUNTIME_LIBRARIES = ("asyncio", "websockets", "reactivex", "sqlite3")
"""What importing a pure module must not load, even through a library."""

REFUSED_STDLIB = ("time", "uuid", "os", "random", "logging", "pathlib", "importlib")
"""Examples of refused standard modules, each tried on a synthetic pure module."""

# Modules that must exist and be pure: guards against the walker silently finding
# nothing (a renamed package, a wrong ROOT) or a pure module listed as runtime.
KNOWN_PURE = (
    "chats_store.content",
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
    "chats_store.tokens",
    "chats_store.user.module",
    "chats_store.protocol",
    "chats_store.protocol.client",
    "chats_store.protocol.frames",
    "chats_store.protocol.mapping",
    "chats_store.protocol.server",
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


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class Imports(NamedTuple):
    """The dotted names a module imports: when it runs, and for type checkers only."""

    runs: set[str]
    types: set[str]


def imported_names(source: str, module: str, is_package: bool) -> Imports:
    """Every dotted name ``source`` imports (``from a import b`` gives ``a`` and ``a.b``).

    For the modules of :data:`ONLY_NAMES`, the attributes used (``jwt.decode``)
    count as imported names too.
    """
    tree = ast.parse(source)
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            type_only.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    imports = Imports(set(), set())
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        names = imports.types if id(node) in type_only else imports.runs
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.name)
                bound = alias.asname or alias.name.split(".")[0]
                aliases[bound] = alias.name if alias.asname else bound
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
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and aliases.get(node.value.id) in ONLY_NAMES
        ):
            names = imports.types if id(node) in type_only else imports.runs
            names.add(f"{aliases[node.value.id]}.{node.attr}")
    return imports


class Dependencies(NamedTuple):
    """A module's dependencies: the package's modules and the names outside it."""

    internal: set[str]
    external: set[str]
    type_internal: set[str]
    type_external: set[str]
    from_top: set[str]
    """Names imported from the top package itself: its lazy exports hide their module."""


def dependency_graph(modules: Mapping[str, Path]) -> dict[str, Dependencies]:
    """For each module: what it imports when it runs, and for type checkers only."""
    graph: dict[str, Dependencies] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        imports = imported_names(path.read_text(encoding="utf-8"), module, is_package)
        dependencies = Dependencies(set(), set(), set(), set(), set())
        for names, internal, external in (
            (imports.runs, dependencies.internal, dependencies.external),
            (imports.types, dependencies.type_internal, dependencies.type_external),
        ):
            for name in names:
                if name.split(".")[0] != PACKAGE:
                    external.add(name)
                elif name in modules:
                    internal.add(name)
                elif name.rpartition(".")[0] == PACKAGE:
                    dependencies.from_top.add(name)
                # else: ``from chats_store.x import SomeClass`` also yields
                # ``chats_store.x.SomeClass``, which is not a module; ``chats_store.x``
                # itself was added too.
        # Importing a.b.c runs a/__init__ and a/b/__init__.
        parts = module.split(".")
        dependencies.internal.update(
            parent for end in range(1, len(parts)) if (parent := ".".join(parts[:end])) in modules
        )
        dependencies.internal.discard(module)
        graph[module] = dependencies
    return graph


def is_allowed(name: str) -> bool:
    """Whether a pure module may import the dotted name ``name`` (outside the package)."""
    top, _, rest = name.partition(".")
    if top not in STDLIB_WITHOUT_IO and top not in LIBRARIES:
        return False
    return top not in ONLY_NAMES or not rest or rest.split(".")[0] in ONLY_NAMES[top]


def violations(start: str, graph: Mapping[str, Dependencies]) -> list[str]:
    """The import chains by which pure module ``start`` reaches what it may not import.

    For example ``a -> b -> asyncio``, or ``a -> chats_store.chats.effects (runtime)``.
    """
    found: list[str] = []
    parents: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        dependencies = graph[module]
        path = [module]
        while (parent := parents[path[-1]]) is not None:
            path.append(parent)
        chain = " -> ".join(reversed(path))
        internal, external = set(dependencies.internal), set(dependencies.external)
        if module != PACKAGE:  # the top package's TYPE_CHECKING block: its lazy exports
            internal |= dependencies.type_internal
            external |= dependencies.type_external
        found.extend(f"{chain} -> {name}" for name in sorted(external) if not is_allowed(name))
        found.extend(
            f"{chain} -> {name} (import it from its own module, not from the top package)"
            for name in sorted(dependencies.from_top)
        )
        for dependency in sorted(internal):
            if is_runtime(dependency):
                found.append(f"{chain} -> {dependency} (runtime)")
            elif dependency not in parents:
                parents[dependency] = module
                queue.append(dependency)
    return found


MODULES = discover(ROOT)
GRAPH = dependency_graph(MODULES)
PURE = sorted(module for module in MODULES if not is_runtime(module) and module != PACKAGE)


def test_the_walker_finds_the_package() -> None:
    assert PACKAGE in MODULES
    missing = [module for module in KNOWN_PURE if module not in PURE]
    assert not missing, f"expected pure modules not found under {ROOT}: {missing}"


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_imports_only_the_allow_list(module: str) -> None:
    found = violations(module, GRAPH)
    assert not found, (
        f"{module} is in the pure layer but imports what it may not:\n  "
        + "\n  ".join(found)
        + "\nA pure module imports only the standard library of STDLIB_WITHOUT_IO, the "
        "libraries of LIBRARIES and other pure modules (tests/test_layering.py). Move that "
        "code to the runtime shell (store, effects, facade, transport, websocket, server), "
        "or pass what it needs in (a time, an id) with the action."
    )


def test_the_top_package_runs_only_pure_imports() -> None:
    # It is run by every import of the package, pure modules included.
    assert violations(PACKAGE, GRAPH) == []


def test_the_top_package_names_for_type_checkers_only_its_lazy_exports() -> None:
    tree = ast.parse(MODULES[PACKAGE].read_text(encoding="utf-8"))
    named: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.dump(stmt)
                named.update((stmt.module, alias.name) for alias in stmt.names)
    lazy = {(module, name) for module, names in chats_store._LAZY_EXPORTS.items() for name in names}

    assert named == lazy
    assert sorted(name for _, name in lazy) == sorted(chats_store.__all__)


def test_every_public_name_is_importable_and_listed() -> None:
    for module, names in chats_store._LAZY_EXPORTS.items():
        for name in names:
            assert getattr(chats_store, name) is getattr(importlib.import_module(module), name)
    assert set(chats_store.__all__) <= set(dir(chats_store))
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        chats_store.Nope  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize("module", [PACKAGE, *PURE])
def test_importing_a_pure_module_loads_no_runtime(module: str) -> None:
    code = (
        f"import sys\nimport {module}\n"
        f"print(' '.join(sorted({set(RUNTIME_LIBRARIES)!r} & set(sys.modules))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT.parent,  # `python -c` puts it first on sys.path: this checkout is imported
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", (
        f"`import {module}` loads {result.stdout.strip()}: follow its imports "
        "(python -X importtime -c 'import ...') to the one that pulls in the runtime"
    )


# The walker itself, on a synthetic package -----------------------------------------------


def _write(root: Path, files: Mapping[str, str]) -> Path:
    package = root / PACKAGE
    for name, source in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return package


def _violations(package: Path, module: str) -> list[str]:
    return violations(module, dependency_graph(discover(package)))


LAZY_TOP = (
    "from typing import TYPE_CHECKING\n"
    "if TYPE_CHECKING:\n"
    "    from chats_store.runtime import Thing\n"
)


def test_the_walker_follows_imports_transitively(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": LAZY_TOP,
            "runtime.py": "import asyncio\n",
            "core/__init__.py": '"""Docstring only."""\n',
            "core/pure.py": "from chats_store.core import helper\n",
            "core/helper.py": "from . import deep\n",
            "core/deep.py": "def f():\n    import threading.local_stuff\n",
            "clean.py": "import attrs\nfrom collections import deque\nimport jwt\njwt.decode\n",
        },
    )

    assert _violations(package, "chats_store.core.pure") == [
        "chats_store.core.pure -> chats_store.core.helper -> chats_store.core.deep "
        "-> threading.local_stuff"
    ]
    assert _violations(package, "chats_store.clean") == []


def test_a_top_package_that_runs_an_import_reaches_every_module(tmp_path: Path) -> None:
    package = _write(tmp_path, {"__init__.py": "import asyncio\n", "clean.py": "import attrs\n"})

    assert _violations(package, "chats_store.clean") == [
        "chats_store.clean -> chats_store -> asyncio"
    ]


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
        "from chats_store import Thing",
        "import jwt\njwt.encode({}, 'key')",
        "from jwt import PyJWKClient",
        "import jwt.jwks_client",
        "import sys\nsys.stdout.write('hi')",
    ],
)
def test_the_walker_sees_every_form_of_import(tmp_path: Path, source: str) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": LAZY_TOP,
            "chats/__init__.py": "",
            "chats/reducer.py": source + "\n",
            "runtime.py": "import asyncio\n",
        },
    )

    assert _violations(package, "chats_store.chats.reducer")


@pytest.mark.parametrize("name", REFUSED_STDLIB)
def test_the_allow_list_refuses_the_standard_modules_that_do_io(tmp_path: Path, name: str) -> None:
    package = _write(tmp_path, {"__init__.py": "", "reducer.py": f"import {name}\n"})

    assert _violations(package, "chats_store.reducer") == [f"chats_store.reducer -> {name}"]


def test_a_subpackage_init_is_an_implicit_dependency(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            "chats/__init__.py": "from chats_store.chats import sockets\n",
            "chats/model.py": "",
            "chats/sockets.py": "import asyncio\n",
        },
    )

    assert _violations(package, "chats_store.chats.model") == [
        "chats_store.chats.model -> chats_store.chats -> chats_store.chats.sockets -> asyncio"
    ]


def test_a_pure_module_may_not_import_a_runtime_module(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            "chats/__init__.py": "",
            "chats/model.py": "from chats_store.chats.effects import ChatsEffects\n",
            "chats/effects.py": "",
        },
    )

    assert _violations(package, "chats_store.chats.model") == [
        "chats_store.chats.model -> chats_store.chats.effects (runtime)"
    ]
