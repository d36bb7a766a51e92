"""How many streams this box holds: K sources of one size and rate through the real multi-source loop, K raised
until a stream falls below 95% of its rate or its p99 end-to-end latency passes a limit.

Each step runs the camera's own loop (capture thread per source, muxer, one batch per inference, postprocess,
drawing; no outputs) for a warm-up whose numbers are dropped, then for the measured seconds. The sources are
synthetic by default (``synthetic://?width=W&height=H&fps=F&seed=k``: every stream a different scene), a file
played at its own rate K times over, or the cameras given (K up to their number).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from edgekit.camera.loop import CameraConfig
from edgekit.camera.multi import MultiLoop, StreamSinks
from edgekit.camera.multi_session import camera_runner, open_captures, run_multi
from edgekit.camera.mux import Stream, default_timeout
from edgekit.camera.signals import INTERRUPTED
from edgekit.camera.stats import rss_mb
from edgekit.errors import EdgekitError
from edgekit.log import info
from edgekit.video.uri import SourceOptions, parse_uri

RATE_SHARE = 0.95  # a stream below 95% of its source's rate is not held


@dataclass
class RunnerRequest:
    """What opens the runner for each step (as edgekit camera opens it)."""

    model: str
    backend: str = "auto"
    threads: Optional[int] = None


@dataclass
class CapacityConfig:
    width: int = 1920
    height: int = 1080
    fps: float = 30.0
    sources: List[str] = field(default_factory=list)  # none: synthetic; one: K copies; several: the first K
    max_streams: int = 16
    seconds: float = 10.0
    warmup: float = 2.0
    max_p99_ms: float = 200.0
    conf: float = 0.25
    iou: float = 0.7
    mux_timeout: Optional[float] = None
    max_retries: int = 2


def step_sources(config: CapacityConfig, k: int) -> List[str]:
    if not config.sources:
        return ["synthetic://?width=%d&height=%d&fps=%g&seed=%d" % (config.width, config.height, config.fps, i + 1)
                for i in range(k)]
    if len(config.sources) == 1:
        return config.sources * k
    return config.sources[:k]


def most_streams(config: CapacityConfig, batch: Optional[int]) -> int:
    limit = config.max_streams if len(config.sources) <= 1 else min(config.max_streams, len(config.sources))
    return min(limit, batch) if batch else limit


def run_step(model: RunnerRequest, config: CapacityConfig, k: int) -> Dict[str, Any]:
    """One K: the loop's summary reduced to what decides whether the box holds K streams. The runner is opened
    for each K as the camera opens it, with ONNX Runtime's threads planned for K sources' capture threads."""
    uris = step_sources(config, k)
    # a file plays at its own rate, looped, as a camera would deliver it
    options = SourceOptions(width=config.width, height=config.height, fps=config.fps,
                            realtime=any(parse_uri(u).kind == "file" for u in uris), loop=True)
    captures = open_captures([parse_uri(u) for u in uris], options, config.max_retries)
    try:
        with camera_runner(model, captures) as (runner, plan):
            streams = [Stream(i, c.source.name, c) for i, c in enumerate(captures)]
            loop_config = CameraConfig(conf=config.conf, iou=config.iou, duration=config.warmup + config.seconds,
                                       engine_iters=0, label=runner.path.stem)
            timeout = config.mux_timeout if config.mux_timeout is not None else default_timeout(captures)
            loop = MultiLoop(runner, streams, [StreamSinks() for _ in streams], [], loop_config, timeout)
            # the bottleneck line keeps up with the sources at the verdict's mark
            summary = run_multi(loop, captures, warmup=config.warmup, share=RATE_SHARE)
    finally:
        for capture in captures:  # also when the runner did not open
            capture.stop()
    if loop.stopped_by in (INTERRUPTED, "SIGTERM"):  # a step cut short says nothing about K: not kept
        raise StepStopped(signal.SIGINT if loop.stopped_by == INTERRUPTED else signal.SIGTERM)
    step = judge(summary, config, k, loop.batch)
    step["ort_threads"] = plan.as_dict() if plan else None
    return step


def judge(summary: Dict[str, Any], config: CapacityConfig, k: int, batch: Optional[int]) -> Dict[str, Any]:
    streams = summary["streams"]
    rates = [s["source_fps"] or config.fps for s in streams]
    fps = [s["fps"] for s in streams]
    p99 = [s["e2e_p99"] if s["e2e_p99"] is not None else float("inf") for s in streams]
    slow = [s["index"] for s, f, r in zip(streams, fps, rates) if f < RATE_SHARE * r]
    late = [s["index"] for s, p in zip(streams, p99) if p > config.max_p99_ms]
    why = []
    if slow:
        why.append("stream %s below %d%% of %g FPS (%s)" % (",".join(map(str, slow)), RATE_SHARE * 100, rates[0],
                                                            ", ".join("%.1f" % fps[i] for i in slow)))
    if late:
        why.append("stream %s p99 e2e over %g ms (%s)" % (",".join(map(str, late)), config.max_p99_ms,
                                                          ", ".join("%.0f" % p99[i] for i in late)))
    stages = summary.get("stages") or {}
    return {"streams": k, "held": not why, "why": "; ".join(why) or None, "batch": batch or k,
            "fps_min": round(min(fps), 2), "fps_mean": round(sum(fps) / len(fps), 2), "fps_total": summary["fps"],
            "e2e_p50_max": round(max(s["e2e_p50"] or 0.0 for s in streams), 2),
            "e2e_p99_max": round(max(p99), 2), "dropped": sum(s["dropped"] for s in streams),
            "inference_ms": round(stages.get("inference", {}).get("mean", 0.0), 3),
            "mux_wait_ms": round(stages.get("mux_wait", {}).get("mean", 0.0), 3),
            "mean_frames": summary["batch"]["mean_frames"], "padded": summary["batch"]["padded"],
            "limited_by": summary["bottleneck"]["stage"], "limited_line": summary["bottleneck"]["line"],
            "rss_mb": round(rss_mb(), 1),
            "per_stream": [{"index": s["index"], "fps": s["fps"], "e2e_p50": s["e2e_p50"], "e2e_p99": s["e2e_p99"],
                            "dropped": s["dropped"]} for s in streams]}


def find_capacity(model: RunnerRequest, static: Optional[int], config: CapacityConfig) -> Dict[str, Any]:
    """Raise K from 1 until a step fails (or the model's static batch, --max-streams or the cameras given end)."""
    top = most_streams(config, static)
    steps: List[Dict[str, Any]] = []
    for k in range(1, top + 1):
        info("%d stream(s) of %dx%d at %g FPS: %.0f s warm-up + %.0f s" % (
            k, config.width, config.height, config.fps, config.warmup, config.seconds))
        try:
            step = run_step(model, config, k)
        except StepStopped as exc:  # what finished is kept, saved and shown by the caller
            return capacity_result(steps, "signal", signum=exc.signum)
        except EdgekitError as exc:
            return capacity_result(steps, "error", error="K=%d: %s" % (k, exc))
        steps.append(step)
        info("  %s: min %.1f FPS per stream, p99 e2e %.0f ms%s" % (
            "held" if step["held"] else "not held", step["fps_min"], step["e2e_p99_max"],
            "" if step["held"] else " (%s)" % step["why"]))
        if not step["held"]:
            break
    return capacity_result(steps, stop_reason(steps, top, static, config))


class StepStopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)


