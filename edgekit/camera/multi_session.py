"""Assemble and run a multi-source camera session: one capture per source, one runner, outputs per stream, the web
page and the window as mosaics of every stream."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from edgekit.camera.analytics import StreamAnalytics, check_frame
from edgekit.camera.loop import CameraConfig, engine_fps
from edgekit.camera.multi import MultiLoop, StreamSinks, announce, batch_size, multi_bottleneck
from edgekit.camera.mux import Stream, default_timeout
from edgekit.camera.signals import restore_signals, stop_on_signals
from edgekit.camera.stats import JsonlLog, rss_mb
from edgekit.errors import EdgekitError
from edgekit.log import info, warn
from edgekit.power import PowerMeter, start_run
from edgekit.runtime import open_runner
from edgekit.video.capture import Capture
from edgekit.video.outputs import Output, Recorder
from edgekit.video.sources import SourceError, make_source
from edgekit.video.uri import SourceOptions, SourceSpec, parse_uri
from edgekit.vision.pipeline import input_format


def source_key(spec: SourceSpec) -> str:
    """What makes two sources the same: kind, place (a file's resolved path) and parameters."""
    location = str(Path(spec.location).resolve()) if spec.kind == "file" else spec.location
    return "%s|%s|%s" % (spec.kind, location, sorted(spec.params.items()))


def check_sources(sources: List[str]) -> List[SourceSpec]:
    """Parse every source; the same source twice is refused (two readers of one camera fight over it)."""
    specs = [parse_uri(s) for s in sources]
    seen: Dict[str, str] = {}
    for uri, spec in zip(sources, specs):
        key = source_key(spec)
        if key in seen:
            hint = " (give each synthetic source its own ?seed=N)" if spec.kind == "synthetic" else ""
            same = uri if seen[key] == uri else "%s (as %s and %s)" % (spec.location, seen[key], uri)
            raise EdgekitError("%s is given twice: give each source once%s" % (same, hint))
        seen[key] = uri
    return specs


def stream_path(path: str, index: int) -> str:
    """--record out.mp4 / --log run.jsonl with several sources: out-0.mp4, out-1.mp4, ... (one per stream)."""
    p = Path(path)
    return str(p.with_name("%s-%d%s" % (p.stem, index, p.suffix)))


def open_captures(specs: List[SourceSpec], options: SourceOptions, max_retries: int) -> List[Capture]:
    captures = []
    try:
        for spec in specs:
            try:
                source = make_source(spec, options)
            except SourceError as exc:
                raise EdgekitError(str(exc)) from exc
            capture = Capture(source, live=(spec.live and not source.on_demand) or options.realtime,
                              loop=options.loop, on_event=warn, max_retries=max_retries)
            captures.append(capture)
            capture.open()  # a source that cannot be opened fails before any output or log file exists
    except BaseException:
        for capture in captures:
            capture.stop()
        raise
    return captures


def probe_busy(captures: List[Capture]) -> float:
    """Cores' worth of work the live sources' capture threads will do beside inference, from one frame read from
    each now (a camera's first frame, gone anyway); sources read on demand (files, synthetic://?fps=0) cost 0. A read
    that waits on the network is counted up to half a frame period: an estimate on the safe side."""
    from edgekit.runtime.threads import capture_load

    busy = 0.0
    for capture in captures:
        fps = capture.paced_fps
        if not fps or getattr(capture.source, "realtime", False):
            continue
        t0 = time.perf_counter()
        try:
            capture.source.read()
        except Exception:  # a failing first read is the capture thread's to report
            continue
        ms = (time.perf_counter() - t0 - capture.source.last_wait) * 1e3
        busy += capture_load(fps, min(max(ms, 0.0), 500.0 / fps))
    return busy


@contextlib.contextmanager
def camera_runner(req, captures: List[Capture]):
    """The runner for a camera loop over these sources, with ONNX Runtime's threads planned for what runs beside
    inference (edgekit.runtime.threads): yields (runner, plan)."""
    from edgekit.runtime import ort_threading
    from edgekit.runtime.loader import runs_on_tensorrt

    if runs_on_tensorrt(req.model, req.backend):  # no thread pool to plan: no probe reads, no look at the load
        with open_runner(req.model, req.backend, threads=req.threads) as runner:
            yield runner, None
        return
    plan = ort_threading("camera", extra_threads=probe_busy(captures), intra_threads=req.threads)
    with open_runner(req.model, req.backend, threads=plan.threads, spinning=plan.spinning) as runner:
        info(plan.line())
        yield runner, plan


def check_letterbox_sizes(runner, captures: List[Capture]) -> None:
    """A --graph-letterbox model takes one frame size: every source must deliver it."""
    fmt = input_format(runner)
    if fmt.kind != "uint8-letterbox":
        return
    fh, fw = fmt.frame_hw or (0, 0)
    wrong = [(c.source.name, size) for c in captures for size in [c.source.frame_size()]
             if size is not None and size != (fw, fh)]
    if wrong:
        raise EdgekitError("%s letterboxes %dx%d frames in its graph; %s: give every source %dx%d frames or use a "
                           "model exported without --graph-letterbox" % (
                               runner.path.name, fw, fh, ", ".join("%s is %dx%d" % (n, s[0], s[1]) for n, s in wrong),
                               fw, fh))


def multi_session(req, config: CameraConfig, make_shared) -> Dict[str, Any]:
    """``req`` is a CameraRequest with several ``sources`` (or a static batch-B model); ``make_shared(runner,
    names, power)`` opens the web view and the window mosaic (edgekit.camera.session)."""
    analytics, mux_timeout = req.analytics, req.mux_timeout
    specs = check_sources(req.sources)
    problem = analytics.check(len(specs))
    if problem:
        raise EdgekitError(problem)
    captures = open_captures(specs, SourceOptions(**req.options), req.max_retries)
    streams = [Stream(i, c.source.name, c) for i, c in enumerate(captures)]
    sinks = [StreamSinks() for _ in streams]
    shared: List[Output] = []
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [c.stop() for c in captures])
        stack.callback(lambda: [o.close() for o in shared + [o for s in sinks for o in s.outputs]])
        stack.callback(lambda: [s.log.close() for s in sinks if s.log])
        for stream in streams:
            if analytics.counting:
                check_frame(analytics, stream.index, stream.name, stream.capture.source.frame_size())
        power = PowerMeter.open(req.power_interval, req.idle) if req.power else None
        if power is not None:
            stack.callback(power.close)
        runner, plan = stack.enter_context(camera_runner(req, captures))
        from edgekit.camera.session import model_label

        config.label = model_label(runner)
        batch = batch_size(runner, len(streams))
        check_letterbox_sizes(runner, captures)
        names = runner.info.names if runner.info else {}
        if analytics.enabled:
            from edgekit.vision.track import tracking_problem

            problem = tracking_problem(names, analytics.track_classes)
            if problem:
                raise EdgekitError(problem)
        for stream, sink in zip(streams, sinks):
            if analytics.enabled:
                rate = stream.capture.paced_fps or req.options.get("fps") or 30.0
                sink.analytics = StreamAnalytics(analytics, stream.index, names, rate, stream.name,
                                                 stream.capture.source.frame_size() is not None)
            if req.record:
                source = stream.capture.source
                fps, note = source.frame_rate()
                sink.outputs.append(Recorder(stream_path(req.record, stream.index), fps, note, on_event=warn))
            if req.log:
                sink.log = JsonlLog(stream_path(req.log, stream.index), on_event=warn)
        shared.extend(make_shared(runner, [s.name for s in streams], power))
        timeout = mux_timeout if mux_timeout is not None else default_timeout(captures)
        announce(runner, streams, batch, timeout)
        loop = MultiLoop(runner, streams, sinks, shared, config, timeout, on_event=warn)
        summary = run_multi(loop, captures, power)
        summary.update(model=str(runner.path), model_name=runner.path.stem, backend=runner.backend,
                       device=runner.device, clock=runner.clock, label=config.label,
                       source="%d sources" % len(streams), trained=runner.info.trained if runner.info else None,
                       log=[s.log.path for s in sinks if s.log] or None,
                       record=[_record(o) for s in sinks for o in s.outputs if isinstance(o, Recorder)] or None,
                       output_failures=_failures(sinks), ort_threads=plan.as_dict() if plan else None)
    return summary


