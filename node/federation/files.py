"""The federation's state files: JSON documents shared by the running node and the CLI.

Both processes change them (the CLI pins a peer or revokes a grant while the node serves), so
every read-modify-write holds an exclusive `flock` on the folder's lock file, every write
replaces the file atomically, and readers reload a document only when its file changed (one
`stat` per check, so the node sees a revocation made by the CLI on its next call).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from coopfed.federation.keys import write_private, write_public
from coopfed.node.errors import FailedPrecondition

T = TypeVar("T")
_LOCK_NAME = ".lock"


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Folder:
    """A folder of state files with one cross-process lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.Lock()  # flock is per open file, not per thread

    def create(self) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive access for a read-modify-write across threads and processes."""
        self.create()
        with self._thread_lock, open(self.path / _LOCK_NAME, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class JsonDocument(Generic[T]):
    """One JSON file parsed into a value of type T, reloaded when the file changes.

    `parse` turns the JSON into T (raising ValueError, KeyError or TypeError on bad content);
    `dump` turns T back into JSON. A missing file reads as `empty()`.
    """

    def __init__(
        self,
        folder: Folder,
        name: str,
        *,
        parse: Callable[[Any], T],
        dump: Callable[[T], Any],
        empty: Callable[[], T],
        secret: bool = True,  # the node's own files: readable by its owner only
    ) -> None:
        self.folder = folder
        self.path = folder.path / name
        self._path_str = str(self.path)
        self._parse, self._dump, self._empty = parse, dump, empty
        self._secret = secret
        self._cached: tuple[tuple[int, int, int] | None, T] | None = None
        self._lock = threading.Lock()

    def read(self) -> T:
        """The current value; parsed again only if the file changed since the last read."""
        signature = _signature(self._path_str)
        with self._lock:
            if self._cached is not None and self._cached[0] == signature:
                return self._cached[1]
        value = self._load() if signature is not None else self._empty()
        with self._lock:
            self._cached = (signature, value)
        return value

    def _load(self) -> T:
        try:
            raw = json.loads(self.path.read_text("utf-8"))
            return self._parse(raw)
        except FileNotFoundError:
            return self._empty()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FailedPrecondition(
                f"federation state file {self.path} is unreadable or corrupt: {exc}",
                code="federation.state_corrupt",
            ) from exc

    def write(self, value: T) -> None:
        """Replace the file (call inside `folder.locked()` when the value was derived from a read)."""
        self.folder.create()
        data = (json.dumps(self._dump(value), indent=2, sort_keys=True) + "\n").encode("utf-8")
        (write_private if self._secret else write_public)(self.path, data)
        with self._lock:
            self._cached = None

    @contextlib.contextmanager
    def update(self) -> Iterator[list[T]]:
        """Read-modify-write under the folder's lock: yields [value]; assign [0] to change it."""
        with self.folder.locked():
            self._cached = None  # another process may have written since our last stat
            box = [self._load() if self.path.exists() else self._empty()]
            yield box
            self.write(box[0])


class JsonLines:
    """An append-only file of JSON records (one a line), e.g. a log of decisions."""

    def __init__(self, folder: Folder, name: str) -> None:
        self.folder = folder
        self.path = folder.path / name

    def append(self, record: dict[str, Any]) -> None:
        self.folder.create()
        line = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one write of one line: O_APPEND keeps concurrent lines whole
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return []
        try:
            return [json.loads(line) for line in lines if line.strip()]
        except ValueError as exc:
            raise FailedPrecondition(
                f"federation log {self.path} is corrupt: {exc}", code="federation.state_corrupt"
            ) from exc
