"""Time the whole detection pipeline, stage by stage, for one or several models.

One iteration = preprocess (letterbox + blob) -> ``Runner.infer`` -> decode + NMS. Each stage is timed on
the host clock; the runner adds what its backend measured itself (e.g. CUDA-event H2D/compute/D2H on
TensorRT). ``e2e`` is the sum as the user sees it: frames in, detections out.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from edgekit.bench.frames import SYNTHETIC_HW, frames_for_model, load_frames, synthetic_frames
from edgekit.bench.interrupt import BenchStopped, signal_name, signal_of
from edgekit.bench.stats import summarize
from edgekit.errors import EdgekitError
from edgekit.log import info, progress_bar
from edgekit.power import PowerMeter, start_run
from edgekit.runtime import Runner, open_runner
from edgekit.runtime.loader import check_model_path
from edgekit.runtime.modelinfo import derived_from
from edgekit.runtime.threads import ThreadPlan, ort_threading
from edgekit.vision.pipeline import Pipeline, has_trt_nms, input_format, output_format

DEFAULT_IMGSZ = 640
MIN_INTERRUPTED_ITERATIONS = 3  # an interrupted model is reported from this many timed iterations on


@dataclass
class BenchConfig:
    backend: str = "auto"
    warmup: int = 10
    iterations: int = 100
    duration: Optional[float] = None  # seconds; when set, replaces iterations
    batch: Optional[int] = None  # default: the model's static batch, else 1
    source: Optional[str] = None  # images/video/synthetic://; default synthetic 1280x720 frames (a
    # --graph-letterbox model: the frame size its graph takes)
    threads: Optional[int] = None  # ONNX Runtime intra-op threads (default: its own choice)
    conf: float = 0.25
    iou: float = 0.7
    cuda_graph: bool = False  # TensorRT: replay inference as a CUDA graph
    power: bool = True  # sample power/temperatures/clocks during the timed run (edgekit.power)
    power_interval: int = 100  # ms
    idle: float = 0.0  # seconds of idle power baseline before the first model

    def validate(self) -> None:
        if self.warmup < 0:
            raise EdgekitError("--warmup %d: must be 0 or more" % self.warmup)
        if self.duration is None and self.iterations < 1:
            raise EdgekitError("--iterations %d: must be at least 1" % self.iterations)
        if self.duration is not None and self.duration <= 0:
            raise EdgekitError("--duration %s: must be positive seconds" % self.duration)
        if self.batch is not None and self.batch < 1:
            raise EdgekitError("--batch %d: must be at least 1" % self.batch)
        if self.power and not (10 <= self.power_interval <= 10000) or self.idle < 0:
            raise EdgekitError("--power-interval %s ms / --idle %s s: the interval must be 10-10000 ms and idle "
                               "0 or more seconds" % (self.power_interval, self.idle))


def input_geometry(runner: Runner, batch: Optional[int]) -> tuple:
    """(batch, (h, w)) to feed: static dims win; a conflicting --batch is a user error."""
    static = runner.static_batch
    if batch is not None and static is not None and batch != static:
        raise EdgekitError(
            "--batch %d does not match %s, exported with static batch %d: re-export with "
            "edgekit export --batch %d (or --dynamic)" % (batch, runner.path.name, static, batch)
        )
    b = batch or static or 1
    return b, runner.input_hw(DEFAULT_IMGSZ)


def bench_model(
    runner: Runner, frames: Sequence[np.ndarray], config: BenchConfig, progress: Optional[Progress] = None,
    power: Optional[PowerMeter] = None,
) -> Dict[str, Any]:
    """Benchmark one opened runner; returns a JSON-ready result with per-stage statistics."""
    batch, hw = input_geometry(runner, config.batch)
    pipe = Pipeline(runner, conf=config.conf, iou=config.iou)
    frames = frames_for_model(pipe, frames, from_source=config.source is not None)  # --graph-letterbox sizes
    samples: Dict[str, List[float]] = {}
    candidates: List[int] = []  # boxes entering NMS, per timed frame (they set the postprocess time)
    n = len(frames)

    def once(i: int, record: bool) -> None:
        chunk = [frames[(i * batch + k) % n] for k in range(batch)]
        t0 = time.perf_counter()
        blob, boxes = pipe.preprocess(chunk)
        t1 = time.perf_counter()
        outputs = runner.infer(blob)
        t2 = time.perf_counter()
        pipe.postprocess(outputs, boxes)
        t3 = time.perf_counter()
        if record and pipe.candidates is not None:
            candidates.extend(pipe.candidates)
        if record:
            stage = {"preprocess": t1 - t0, "inference": t2 - t1, "postprocess": t3 - t2, "e2e": t3 - t0}
            for key, seconds in stage.items():
                samples.setdefault(key, []).append(seconds * 1e3)
            for key, ms in runner.timings.items():  # backend's own split, e.g. h2d/compute/d2h
                if key != "inference":
                    samples.setdefault(key, []).append(ms)

    label = runner.path.name
    task = progress.add_task("warm-up %s" % label, total=max(config.warmup, 1)) if progress else None
    for i in range(config.warmup):
        once(i, record=False)
        if progress:
            progress.advance(task)
    if progress:
        total = config.duration if config.duration else config.iterations
        progress.update(task, description="bench %s" % label, total=total, completed=0)
    power_run = start_run(power)  # sampled from the first timed iteration to the last (power.close() on error)
    start = time.perf_counter()
    i = 0
    try:
        while True:
            once(i, record=True)
            i += 1
            elapsed = time.perf_counter() - start
            if progress:
                progress.update(task, completed=min(elapsed, config.duration) if config.duration else i)
            if (config.duration and elapsed >= config.duration) or (not config.duration and i >= config.iterations):
                break
    except KeyboardInterrupt as exc:  # Ctrl-C/SIGTERM: the iterations done so far, for bench_models to report
        power_run.stop()
        if i >= MIN_INTERRUPTED_ITERATIONS:
            partial = make_result(runner, config, batch, hw, i, {k: v[:i] for k, v in samples.items()},
                                  candidates[:i * batch])
            partial["interrupted"] = signal_name(signal_of(exc))
            if power is not None:
                partial["power"] = power_run.summary(i * batch)
            exc.partial = partial  # type: ignore[attr-defined]
        raise
    power_run.stop()
    result = make_result(runner, config, batch, hw, i, samples, candidates)
    if power is not None:
        result["power"] = power_run.summary(i * batch)
    return result


def make_result(runner: Runner, config: BenchConfig, batch: int, hw, iterations: int, samples,
                candidates: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    stages = {k: summarize(v) for k, v in samples.items()}
    info = runner.info
    get = info.get if info else (lambda key, default=None: default)
    return {
        "model": str(runner.path),
        "name": runner.path.stem,
        "backend": runner.backend,
        "device": runner.device,
        "clock": runner.clock,
        "threads": config.threads,
        "precision": get("precision", "fp32" if runner.input_dtype == np.float32 else str(runner.input_dtype)),
        "trained": info.trained if info else None,
        "weights_label": info.weights_label if info else None,
        "sha256": get("sha256"),
        "accuracy_gate": get("accuracy"),  # the manifest's accuracy gate (edgekit build/quantize --accuracy-data)
        "derived_from": derived_from(info),  # the source model's sha256: edgekit report's change column
        "pruned": bool(get("pruned", False)),
        "params": get("params"),
        "gflops": get("gflops"),
        # the tensor as it was fed: [B, H, W, 3] uint8 pixels (dynamic sizes: the size it ran at) or [B, 3, H, W]
        "input_shape": [batch] + [d if isinstance(d, int) else size for d, size in
                                  zip(list(runner.input_shape)[1:], (hw[0], hw[1], 3))]
        if runner.nhwc else [batch, 3, hw[0], hw[1]],
        "input_format": input_format(runner).kind,
        "trt_nms": has_trt_nms(runner),
        "output_format": output_format(runner),  # raw (host NMS), trt-nms or end2end (no NMS)
        "batch": batch,
        "iterations": iterations,
        "warmup": config.warmup,
        "source": config.source or "synthetic",
        "synthetic_hw": None if config.source else list(input_format(runner).frame_hw or SYNTHETIC_HW),
        "stages": stages,
        "fps": round(batch * 1e3 / stages["e2e"]["mean"], 2),
        "inference_fps": round(batch * 1e3 / stages["inference"]["mean"], 2),
        # mean boxes per frame entering NMS (None: NMS in the engine, or none at all for an end-to-end head); it
        # explains the postprocess time
        "candidates_per_frame": round(float(np.mean(candidates)), 1) if candidates else None,
        "config": asdict(config),
    }


def bench_models(models: Sequence[str], config: BenchConfig, show_progress: bool = True) -> List[Dict[str, Any]]:
    """Open, benchmark and close each model in turn, on the same frames. Ctrl-C (or SIGTERM, see
    ``edgekit.bench.interrupt``) raises :class:`BenchStopped` holding the models measured so far."""
    config.validate()
    for model in models:  # a missing or wrong file fails before anything is measured
        check_model_path(model)
    frames = load_frames(config.source) if config.source else synthetic_frames()
    results = []
    progress = progress_bar(TextColumn("{task.description}"), BarColumn(), TextColumn(
        "{task.completed:.0f}/{task.total:.0f}"), TimeElapsedColumn(), show=show_progress)
    power = PowerMeter.open(config.power_interval, config.idle) if config.power else None
    plan = ort_threading("bench", intra_threads=config.threads)  # inference alone: ONNX Runtime's threads spin
    try:
        with progress:
            for model in models:
                with open_runner(model, config.backend, threads=plan.threads, spinning=plan.spinning,
                                 cuda_graph=config.cuda_graph) as runner:
                    results.append(with_plan(bench_model(runner, frames, config, progress, power), plan))
                info("measured %s: %d iterations, e2e mean %.2f ms (FPS %.1f)" % (
                    runner.path.name, results[-1]["iterations"], results[-1]["stages"]["e2e"]["mean"],
                    results[-1]["fps"]))
    except KeyboardInterrupt as exc:
        partial = getattr(exc, "partial", None)
        raise BenchStopped(results + ([with_plan(partial, plan)] if partial else []), signal_of(exc)) from None
    finally:
        if power is not None:
            power.close()
    return results


def with_plan(result: Dict[str, Any], plan: ThreadPlan) -> Dict[str, Any]:
    """An ONNX Runtime result records its thread plan (threads, spinning and why); TensorRT has none."""
    if result.get("backend") == "onnxruntime":
        result["ort_threads"] = plan.as_dict()
    return result
