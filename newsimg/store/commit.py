"""The one atomic commit every artifact is written through.

Write under a temporary name beside the target, fsync what was written, ``os.replace`` it over the
target, fsync the directory. Readers (and a re-run after a kill) see the old output or the new
one, never half of one. The temporary name is hidden (a leading dot), unique per writer (pid and
a random suffix) and ends in ``.tmp``, so two ranks never share one, a leftover never looks like
an output, and :func:`remove_temps` can find a killed writer's leftovers by the target's name.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_SUFFIX = ".tmp"


def temp_name(final: Path) -> Path:
    """The hidden temporary sibling of ``final``: ``.{name}.{pid}-{random}.tmp``."""
    return final.with_name(f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def is_temp(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(TMP_SUFFIX)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make renames in ``directory`` durable; best effort (not every platform opens folders)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync a file, or every file of a folder and the folders themselves."""
    if path.is_dir():
        for sub in sorted(path.rglob("*")):
            if sub.is_file():
                _fsync_file(sub)
        for sub in sorted(p for p in path.rglob("*") if p.is_dir()):
            fsync_dir(sub)
        fsync_dir(path)
    elif path.exists():
        _fsync_file(path)


def _rename(tmp: Path, final: Path) -> None:
    # one name for the rename, so a test can inject a crash between writing and committing
    os.replace(tmp, final)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def replace(tmp: Path, final: Path) -> None:
    """Commit an already written temporary: fsync it, rename it over ``final``, fsync the
    directory. A folder's old version is removed first (``os.replace`` cannot replace a
    non-empty folder): a crash in between leaves no folder, never a mixed one."""
    fsync_tree(tmp)
    if tmp.is_dir() and final.is_dir():
        shutil.rmtree(final)
    _rename(tmp, final)
    fsync_dir(final.parent)


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path to write ``final``'s content to; on success it replaces ``final``.

    Works for a file or a folder. On an error the temporary is removed and ``final`` is left as
    it was; a killed process leaves at most the temporary (see :func:`remove_temps`).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(final)
    try:
        yield tmp
        replace(tmp, final)
    finally:
        _remove(tmp)


def write_bytes(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_text(final: Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_temps(directory: Path, *stems: str) -> int:
    """Delete temporaries a killed writer left in ``directory``; returns how many.

    With ``stems``, only the temporaries of targets whose name is a stem followed by ``.`` or
    ``_`` (``yfcc-00001`` matches ``.yfcc-00001.parquet.*.tmp`` and ``.yfcc-00001_stats.json...``
    but not shard ``yfcc-000010``): ranks side by side own disjoint outputs and each cleans only
    its own. Without, every temporary of the directory.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    prefixes = tuple(f".{s}{c}" for s in stems for c in "._") if stems else (".",)
    removed = 0
    for path in directory.iterdir():
        if path.name.startswith(prefixes) and path.name.endswith(TMP_SUFFIX):
            _remove(path)
            removed += 1
    return removed
