"""Assemble one camera session from a request: runner, capture, outputs, log; run it; return the summary."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from edgekit.camera.analytics import AnalyticsConfig, StreamAnalytics, check_frame
from edgekit.camera.loop import CameraConfig, run_camera
from edgekit.camera.metrics import attach as attach_metrics
from edgekit.camera.multi_session import camera_runner
from edgekit.camera.stats import JsonlLog
from edgekit.errors import EdgekitError
from edgekit.log import info, warn
from edgekit.power import PowerMeter
from edgekit.runtime.identity import model_identity
from edgekit.sysinfo import jetson_info
from edgekit.video.capture import DEFAULT_RETRIES, Capture
from edgekit.video.outputs import Output, Recorder, Window
from edgekit.video.sources import SourceError, make_source
from edgekit.video.uri import SourceOptions, SourceSpec, parse_uri
from edgekit.video.web import WebStream
from edgekit.vision.pipeline import FrameSizeError, input_format


@dataclass
class CameraRequest:
    source: str  # the first (or only) source
    model: str
    backend: str = "auto"
    threads: Optional[int] = None
    options: Dict[str, Any] = field(default_factory=dict)
    conf: float = 0.25
    iou: float = 0.7
    display: Optional[bool] = None  # None: when a display exists
    record: Optional[str] = None
    serve: Optional[int] = None
    host: str = "127.0.0.1"
    log: Optional[str] = None
    duration: Optional[float] = None
    frames: Optional[int] = None
    pipeline: bool = True
    engine_iters: int = 30
    capture_timeout: float = 2.0
    max_retries: int = DEFAULT_RETRIES
    power: bool = True  # sample power/temperatures/clocks during the loop (edgekit.power)
    power_interval: int = 100  # ms
    idle: float = 0.0  # seconds of idle power baseline before the loop
    sources: List[str] = field(default_factory=list)  # several: one batch per frame of each (multi_session)
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)  # --track, --count-line, --count-zone
    mux_timeout: Optional[float] = None  # seconds; None: one frame period of the fastest source


def model_label(runner) -> str:
    info_ = runner.info
    precision = info_.get("precision", "fp32") if info_ else "fp32"
    label = "%s %s %s/%s" % (runner.path.stem, precision, runner.backend,
                             runner.device.replace("ExecutionProvider", "").lower())
    return label + (" (untrained)" if info_ and info_.trained is False else "")


def runner_identity(runner) -> Dict[str, Any]:
    """sha256, name, version, path, precision, backend of the model file the runner opened."""
    return model_identity(runner.path, runner.backend, runner.info.get("precision") if runner.info else None)


def camera_config(req: CameraRequest, label: str = "") -> CameraConfig:
    """The loop's settings from a request (one source or several)."""
    jetson = jetson_info()
    return CameraConfig(conf=req.conf, iou=req.iou, duration=req.duration, frames=req.frames, pipeline=req.pipeline,
                        capture_timeout=req.capture_timeout, engine_iters=req.engine_iters, label=label,
                        power_mode=jetson.get("power_mode") if jetson else None)


def camera_session(req: CameraRequest) -> Dict[str, Any]:
    if req.analytics.enabled:
        from edgekit.vision.track import check_tracking_available

        check_tracking_available()  # before anything opens
    if len(req.sources) > 1 or _manifest_batch(req.model) > 1:  # a static batch-B model pads one source's frames
        return _multi(req)
    spec = parse_uri(req.source)
    options = SourceOptions(**req.options)
    try:
        source = make_source(spec, options)
    except SourceError as exc:
        raise EdgekitError(str(exc)) from exc
    capture = Capture(source, live=(spec.live and not source.on_demand) or options.realtime, loop=options.loop,
                      on_event=warn, max_retries=req.max_retries)
    capture.open()  # a source that cannot be opened fails before any output or log file exists
    if req.analytics.counting:
        try:
            check_frame(req.analytics, 0, source.name, source.frame_size())
        except BaseException:
            capture.stop()
            raise
    outputs: List[Output] = []
    log = None
    power = PowerMeter.open(req.power_interval, req.idle) if req.power else None  # idle: before the model loads
    with contextlib.ExitStack() as stack:
        if power is not None:
            stack.callback(power.close)
        runner, plan = stack.enter_context(camera_runner(req, [capture]))
        try:
            analytics = _analytics(req, runner, capture)
            _check_frame_size(runner, spec, source)
            show = req.display if req.display is not None else bool(os.environ.get("DISPLAY"))
            if show:
                outputs.append(Window("edgekit: %s" % req.source))
            if req.record:
                fps, note = source.frame_rate()
                outputs.append(Recorder(req.record, fps, note, on_event=warn))
            if req.serve is not None:
                web = WebStream(req.serve, req.host)
                outputs.append(web)
                attach_metrics(web, runner_identity(runner), power)
                info("serving the live stream at http://%s:%d/" % (
                    "localhost" if req.host in ("0.0.0.0", "") else req.host, web.port))
            log = JsonlLog(req.log, on_event=warn) if req.log else None
        except BaseException:
            capture.stop()
            for out in outputs:
                out.close()
            raise
        config = camera_config(req, model_label(runner))
        info("running %s on %s (Ctrl-C to stop)" % (config.label, source.name))
        try:
            summary = run_camera(runner, capture, outputs, config, log, on_event=warn, power=power,
                                 analytics=analytics)
        except FrameSizeError as exc:  # advice that fits this source (the pipeline does not know it)
            raise FrameSizeError(exc.model, exc.want, exc.got, frame_size_advice(spec, exc.want, exc.got)) from None
        summary.update(model=str(runner.path), model_name=runner.path.stem, source=source.name,
                       backend=runner.backend, device=runner.device, clock=runner.clock, label=config.label,
                       trained=runner.info.trained if runner.info else None, log=req.log,
                       record=_record_info(outputs), output_failures=output_failures(outputs, log),
                       ort_threads=plan.as_dict() if plan else None)
    return summary


