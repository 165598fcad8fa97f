"""A disk that forgets what was not fsynced: the power-loss model of the durability tests.

:class:`PowerLossDisk` registers, as SQLite's default VFS, a shim over the
``unix`` VFS of the very library Python's ``sqlite3`` module runs on (found with
``ctypes`` through the ``_sqlite3`` extension, so the server under test is the
real one, unchanged). Every file SQLite opens by name goes through it: each write
and truncation is passed on, and also noted; when SQLite syncs a file (``xSync``,
which is ``fsync``/``fdatasync`` in the ``unix`` VFS), the notes are applied, in
order, to that file's **stable image**, which starts as the file's content when it
was opened. So at any instant the stable images are exactly what a disk guarantees
to keep over a power loss: what was written before the file's last sync, nothing
after. (A real disk may also keep some later writes, whole or torn; SQLite's WAL
checksums reject a torn frame and a frame not followed by a commit, so keeping
fewer later writes is the worst case, and the one modelled.)
:meth:`PowerLossDisk.crash` writes the stable images of the files of a database
to another directory: the database as the machine would find it after the power
came back (SQLite's shared-memory index, never synced, is rebuilt from the WAL).
"""

from __future__ import annotations

import _sqlite3
import ctypes
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

_lib = ctypes.CDLL(_sqlite3.__file__)  # dlsym searches its libsqlite3 too
_lib.sqlite3_vfs_find.restype = ctypes.c_void_p
_lib.sqlite3_vfs_find.argtypes = [ctypes.c_char_p]
_lib.sqlite3_vfs_register.argtypes = [ctypes.c_void_p, ctypes.c_int]
_lib.sqlite3_vfs_unregister.argtypes = [ctypes.c_void_p]

_OPEN = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p
)
_WRITE = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
)
_TRUNCATE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int64)
_SYNC = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int)


class _Vfs(ctypes.Structure):
    """``sqlite3_vfs`` (version 3); only ``xOpen`` is called from Python."""

    _fields_ = [
        ("iVersion", ctypes.c_int),
        ("szOsFile", ctypes.c_int),
        ("mxPathname", ctypes.c_int),
        ("pNext", ctypes.c_void_p),
        ("zName", ctypes.c_char_p),
        ("pAppData", ctypes.c_void_p),
        ("xOpen", ctypes.c_void_p),
        *(
            (name, ctypes.c_void_p)
            for name in (
                "xDelete",
                "xAccess",
                "xFullPathname",
                "xDlOpen",
                "xDlError",
                "xDlSym",
                "xDlClose",
                "xRandomness",
                "xSleep",
                "xCurrentTime",
                "xGetLastError",
                "xCurrentTimeInt64",
                "xSetSystemCall",
                "xGetSystemCall",
                "xNextSystemCall",
            )
        ),
    ]


class _IoMethods(ctypes.Structure):
    """``sqlite3_io_methods`` (version 3): every method a C pointer, kept or replaced."""

    _fields_ = [
        ("iVersion", ctypes.c_int),
        *(
            (name, ctypes.c_void_p)
            for name in (
                "xClose",
                "xRead",
                "xWrite",
                "xTruncate",
                "xSync",
                "xFileSize",
                "xLock",
                "xUnlock",
                "xCheckReservedLock",
                "xFileControl",
                "xSectorSize",
                "xDeviceCharacteristics",
                "xShmMap",
                "xShmLock",
                "xShmBarrier",
                "xShmUnmap",
                "xFetch",
                "xUnfetch",
            )
        ),
    ]


def _methods_of(file: int) -> int:
    """The ``pMethods`` pointer of an ``sqlite3_file`` (its first member)."""
    return int(ctypes.cast(file, ctypes.POINTER(ctypes.c_void_p))[0] or 0)


