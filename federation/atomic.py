"""The one atomic file write: a file takes its name only once written whole and synced, and the
folder is synced after the rename, so a crash or power loss leaves the old file or the new one,
never half of either, and never loses the rename.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def replacing(path: Path, mode: int = 0o644, *, exclusive: bool = False) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` (file mode `mode`) when the block ends without an error.

    With `exclusive`, `path` is only created, never replaced: `FileExistsError` where another
    writer got there first (the temporary file is linked, not renamed, onto the name).
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    sync_folder(path.parent)


def write_atomic(path: Path, data: bytes, mode: int = 0o644, *, exclusive: bool = False) -> None:
    with replacing(path, mode, exclusive=exclusive) as fh:
        fh.write(data)


def sync_folder(folder: Path) -> None:
    """Make the renames and links done in `folder` survive power loss."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
