"""The file-system steps the store is made of, each safe to interrupt at any point (kill -9, power cut).

Everything the store publishes is first written under a temporary name in the folder it ends up in, flushed to
disk (files and folder), then renamed into place; the ``current`` pointer is a relative symlink replaced by
``os.replace``. A reader therefore sees either the old thing or the new, complete one. Leftover temporary folders
(``.tmp-*``, ``.trash-*``) are never read as store content and are swept by the next writer.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from edgekit.errors import EdgekitError
from edgekit.manifest import DISK_ERRNOS, WriteError

TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"


def fsync_path(path) -> None:
    """Flush a file, or a folder's entries (a rename or a new name in it), to disk."""
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder) -> None:
    """Flush every regular file and folder under ``folder`` (symlinks are part of their folder)."""
    for here, _dirs, names in os.walk(str(folder)):
        for name in names:
            path = os.path.join(here, name)
            if not os.path.islink(path):
                fsync_path(path)
        fsync_path(here)


def copy_hashed(src, dst, chunk: int = 1 << 20, progress: Optional[Callable[[int], None]] = None) -> str:
    """Copy ``src`` to ``dst`` (a new file), flushed to disk; returns the sha256 of what was copied."""
    h = hashlib.sha256()
    with open(str(src), "rb") as fin, open(str(dst), "wb") as fout:
        for block in iter(lambda: fin.read(chunk), b""):
            h.update(block)
            fout.write(block)
            if progress is not None:
                progress(len(block))
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest()


def replace_file(src, dst: Path, sha256: Optional[str] = None) -> None:
    """Copy ``src`` over ``dst`` (a repair): copied beside it under a temporary name, checked against ``sha256``
    when given, flushed, then renamed onto it; an interrupted repair leaves the old file and a swept leftover."""
    tmp = dst.with_name("%s%s-%d" % (TMP_PREFIX, dst.name, os.getpid()))
    try:
        copied = copy_hashed(src, tmp)
        if sha256 is not None and copied != sha256:
            raise EdgekitError("%s changed while it was copied (sha256 %s, not %s): wait for the copy to it to finish "
                               "and add it again" % (src, copied[:12], sha256[:12]))
        os.replace(str(tmp), str(dst))
        fsync_path(dst.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def temp_dir(parent: Path, label: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="%s%s-" % (TMP_PREFIX, label), dir=str(parent)))


def publish_dir(tmp: Path, final: Path) -> None:
    """Rename the finished ``tmp`` folder onto ``final`` (which must not exist) and flush the parent."""
    fsync_tree(tmp)
    os.chmod(str(tmp), 0o777 & ~_umask())  # mkdtemp makes 0700
    os.rename(str(tmp), str(final))
    fsync_path(final.parent)


def remove_dir(path: Path) -> None:
    """Take ``path`` out of sight with one rename, then delete it: an interrupted delete leaves a ``.trash-``
    folder the next writer sweeps, never a half-deleted model or run."""
    if not path.exists():
        return
    trash = path.with_name("%s%s-%d-%d" % (TRASH_PREFIX, path.name, os.getpid(), time.monotonic_ns()))
    os.rename(str(path), str(trash))
    fsync_path(path.parent)
    shutil.rmtree(str(trash), ignore_errors=True)


def sweep(parent: Path) -> int:
    """Delete leftovers of interrupted writers in ``parent`` (the caller holds the store's lock)."""
    count = 0
    if not parent.is_dir():
        return 0
    for child in parent.iterdir():
        atomic_tmp = child.name.startswith(".") and child.name.endswith(".tmp")  # edgekit.manifest.atomic_path's
        if child.name.startswith(TMP_PREFIX) or child.name.startswith(TRASH_PREFIX) or atomic_tmp:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(str(child), ignore_errors=True)
            else:
                child.unlink()
            count += 1
    return count


def switch_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` (relative) atomically: a new symlink renamed over the old one."""
    tmp = link.with_name("%scurrent-%d" % (TMP_PREFIX, os.getpid()))
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, str(tmp))
    os.replace(str(tmp), str(link))
    fsync_path(link.parent)


@contextlib.contextmanager
def locked(root: Path, what: str, wait: Callable[[str], None]) -> Iterator[None]:
    """One writer at a time (fcntl.flock on ROOT/.lock; a killed holder releases it with its process)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(root / ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        if exc.errno in DISK_ERRNOS:
            raise WriteError(root, exc) from exc
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            wait("waiting for another edgekit models command on %s to finish (%s)" % (root, what))
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def check_free_space(folder: Path, need: int, what: str) -> None:
    try:
        free = shutil.disk_usage(str(folder)).free
    except OSError:
        return
    if free < need:
        raise EdgekitError("not enough disk space for %s in %s: %.1f MB free, %.1f MB needed (edgekit models gc "
                           "frees old models)" % (what, folder, free / 1e6, need / 1e6))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