def _check_frame_size(runner, spec: SourceSpec, source) -> None:
    """A --graph-letterbox model and a source whose frame size is known to differ: refused before any output."""
    fmt = input_format(runner)
    size = source.frame_size()
    if fmt.kind == "uint8-letterbox" and fmt.frame_hw and size and size != fmt.frame_hw[::-1]:
        want = (fmt.frame_hw[1], fmt.frame_hw[0])
        raise FrameSizeError(runner.path.name, want, size, frame_size_advice(spec, want, size))


def _manifest_batch(model: str) -> int:
    """The static batch an edgekit manifest records for this model (1 when none says more)."""
    from edgekit.manifest import read_manifest

    try:
        manifest = read_manifest(model) or {}
    except Exception:  # a manifest that cannot be read is the runner's to report
        return 1
    batch = manifest.get("batch")
    return int(batch) if isinstance(batch, int) and not manifest.get("dynamic") else 1


def _analytics(req: CameraRequest, runner, capture: Capture) -> Optional[StreamAnalytics]:
    """The track/count stages of a single source, after the model said it has classes to track."""
    if not req.analytics.enabled:
        return None
    from edgekit.vision.track import tracking_problem

    names = runner.info.names if runner.info else {}
    problem = tracking_problem(names, req.analytics.track_classes)
    if problem:
        raise EdgekitError(problem)
    rate = capture.paced_fps or req.options.get("fps") or 30.0
    return StreamAnalytics(req.analytics, 0, names, rate, capture.source.name,
                           capture.source.frame_size() is not None)


def _multi(req: CameraRequest) -> Dict[str, Any]:
    from edgekit.camera.multi_session import multi_session, show_window

    def make_shared(runner, names: List[str], power=None) -> List[Output]:
        shared: List[Output] = []
        if show_window(req):
            from edgekit.camera.multi_session import MosaicWindow

            shared.append(MosaicWindow("edgekit: %d sources" % len(names), names))
        if req.serve is not None:
            web = WebStream(req.serve, req.host, streams=names)
            shared.append(web)
            attach_metrics(web, runner_identity(runner), power)
            info("serving the live streams at http://%s:%d/" % (
                "localhost" if req.host in ("0.0.0.0", "") else req.host, web.port))
        return shared

    return multi_session(req, camera_config(req), make_shared)  # it labels the model once it is open


def _record_info(outputs: List[Output]) -> Optional[Dict[str, Any]]:
    for out in outputs:
        if isinstance(out, Recorder):
            return {"path": str(out.path), "frames": out.frames, "fps": round(out.fps, 3) if out.fps else None,
                    "rate": out.rate_note, "repeated": out.repeated, "stopped": out.stopped_reason,
                    "written": out.failed is None and out.frames > 0 and out.path.is_file(),
                    "failed": out.failed, "line": out.describe()}
    return None


def output_failures(outputs: List[Output], log: Optional[JsonlLog]) -> List[str]:
    """What was asked for and not (fully) written: a frame log or a recording that failed or stopped early."""
    failures = [log.failed] if log is not None and log.failed else []
    for out in outputs:
        if isinstance(out, Recorder) and (out.failed or out.stopped_reason):
            failures.append("the recording %s (%s)" % (out.path, "no file was written: %s" % (
                out.stopped_reason or "is the disk full?") if out.failed else "stopped after %d frames: %s" % (
                out.frames, out.stopped_reason)))
    return failures


def frame_size_advice(spec: SourceSpec, want: Tuple[int, int], got: Tuple[int, int]) -> str:
    """How to feed a --graph-letterbox model the frame size it takes, for this kind of source."""
    (w, h), (gw, gh) = want, got
    if spec.kind == "synthetic":
        return "use synthetic://?width=%d&height=%d" % (w, h)
    if spec.kind in ("v4l2", "csi"):
        return "capture at %dx%d (--width %d --height %d)" % (w, h, w, h)
    if spec.kind in ("rtsp", "http"):
        return "set the camera's stream to %dx%d" % (w, h)
    return "re-export with --graph-letterbox %dx%d to match %s" % (gw, gh, spec.location)
