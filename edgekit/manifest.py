"""Artifact metadata: a JSON sidecar next to every ONNX/engine, sha256, and atomic writes.

Every artifact ``X`` edgekit writes gets ``X.json`` beside it. Both are written to a temporary file in the
same folder and renamed into place, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Optional

from edgekit.errors import EdgekitError

MANIFEST_SUFFIX = ".json"


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    On any exception (KeyboardInterrupt included) the temporary file is removed and ``path`` is untouched.
    A disk that refuses the write (read-only, full, no permission) is a :class:`WriteError`: one line that names
    the file, not a traceback.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".%s." % path.name, suffix=".tmp", dir=str(path.parent))
    except OSError as exc:
        raise WriteError(path, exc) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(str(tmp_path), 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get normal permissions
        os.replace(str(tmp_path), str(path))
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        raise WriteError(path, exc) from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


# What the disk says when it will not take a file: the user can fix these (another place, more space).
DISK_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG, errno.EIO)


@contextlib.contextmanager
def disk_errors(place) -> Iterator[None]:
    """The disk refusing a write anywhere in the block (a library's own temporary files included) is one line
    naming ``place``, not an OSError traceback."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        raise WriteError(place, exc) from exc


class WriteError(EdgekitError):
    """A file that could not be written, with the disk's reason; nothing half-written was left behind."""

    def __init__(self, path, exc: OSError) -> None:
        self.path, self.reason = Path(path), exc.strerror or str(exc)
        super().__init__("could not write %s: %s (nothing half-written was left)" % (path, self.reason))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path, data: Dict[str, Any]) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def manifest_path(artifact) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + MANIFEST_SUFFIX)


def read_manifest(artifact) -> Optional[Dict[str, Any]]:
    """The sidecar manifest of ``artifact``, or None when there is none."""
    path = manifest_path(artifact)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise EdgekitError("manifest %s is unreadable (%s): delete it or re-export the model" % (path, exc)) from exc


def package_versions(names: Iterable[str]) -> Dict[str, Optional[str]]:
    """Installed versions of ``names`` (None when absent), read without importing the packages."""
    from importlib import metadata

    out: Dict[str, Optional[str]] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
