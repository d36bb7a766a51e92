"""Assemble one camera session from a request: runner, capture, outputs, log; run it; return the summary."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from edgekit.camera.loop import CameraConfig, run_camera
from edgekit.camera.stats import JsonlLog
from edgekit.errors import EdgekitError
from edgekit.log import info, warn
from edgekit.power import PowerMeter
from edgekit.runtime import open_runner
from edgekit.sysinfo import jetson_info
from edgekit.video.capture import DEFAULT_RETRIES, Capture
from edgekit.video.outputs import Output, Recorder, Window
from edgekit.video.sources import SourceError, make_source
from edgekit.video.uri import SourceOptions, parse_uri
from edgekit.video.web import WebStream


@dataclass
class CameraRequest:
    source: str
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


def model_label(runner) -> str:
    info_ = runner.info
    precision = info_.get("precision", "fp32") if info_ else "fp32"
    label = "%s %s %s/%s" % (runner.path.stem, precision, runner.backend,
                             runner.device.replace("ExecutionProvider", "").lower())
    return label + (" (untrained)" if info_ and info_.trained is False else "")


def camera_session(req: CameraRequest) -> Dict[str, Any]:
    spec = parse_uri(req.source)
    options = SourceOptions(**req.options)
    try:
        source = make_source(spec, options)
    except SourceError as exc:
        raise EdgekitError(str(exc)) from exc
    capture = Capture(source, live=(spec.live and not source.on_demand) or options.realtime, loop=options.loop,
                      on_event=warn, max_retries=req.max_retries)
    capture.open()  # a source that cannot be opened fails before any output or log file exists
    outputs: List[Output] = []
    log = None
    power = PowerMeter.open(req.power_interval, req.idle) if req.power else None  # idle: before the model loads
    with contextlib.ExitStack() as stack:
        if power is not None:
            stack.callback(power.close)
        runner = stack.enter_context(open_runner(req.model, req.backend, threads=req.threads))
        try:
            show = req.display if req.display is not None else bool(os.environ.get("DISPLAY"))
            if show:
                outputs.append(Window("edgekit: %s" % req.source))
            if req.record:
                outputs.append(Recorder(req.record, options.fps, on_event=warn))
            if req.serve is not None:
                web = WebStream(req.serve, req.host)
                outputs.append(web)
                info("serving the live stream at http://%s:%d/" % (
                    "localhost" if req.host in ("0.0.0.0", "") else req.host, web.port))
            log = JsonlLog(req.log) if req.log else None
        except BaseException:
            capture.stop()
            for out in outputs:
                out.close()
            raise
        jetson = jetson_info()
        config = CameraConfig(conf=req.conf, iou=req.iou, duration=req.duration, frames=req.frames,
                              pipeline=req.pipeline, capture_timeout=req.capture_timeout,
                              engine_iters=req.engine_iters, label=model_label(runner),
                              power_mode=jetson.get("power_mode") if jetson else None)
        info("running %s on %s (Ctrl-C to stop)" % (config.label, source.name))
        summary = run_camera(runner, capture, outputs, config, log, on_event=warn, power=power)
        summary.update(model=str(runner.path), model_name=runner.path.stem, source=source.name,
                       backend=runner.backend, device=runner.device, clock=runner.clock, label=config.label,
                       trained=runner.info.trained if runner.info else None, log=req.log,
                       record=_record_info(outputs))
    return summary


def _record_info(outputs: List[Output]) -> Optional[Dict[str, Any]]:
    for out in outputs:
        if isinstance(out, Recorder):
            return {"path": str(out.path), "frames": out.frames, "stopped": out.stopped_reason}
    return None