def run_multi(loop: MultiLoop, captures: List[Capture], power=None, warmup: float = 0.0,
              share: float = 0.9) -> Dict[str, Any]:
    """Run the loop until it stops (Ctrl-C/SIGTERM between batches); its summary. ``warmup``: seconds from the
    start whose numbers are dropped (edgekit streams); ``share``: the rate share the bottleneck line calls
    keeping up with the sources."""
    rss_start, fps_engine, previous, power_run = rss_mb(), None, None, None
    start = time.perf_counter()
    try:
        if loop.config.engine_iters:
            info("measuring engine-only speed (%d inference runs at batch %d) before the loop" % (
                loop.config.engine_iters, loop.batch or len(captures)))
        previous = stop_on_signals(loop.stop, loop.stop_event)
        fps_engine = engine_fps(loop.runner, loop.pipe, loop.config.engine_iters, warmup=3,
                                batch=loop.batch or len(captures))
        start = time.perf_counter()
        power_run = start_run(power)
        for capture in captures:
            capture.start()
        loop.mux.start()
        if warmup:
            loop.measure_from = time.perf_counter() + warmup
        loop.run()
    finally:
        duration = time.perf_counter() - (loop.measured_at or start)
        if power_run is not None:
            power_run.stop()
        for capture in captures:
            capture.stop()
        restore_signals(previous)
    summary = loop.summary(duration)
    summary.update(engine_fps=round(fps_engine, 2) if fps_engine else None,
                   loop_vs_engine=round(summary["fps"] / fps_engine, 3) if fps_engine else None,
                   captured=sum(c.captured for c in captures), dropped=sum(c.dropped for c in captures),
                   bad_frames=sum(c.bad_frames for c in captures), bad_files=[],
                   reconnects=sum(c.reconnects for c in captures), failures=sum(c.failures for c in captures),
                   source_failed=_all_failed(loop), events=[e for c in captures for e in c.events][-50:],
                   rss_mb={"start": round(rss_start, 1), "end": round(rss_mb(), 1)}, pipelined=loop.pipelined,
                   source_fps=None, input_format=loop.pipe.format.kind, trt_nms=loop.pipe.nms,
                   output_format=loop.pipe.output)
    summary["bottleneck"] = multi_bottleneck(summary, share)
    if power is not None and power_run is not None:
        summary["power"] = power_run.summary(summary["frames"])
    return summary


