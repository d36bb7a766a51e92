"""What the user sees while TensorRT builds: one rich display with a spinner and elapsed time, a bar per
calibration, and (TensorRT >= 10) a bar per build phase from TensorRT's own IProgressMonitor."""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, Optional

import tensorrt as trt
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from edgekit.log import console


def new_progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


if hasattr(trt, "IProgressMonitor"):  # TensorRT >= 10

    class RichMonitor(trt.IProgressMonitor):
        """TensorRT's build phases as nested progress bars."""

        def __init__(self, progress: Progress) -> None:
            trt.IProgressMonitor.__init__(self)
            self.progress = progress
            self.tasks: Dict[str, Any] = {}
            self.depth: Dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: Optional[str], num_steps: int) -> None:
            depth = self.depth.get(parent_phase, -1) + 1 if parent_phase else 0
            self.depth[phase_name] = depth
            self.tasks[phase_name] = self.progress.add_task("  " * depth + phase_name, total=max(num_steps, 1))

        def step_complete(self, phase_name: str, step: int) -> bool:
            if phase_name in self.tasks:
                self.progress.update(self.tasks[phase_name], completed=step + 1)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            task = self.tasks.pop(phase_name, None)
            if task is not None:
                self.progress.remove_task(task)


@contextlib.contextmanager
def build_display(config: Any, label: str) -> Iterator[Progress]:
    """A live display for the build; the calibrator adds its own bar to the same display."""
    progress = new_progress()
    with progress:
        progress.add_task("TensorRT building %s" % label, total=None)
        if hasattr(trt, "IProgressMonitor"):
            config.progress_monitor = RichMonitor(progress)
        yield progress
