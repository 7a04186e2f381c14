"""What interrupted writes leave in the finetunes folder, swept at startup.

    sweep_leftovers(root) -> the paths removed (each one logged)

Every write there goes through a temporary entry that is renamed into place or removed, so only
a crash (or a kill) leaves one behind (`server.finetunes.layout` lists them). None is ever read:
a leftover only takes disk space, until this sweep.

Only leftovers untouched for LEFTOVER_MIN_AGE_S are removed, not all of them: several server
processes may share one adapters folder, and a young leftover may be another process's write in
progress (an upload's temp file is modified at every MiB flushed to it). A younger one stays
until a later start. Links are removed, never followed.
"""

import logging
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from server.finetunes.layout import (
    CANDIDATE_PREFIX,
    DURABLE_TEMP_PREFIX,
    DURABLE_TEMP_SUFFIX,
    INCOMING_DIR,
    NEW_PREFIX,
    UPLOAD_PREFIX,
    UPLOAD_SUFFIX,
)

logger = logging.getLogger(__name__)

LEFTOVER_MIN_AGE_S = 60 * 60


def sweep_leftovers(
    root: Path, min_age_s: float = LEFTOVER_MIN_AGE_S, now: float | None = None
) -> list[Path]:
    """Remove the leftovers under the finetunes folder `root` last modified `min_age_s` or
    more before `now`; the paths removed."""
    current = time.time() if now is None else now
    removed: list[Path] = []
    for path in _leftovers(root):
        try:
            status = path.lstat()
            if current - status.st_mtime < min_age_s:
                continue
            if stat.S_ISDIR(status.st_mode):
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:  # removed meanwhile, e.g. by another process's sweep
            continue
        except OSError as error:
            logger.warning("could not remove %s, left by an interrupted write: %s", path, error)
            continue
        minutes = (current - status.st_mtime) / 60
        logger.warning("removed %s, left by an interrupted write %.0f minutes ago", path, minutes)
        removed.append(path)
    return removed


def _leftovers(root: Path) -> Iterator[Path]:
    yield from _named(root, NEW_PREFIX, "")
    yield from _named(root, DURABLE_TEMP_PREFIX, DURABLE_TEMP_SUFFIX)
    for finetune in _folders(root):
        yield from _named(finetune, CANDIDATE_PREFIX, "")
        yield from _named(finetune, DURABLE_TEMP_PREFIX, DURABLE_TEMP_SUFFIX)
        yield from _named(finetune / INCOMING_DIR, UPLOAD_PREFIX, UPLOAD_SUFFIX)


def _folders(root: Path) -> Iterator[Path]:
    """The finetunes' folders: not temporary ones, and not through links."""
    try:
        with os.scandir(root) as entries:
            found = [Path(entry.path) for entry in entries if _is_folder(entry)]
    except OSError:  # no finetune yet
        return
    yield from sorted(found)


def _is_folder(entry: os.DirEntry[str]) -> bool:
    return not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)


def _named(folder: Path, prefix: str, suffix: str) -> Iterator[Path]:
    try:
        names = sorted(os.listdir(folder))
    except OSError:  # not there (yet), or not a folder
        return
    for name in names:
        if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix + suffix):
            yield folder / name
