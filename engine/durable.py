"""File changes that survive a crash or a power cut: a file is replaced whole or not at all.

    write_atomically(path, text)   temp file beside `path`, fsync, rename over it, fsync folder
    fsync_path(path)               flush a file's data, or a folder's entries, to disk

A rename is atomic but only durable once its folder is flushed too, and a renamed file holds
its data after a power cut only if that data was flushed before the rename.
"""

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8): readers see the old content or the new, never a part.

    The temp file (named `.*.tmp`) is removed if writing fails; only a crash can leave one.
    """
    descriptor, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def fsync_path(path: Path) -> None:
    """Flush `path` to disk: a file's data, or a folder's entries (the files created, renamed
    or removed in it)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
