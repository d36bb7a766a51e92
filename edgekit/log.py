"""Console output: phases logged with their time, on stderr so stdout stays for results.

Every message is one line whatever the terminal width (grep, journald and log files read them): the stderr
console never wraps (``soft_wrap``), and message text is never parsed as rich markup (a path with ``[...]`` in it
prints as it is). Tables go to ``out`` (stdout) and may be as wide as they need.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator

from rich.console import Console
from rich.markup import escape

console = Console(stderr=True, highlight=False, soft_wrap=True)
# results (tables) go to stdout; when it is a pipe or file, do not squeeze tables into 80 columns. Cells hold
# names and paths, never markup: "[a/yolov8n.onnx]" prints as it is.
out = Console(highlight=False, soft_wrap=True, markup=False, width=None if sys.stdout.isatty() else 250)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Log ``name`` and, when it finishes, how long it took (Polygraphy's start/finish)."""
    console.print("[bold]%s[/bold] ..." % escape(name))
    t0 = time.perf_counter()
    yield
    console.print("Finished %s in %.1f s" % (escape(name), time.perf_counter() - t0))


def info(msg: str, style: str = "") -> None:
    """One line on stderr; ``style`` (a rich style such as "yellow") colours it on a terminal."""
    console.print(escape(msg), style=style or None)


def warn(msg: str) -> None:
    console.print("[yellow]warning:[/yellow] %s" % escape(msg))


def progress_bar(*columns, show: bool = True):
    """A transient rich progress bar on stderr, only where a person watches it: a log or a pipe gets none
    (neither the bar's redraws nor the blank line it leaves when it stops)."""
    from rich.progress import Progress

    return Progress(*columns, console=console, transient=True, disable=not show or not console.is_terminal)
