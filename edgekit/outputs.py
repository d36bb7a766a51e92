"""Where results go: checked before the slow part, and never lost to a write that fails at the end.

Two halves:

* :func:`writable_problem` / the ``writable_*`` click callbacks check, when the command line is parsed, that each
  output place can take a file (the folder exists or can be made, is writable, and has room). A read-only or
  full disk is one line before anything is measured.
* :class:`Writes` tries every output of a finished command even when one fails (the disk filled during the run),
  says ``wrote X`` or ``warning: could not write X`` for each, and ends with one line naming what was not
  written. The results were already printed, and the other files are kept.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, List, Optional

import click

from edgekit.errors import EdgekitError
from edgekit.manifest import WriteError

MIN_FREE_BYTES = 1 << 20  # a results file is kilobytes; under 1 MiB free the disk is full for practical purposes
RECORD_MIN_FREE_MB = 200  # camera --record stops below this; a disk already under it is refused up front


def _existing_ancestor(folder: Path) -> Path:
    folder = folder if str(folder) else Path(".")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def writable_problem(path, folder: bool = False, min_free: int = MIN_FREE_BYTES) -> Optional[str]:
    """Why a file at ``path`` (or, with ``folder``, files inside the folder ``path``) cannot be written, or None.

    Nothing is created: the probe is an anonymous temporary file in the nearest folder that exists (the folders
    in between are made later, by the write itself)."""
    path = Path(path)
    if not folder and path.is_dir():
        return "%s is a folder: give a file name" % path
    target = path if folder else path.parent
    if folder and path.exists() and not path.is_dir():
        return "%s is a file, not a folder" % path
    base = _existing_ancestor(target)
    if not base.is_dir():
        return "%s is a file, not a folder" % base
    try:
        with tempfile.TemporaryFile(dir=str(base)):
            pass
    except OSError as exc:
        return "cannot write in %s: %s" % (os.path.abspath(str(base)), exc.strerror or exc)
    free = shutil.disk_usage(str(base)).free
    if free < min_free and min_free > MIN_FREE_BYTES:
        return "the disk holding %s is full for a recording: %d MB free, it needs %d MB" % (
            os.path.abspath(str(base)), free // 10 ** 6, min_free // 10 ** 6)
    if free < min_free:
        return "the disk holding %s is full (%d KiB free)" % (os.path.abspath(str(base)), free // 1024)
    return None


def _callback(folder: bool, min_free: int = MIN_FREE_BYTES):
    def check(ctx, param, value):
        if value is not None and not ctx.resilient_parsing:
            problem = writable_problem(value, folder=folder, min_free=min_free)
            if problem:
                raise click.BadParameter("%s: %s" % (value, problem), ctx=ctx, param=param)
        return value

    return check


writable_file = _callback(folder=False)  # click callbacks: --json, --csv, --markdown, --plot, --record, --log
writable_folder = _callback(folder=True)  # --out folders of export, quantize, build, prune
RECORD_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v")  # containers OpenCV's writer makes (mp4v; MJPG in .avi)
_writable_recording = _callback(folder=False, min_free=RECORD_MIN_FREE_MB * 10 ** 6)


def writable_recording(ctx, param, value):
    """camera --record: a video container OpenCV can write, in a place with room for it."""
    if value is not None and Path(value).suffix.lower() not in RECORD_SUFFIXES:
        raise click.BadParameter("%s: name the video file with one of %s (e.g. demo.mp4)"
                                 % (value, ", ".join(RECORD_SUFFIXES)), ctx=ctx, param=param)
    return _writable_recording(ctx, param, value)


class Writes:
    """The outputs of a finished command, each tried on its own; :meth:`finish` raises if any could not be
    written. Use one per command and call ``finish()`` last (after every other line the command prints)."""

    def __init__(self) -> None:
        self.failed: List[str] = []

    def attempt(self, label, write: Callable[[], object]) -> Optional[object]:
        """Run ``write`` (which returns what it wrote); an OSError is a warning and is remembered."""
        try:
            written = write()
        except (OSError, WriteError) as exc:
            reason = exc.reason if isinstance(exc, WriteError) else (exc.strerror or str(exc))
            self.failed.append("%s (%s)" % (label, reason))
            click.echo("warning: could not write %s: %s" % (label, reason), err=True)
            return None
        click.echo("wrote %s" % written, err=True)
        return written

    def finish(self) -> None:
        if self.failed:
            raise EdgekitError("could not write %s: the results above are complete; free some space or choose "
                               "another place and run again" % ", ".join(self.failed))


def results_folder_problem(default_folder) -> Optional[str]:
    """The default results folder (benchmarks/results under the current folder), checked like --json."""
    problem = writable_problem(Path(default_folder), folder=True)
    return None if problem is None else "%s (results go to %s%s by default; give --json PATH or --no-save)" % (
        problem, default_folder, os.sep)