def capacity_result(steps: List[Dict[str, Any]], stopped_by: str, signum: Optional[int] = None,
                    error: Optional[str] = None) -> Dict[str, Any]:
    """The steps that finished, the most streams held in a row from K=1, and what stopped the search (a signal or
    a later step's error among them)."""
    held = 0
    for step in steps:
        if not step["held"]:
            break
        held = step["streams"]
    return {"held": held, "steps": steps, "stopped_by": stopped_by, "signal": signum, "error": error}


def stop_reason(steps: List[Dict[str, Any]], top: int, static: Optional[int], config: CapacityConfig) -> str:
    if steps and not steps[-1]["held"]:
        return "failed"
    if static and top == static:
        return "static batch"
    if len(config.sources) > 1 and top == len(config.sources):
        return "sources"
    return "max streams"


def headline(result: Dict[str, Any]) -> str:
    what = "%dx%d at %g FPS with %s (batch %s, %s, %s)" % (
        result["width"], result["height"], result["fps"], result["model_name"], result["batch"], result["backend"],
        result["precision"])
    k, stop = result["held"], result["stopped_by"]
    if stop in ("signal", "error"):
        cut = "Ctrl-C (SIGINT)" if result.get("signal") == signal.SIGINT else (
            "SIGTERM" if result.get("signal") else "an error (%s)" % result.get("error"))
        if not result["steps"]:
            return "no step of %s finished: stopped by %s" % (what, cut)
        return "this box holds at least %d stream%s of %s (stopped by %s after K=%d)" % (
            k, "s" if k != 1 else "", what, cut, result["steps"][-1]["streams"])
    if k == 0:
        return "this box holds no stream of %s: one stream already fails (%s)" % (what, result["steps"][0]["why"])
    if stop == "failed":
        return "this box holds %d stream%s of %s" % (k, "s" if k > 1 else "", what)
    more = {"static batch": "the model's static batch: export with --batch N or --dynamic to try more",
            "sources": "every camera given was used", "max streams": "--max-streams: raise it to try more"}[stop]
    return "this box holds at least %d stream%s of %s (stopped by %s)" % (k, "s" if k > 1 else "", what, more)


def check_config(config: CapacityConfig) -> None:
    if config.sources and len(config.sources) > 1 and len(set(config.sources)) != len(config.sources):
        raise EdgekitError("a camera is given twice in --source: give each once")
