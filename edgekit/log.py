"""Console output: phases logged with their time, on stderr so stdout stays for results."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator

from rich.console import Console

console = Console(stderr=True, highlight=False)
# results (tables) go to stdout; when it is a pipe or file, do not squeeze tables into 80 columns
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Log ``name`` and, when it finishes, how long it took (Polygraphy's start/finish)."""
    console.print("[bold]%s[/bold] ..." % name)
    t0 = time.perf_counter()
    yield
    console.print("Finished %s in %.1f s" % (name, time.perf_counter() - t0))


def info(msg: str) -> None:
    console.print(msg)


def warn(msg: str) -> None:
    console.print("[yellow]warning:[/yellow] %s" % msg)
