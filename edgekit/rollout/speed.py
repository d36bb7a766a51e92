"""The speed of a candidate model beside the current one on this box, measured fairly: interleaved rounds.

Both models are opened side by side and timed in alternating rounds (A B, B A, A B, ...) with edgekit bench's own
loop (:func:`edgekit.bench.core.bench_model`: preprocess, inference, decode + NMS) on the same frames, so the
clocks, the heat and other processes' load of the minutes measured fall on both alike. A model's FPS is its frames
over its whole end-to-end time, all rounds together; each round's FPS is kept to show the spread.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from edgekit.errors import EdgekitError

if TYPE_CHECKING:
    from edgekit.runtime.threads import ThreadPlan

ROUND_WARMUP = 2  # untimed iterations at the start of every later round: the other model ran in between


class ModelFailed(EdgekitError):
    """One of the models measured cannot run here (``path``: which)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__("%s cannot run here: %s" % (path, message))
        self.path = str(path)


@dataclass
class SpeedConfig:
    iterations: int = 100  # timed iterations per model, all rounds together
    rounds: int = 5
    warmup: int = 10  # untimed iterations before a model's first round
    threads: Optional[int] = None  # ONNX Runtime intra-op threads (None: one per physical core)
    source: Optional[str] = None  # frames: an image, a folder, a video or synthetic:// (default: bench's 720p)

    def validate(self) -> None:
        if self.iterations < 1 or self.rounds < 1:
            raise EdgekitError("--iterations %d / --rounds %d: both must be at least 1" % (self.iterations,
                                                                                        self.rounds))
        if self.rounds > self.iterations:
            raise EdgekitError("--rounds %d is more than --iterations %d: every round times at least one iteration "
                               "of each model" % (self.rounds, self.iterations))
        if self.warmup < 0:
            raise EdgekitError("--warmup %d: must be 0 or more" % self.warmup)


def open_model(path: str, plan: ThreadPlan):
    """A runner for one model file, as edgekit bench opens it (tests swap this for a stand-in engine)."""
    from edgekit.runtime import open_runner

    return open_runner(path, "auto", threads=plan.threads, spinning=plan.spinning)


def round_sizes(iterations: int, rounds: int) -> List[int]:
    base, extra = divmod(iterations, rounds)
    return [base + (1 if r < extra else 0) for r in range(rounds)]


def measure(paths: Sequence[str], config: SpeedConfig) -> List[Dict[str, Any]]:
    """Time each model in ``paths`` in interleaved rounds on the same frames; one result per path (its FPS, each
    round's FPS, the stage means). A model that fails to open or run raises :class:`ModelFailed`."""
    from edgekit.bench.core import BenchConfig  # bench, cv2 and numpy only when measuring: edgekit --help stays light
    from edgekit.bench.frames import load_frames, synthetic_frames
    from edgekit.runtime.threads import ort_threading

    config.validate()
    frames = load_frames(config.source) if config.source else synthetic_frames()
    plan = ort_threading("bench", intra_threads=config.threads)  # inference alone, as edgekit bench
    rounds: List[List[Dict[str, Any]]] = [[] for _ in paths]
    with contextlib.ExitStack() as stack:
        runners = []
        for path in paths:
            runners.append(stack.enter_context(_opened(path, plan)))
        for r, iterations in enumerate(round_sizes(config.iterations, config.rounds)):
            order = list(range(len(runners)))
            for i in order if r % 2 == 0 else order[::-1]:
                bench = BenchConfig(warmup=config.warmup if r == 0 else ROUND_WARMUP, iterations=iterations,
                                    source=config.source, threads=plan.threads, power=False)
                rounds[i].append(_run(paths[i], runners[i], frames, bench))
    return [_combine(result, plan) for result in rounds]


@contextlib.contextmanager
def _opened(path: str, plan: ThreadPlan):
    try:
        runner = open_model(path, plan)
    except EdgekitError as exc:
        raise ModelFailed(path, str(exc)) from exc
    with runner:
        yield runner


def _run(path: str, runner, frames, bench) -> Dict[str, Any]:
    from edgekit.bench.core import bench_model

    try:
        return bench_model(runner, frames, bench)
    except EdgekitError as exc:
        raise ModelFailed(path, str(exc)) from exc


def _mean(results: List[Dict[str, Any]], stage: str) -> float:
    counts = [r["stages"][stage]["count"] for r in results]
    return sum(r["stages"][stage]["mean"] * n for r, n in zip(results, counts)) / sum(counts)


def _combine(results: List[Dict[str, Any]], plan: ThreadPlan) -> Dict[str, Any]:
    first = results[0]
    batch = first["batch"]
    e2e, inference = _mean(results, "e2e"), _mean(results, "inference")
    out = {k: first[k] for k in ("model", "backend", "device", "precision", "sha256", "batch", "input_shape",
                                 "source", "synthetic_hw")}
    out.update(fps=round(batch * 1e3 / e2e, 2), inference_fps=round(batch * 1e3 / inference, 2),
               e2e_ms=round(e2e, 3), inference_ms=round(inference, 3),
               iterations=sum(r["iterations"] for r in results), rounds_fps=[r["fps"] for r in results],
               stages_ms={k: round(_mean(results, k), 3) for k in first["stages"]})
    if out["backend"] == "onnxruntime":
        out["ort_threads"] = plan.as_dict()
    return out


def frames_label(config: SpeedConfig) -> str:
    from edgekit.bench.frames import SYNTHETIC_HW

    if config.source:
        return str(config.source)
    return "synthetic %dx%d" % (SYNTHETIC_HW[1], SYNTHETIC_HW[0])