class PowerLossDisk:
    """The shim VFS, the default one while the ``with`` block runs (see the module)."""

    def __init__(self) -> None:
        self.syncs = 0
        """How many syncs SQLite asked for."""
        self._lock = threading.Lock()
        self._paths: dict[int, str] = {}  # sqlite3_file address -> path
        self._pending: dict[str, list[tuple[int, bytes | None]]] = {}
        self._stable: dict[str, bytearray] = {}
        self._unix = _lib.sqlite3_vfs_find(b"unix")
        unix = _Vfs.from_address(self._unix)
        self._unix_open = _OPEN(unix.xOpen)
        self._vfs = _Vfs.from_buffer_copy(unix)
        self._vfs.zName = b"power-loss"
        self._vfs.pNext = None
        self._callbacks: list[Any] = [_OPEN(self._open)]
        self._vfs.xOpen = ctypes.cast(self._callbacks[0], ctypes.c_void_p).value
        self._wrapped: dict[int, _IoMethods] = {}  # unix io methods -> ours

    def __enter__(self) -> PowerLossDisk:
        _lib.sqlite3_vfs_register(ctypes.addressof(self._vfs), 1)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _lib.sqlite3_vfs_unregister(ctypes.addressof(self._vfs))
        _lib.sqlite3_vfs_register(self._unix, 1)

    def crash(self, database: Path, into: Path) -> Path:
        """The database and its WAL as a power loss now would leave them, in ``into``."""
        into.mkdir(parents=True, exist_ok=True)
        with self._lock:
            images = {path: bytes(image) for path, image in self._stable.items()}
        for suffix in ("", "-wal"):
            image = images.get(os.fspath(database) + suffix)
            if image:
                (into / (database.name + suffix)).write_bytes(image)
        return into / database.name

    # The VFS and I/O methods, called by SQLite (on whichever thread uses the database).

    def _open(self, vfs: int, name: int | None, file: int, flags: int, out_flags: int) -> int:
        # ``name`` stays a raw pointer: the unix VFS keeps it (the WAL's and the shared
        # memory's names are made from it later), so a copy freed after this call would
        # name them from freed memory.
        result = int(self._unix_open(self._unix, name, file, flags, out_flags))
        methods = _methods_of(file)
        if result != 0 or not name or not methods:
            return result
        path = os.fsdecode(ctypes.string_at(name))
        with self._lock:
            self._paths[file] = path
            if path not in self._stable:
                self._stable[path] = (
                    bytearray(Path(path).read_bytes()) if os.path.exists(path) else bytearray()
                )
                self._pending[path] = []
        ctypes.cast(file, ctypes.POINTER(ctypes.c_void_p))[0] = ctypes.addressof(
            self._wrap(methods)
        )
        return result

    def _wrap(self, methods: int) -> _IoMethods:
        wrapped = self._wrapped.get(methods)
        if wrapped is not None:
            return wrapped
        original = _IoMethods.from_address(methods)
        wrapped = _IoMethods.from_buffer_copy(original)
        write, truncate, sync = (
            _WRITE(original.xWrite),
            _TRUNCATE(original.xTruncate),
            _SYNC(original.xSync),
        )

        def on_write(file: int, data: int, amount: int, offset: int) -> int:
            self._note(file, offset, ctypes.string_at(data, amount))
            return int(write(file, data, amount, offset))

        def on_truncate(file: int, size: int) -> int:
            self._note(file, size, None)
            return int(truncate(file, size))

        def on_sync(file: int, flags: int) -> int:
            result = int(sync(file, flags))
            if result == 0:
                self._synced(file)
            return result

        callbacks = (_WRITE(on_write), _TRUNCATE(on_truncate), _SYNC(on_sync))
        self._callbacks += [write, truncate, sync, *callbacks]
        for field, callback in zip(("xWrite", "xTruncate", "xSync"), callbacks, strict=True):
            setattr(wrapped, field, ctypes.cast(callback, ctypes.c_void_p).value)
        self._wrapped[methods] = wrapped
        return wrapped

    def _note(self, file: int, offset: int, data: bytes | None) -> None:
        with self._lock:
            path = self._paths.get(file)
            if path is not None:
                self._pending[path].append((offset, data))

    def _synced(self, file: int) -> None:
        with self._lock:
            self.syncs += 1
            path = self._paths.get(file)
            if path is None:
                return
            image = self._stable[path]
            for offset, data in self._pending[path]:
                if data is None:
                    del image[offset:]
                else:
                    if len(image) < offset:
                        image.extend(bytes(offset - len(image)))
                    image[offset : offset + len(data)] = data
            self._pending[path].clear()