def _all_failed(loop: MultiLoop) -> Optional[str]:
    """The run fails when every source was given up; a run where some lived reports the others per stream."""
    failed = [s.failed for s in loop.streams if s.failed]
    return "every source was given up: " + "; ".join(failed) if failed and len(failed) == len(loop.streams) else None


def _record(out: Recorder) -> Dict[str, Any]:
    return {"path": str(out.path), "frames": out.frames, "fps": round(out.fps, 3) if out.fps else None,
            "written": out.failed is None and out.frames > 0 and out.path.is_file(), "failed": out.failed,
            "stopped": out.stopped_reason, "line": out.describe()}


def _failures(sinks: List[StreamSinks]) -> List[str]:
    from edgekit.camera.session import output_failures

    return [f for s in sinks for f in output_failures(s.outputs, s.log)]


class MosaicWindow(Output):
    """One desktop window showing every stream as a tile (edgekit.video.mosaic); 'q' or Esc stops the run."""

    name = "window"

    def __init__(self, title: str, names: List[str]) -> None:
        from edgekit.video.mosaic import Mosaic
        from edgekit.video.outputs import Window

        self.window = Window(title)
        self.mosaic = Mosaic(len(names), labels=["%d %s" % (i, n) for i, n in enumerate(names)])

    def update_tile(self, index: int, image) -> None:
        self.mosaic.update(index, image)

    def show(self) -> None:
        self.window.write(self.mosaic.image())

    def write(self, frame, index: Optional[int] = None) -> None:
        pass  # tiles come through update_tile

    @property
    def wants_stop(self) -> bool:
        return self.window.wants_stop

    def close(self) -> None:
        self.window.close()


def show_window(req) -> bool:
    return req.display if req.display is not None else bool(os.environ.get("DISPLAY"))
