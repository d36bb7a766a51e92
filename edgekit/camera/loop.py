"""The live loop: capture -> preprocess -> inference -> postprocess/NMS -> draw -> outputs, timed per frame.

Pipelined by default: a thread prepares frame N+1 and the main thread draws and outputs frame N-1 while a
third thread runs inference on frame N, with one-slot queues between them, so the loop's FPS approaches
the engine's own. ``pipeline=False`` runs the stages one after another (for comparison).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from edgekit.camera.analytics import count_line, finish_record
from edgekit.camera.signals import INTERRUPTED, restore_signals, stop_on_signals
from edgekit.camera.stats import JsonlLog, RollingRate, StageStats, bottleneck, rss_mb
from edgekit.errors import EdgekitError
from edgekit.log import info
from edgekit.power import start_run
from edgekit.runtime import Runner
from edgekit.video.capture import Capture, EndOfStream, Frame
from edgekit.video.outputs import Output
from edgekit.video.web import WebStream
from edgekit.vision.draw import draw_detections, draw_panel
from edgekit.vision.pipeline import Pipeline

_DONE = object()  # end-of-stream marker passed down the pipeline


@dataclass
class CameraConfig:
    conf: float = 0.25
    iou: float = 0.7
    duration: Optional[float] = None  # seconds
    frames: Optional[int] = None  # frames to process
    pipeline: bool = True
    capture_timeout: float = 2.0  # a frame wait longer than this is reported as a stall
    engine_iters: int = 30  # inference-only runs before the loop, for loop FPS / engine FPS
    overlay: bool = True
    label: str = ""  # model, precision, backend: shown on the overlay
    power_mode: Optional[str] = None


@dataclass
class Job:
    frame: Frame
    times: Dict[str, float] = field(default_factory=dict)
    blob: Any = None
    boxes: Any = None
    outputs: Any = None


class CameraLoop:
    def __init__(self, runner: Runner, capture: Optional[Capture], outputs: List[Output], config: CameraConfig,
                 log: Optional[JsonlLog] = None, on_event=None, analytics=None) -> None:
        self.runner, self.capture, self.outputs, self.config, self.log = runner, capture, outputs, config, log
        self.analytics = analytics  # edgekit.camera.analytics.StreamAnalytics: --track, --count-line/zone
        self.on_event = on_event or (lambda msg: None)
        self.web = next((o for o in outputs if isinstance(o, WebStream)), None)
        if self.web is not None and self.web.metrics is not None:
            self.web.metrics.watch(self)  # /metrics reads this loop's numbers when scraped (edgekit.camera.metrics)
        self.pipe = Pipeline(runner, conf=config.conf, iou=config.iou)
        self.pipelined = config.pipeline
        self.names = runner.info.names if runner.info else {}
        self.stats = StageStats()
        self.rate = RollingRate()
        self.stop_event = threading.Event()
        self.stopped_by = "end of source"
        self.processed = 0
        self.stalls = 0
        self.error: Optional[BaseException] = None
        # Capture the next frame only when inference takes the previous one, so a prepared frame never
        # waits behind another (pipelining for throughput without stale frames).
        self._slot = threading.Semaphore(1)

    # --- stages --------------------------------------------------------------------------------------
    def next_job(self) -> Any:
        """Wait for the newest frame and preprocess it; _DONE at the end of a file; None on a stall."""
        t0 = time.perf_counter()
        try:
            frame = self.capture.read(self.config.capture_timeout)
        except EndOfStream:
            if self.capture.failed:
                self.stop("source failed")
            return _DONE
        if frame is None:
            if not self.stop_event.is_set():
                self.stalls += 1
                self.on_event("no frame from the source for %.1f s" % self.config.capture_timeout)
            return None
        job = Job(frame)
        t1 = time.perf_counter()
        job.blob, job.boxes = self.pipe.preprocess([frame.image])
        job.times["capture"] = frame.read_ms
        job.times["capture_wait"] = (t1 - t0) * 1e3
        job.times["preprocess"] = (time.perf_counter() - t1) * 1e3
        return job

    def infer(self, job: Job) -> Job:
        t0 = time.perf_counter()
        job.outputs = self.runner.infer(job.blob)
        job.times["inference"] = (time.perf_counter() - t0) * 1e3  # host view, whatever the backend
        job.times.update({k: v for k, v in self.runner.timings.items() if k != "inference"})
        return job

    def finish(self, job: Job) -> None:
        """Postprocess, draw, send to outputs, record; runs on the main thread (GUI calls live there)."""
        t0 = time.perf_counter()
        dets = self.pipe.postprocess(job.outputs, job.boxes)[0]
        job.times["postprocess"] = (time.perf_counter() - t0) * 1e3
        if self.analytics is not None:
            dets, stage = self.analytics.apply(dets, job.frame.image)
            job.times.update(stage)
        t1 = time.perf_counter()
        image = job.frame.image
        draw_detections(image, dets, self.names)
        if self.analytics is not None:
            self.analytics.draw(image)
        if self.config.overlay:
            draw_panel(image, self.overlay_lines())
        t2 = time.perf_counter()
        for out in self.outputs:
            out.write(image, job.frame.index)
        t3 = time.perf_counter()
        job.times.update(draw=(t2 - t1) * 1e3, output=(t3 - t2) * 1e3,
                         e2e=(t3 - job.frame.t_capture) * 1e3)
        self.stats.add(job.times)
        self.rate.tick(t3)
        self.processed += 1
        if self.log:
            record = {"frame": self.processed, "source_frame": job.frame.index,
                      "ms": {k: round(v, 3) for k, v in job.times.items()}, "detections": len(dets),
                      "fps": round(self.rate.fps(), 2), "dropped": self.capture.dropped}
            self.log.write(finish_record(record, dets, self.analytics, self.processed))
        if self.web:
            self.web.update_stats(self.live_stats(len(dets)))
        if any(o.wants_stop for o in self.outputs):
            self.stop("window closed")
        if self.config.frames and self.processed >= self.config.frames:
            self.stop("--frames %d" % self.config.frames)

    def overlay_lines(self) -> List[str]:
        s = self.stats.smoothed
        short = (("preprocess", "pre"), ("h2d", "h2d"), ("compute", "gpu"), ("d2h", "d2h"),
                 ("inference", "inf"), ("postprocess", "nms"), ("track", "trk"), ("count", "cnt"), ("draw", "draw"))
        stages = "  ".join("%s %.1f" % (name, s[k]) for k, name in short if k in s)
        lines = ["FPS %.1f   e2e %.1f ms" % (self.rate.fps(), s.get("e2e", 0.0)), stages + " ms", self.config.label]
        if self.config.power_mode:
            lines.append("power %s" % self.config.power_mode)
        if self.analytics is not None:
            lines.append(count_line(self.analytics.counts()))
        return [line for line in lines if line.strip()]

    def live_stats(self, detections: int) -> Dict[str, Any]:
        s = self.stats.smoothed
        return {"fps": round(self.rate.fps(), 2), "e2e": round(s.get("e2e", 0.0), 2), "frames": self.processed,
                "dropped": self.capture.dropped, "detections": detections, "label": self.config.label,
                "stages": {k: round(v, 3) for k, v in s.items() if k != "e2e"},
                "tracks": self.analytics.tracks if self.analytics is not None else None,
                "counts": self.analytics.counts() if self.analytics is not None else None}

    # --- driving ------------------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        if not self.stop_event.is_set():
            self.stopped_by = reason
            self.stop_event.set()

    def run(self) -> None:
        start = time.perf_counter()
        try:
            if self.pipelined:
                self._run_pipelined(start)
            else:
                self._run_sequential(start)
        except KeyboardInterrupt:  # a second Ctrl-C, or SIGINT where no handler could be set (not the main thread)
            self.stopped_by = INTERRUPTED  # even if a driver's cleanup already set the stop event
            self.stop_event.set()
        if self.error is not None:
            raise self.error

    def _time_up(self, start: float) -> bool:
        if self.config.duration and time.perf_counter() - start >= self.config.duration:
            self.stop("--duration %g" % self.config.duration)
        return self.stop_event.is_set()

    def _run_sequential(self, start: float) -> None:
        while not self._time_up(start):
            job = self.next_job()
            if job is _DONE:
                return
            if job is not None:
                self.finish(self.infer(job))

    def _run_pipelined(self, start: float) -> None:
        prepared = queue.Queue(maxsize=1)  # one prepared frame at most
        inferred = queue.Queue(maxsize=1)
        workers = [threading.Thread(target=self._worker, args=(self._produce, None, prepared), daemon=True),
                   threading.Thread(target=self._worker, args=(self.infer, prepared, inferred, self._slot.release),
                                    daemon=True)]
        for w in workers:
            w.start()
        try:
            while not self._time_up(start):
                try:
                    job = inferred.get(timeout=0.1)
                except queue.Empty:
                    continue
                if job is _DONE:
                    break
                self.finish(job)
        finally:
            self.stop_event.set()  # end of source, or any other stop: let the workers finish
            for w in workers:
                w.join(timeout=5.0)

    def _produce(self, _unused) -> Any:
        while not self._slot.acquire(timeout=0.1):
            if self.stop_event.is_set():
                return None
        job = self.next_job()
        if job is None:
            self._slot.release()  # nothing was queued: the slot is still free
        return job

    def _worker(self, fn, inbox: Optional[queue.Queue], outbox: queue.Queue, on_take=None) -> None:
        """Run ``fn`` on items from ``inbox`` (or with no input) and pass results on, until stopped."""
        try:
            while not self.stop_event.is_set():
                if inbox is not None:
                    try:
                        item = inbox.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    if on_take:
                        on_take()
                else:
                    item = None
                result = item if item is _DONE else fn(item)
                if result is None:
                    continue
                while not self.stop_event.is_set():
                    try:
                        outbox.put(result, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if result is _DONE:
                    return
        except BaseException as exc:  # surface worker errors on the main thread
            self.error = exc
            self.stop("error")

    def summary(self, duration: float) -> Dict[str, Any]:
        return {"frames": self.processed, "duration_s": round(duration, 3),
                "fps": round(self.processed / duration, 2) if duration > 0 else 0.0,
                "jitter_ms": round(self.rate.jitter_ms(), 3), "stalls": self.stalls,
                "stopped_by": self.stopped_by, "stages": self.stats.summary(),
                "counts": self.analytics.counts() if self.analytics is not None else None}


def engine_fps(runner: Runner, pipe: Pipeline, iters: int, warmup: int = 5, batch: int = 1) -> Optional[float]:
    """Inference-only FPS (images per second) of this runner at this batch, measured before the loop (same
    process, same runner)."""
    if iters <= 0:
        return None
    blob = pipe.dummy_input(batch)
    for _ in range(warmup):
        runner.infer(blob)
    t0 = time.perf_counter()
    for _ in range(iters):
        runner.infer(blob)
    return iters * batch / (time.perf_counter() - t0)


def run_camera(runner: Runner, capture: Capture, outputs: List[Output], config: CameraConfig,
               log: Optional[JsonlLog] = None, on_event=None, power=None, analytics=None) -> Dict[str, Any]:
    """Run the loop until the source ends, --duration/--frames, 'q', Ctrl-C or SIGTERM; returns the summary.
    ``power`` (an edgekit.power.PowerMeter) is sampled from the loop's start to its end."""
    loop = CameraLoop(runner, capture, outputs, config, log, on_event, analytics)
    rss_start, fps_engine, previous, power_run = rss_mb(), None, None, None
    start = time.perf_counter()
    try:
        if runner.static_batch not in (None, 1):
            raise EdgekitError("%s has static batch %d; the camera loop runs one frame at a time: export with "
                               "--batch 1" % (runner.path.name, runner.static_batch))
        capture.open()  # fail fast on a bad source, before measuring the engine
        if config.engine_iters:
            info("measuring engine-only speed (%d inference runs) before the loop" % config.engine_iters)
        previous = stop_on_signals(loop.stop, loop.stop_event)
        fps_engine = engine_fps(runner, loop.pipe, config.engine_iters)
        start = time.perf_counter()
        power_run = start_run(power)
        capture.start()
        loop.run()
    finally:  # whatever happened: release the source, finalize outputs, flush the log
        duration = time.perf_counter() - start
        if power_run is not None:
            power_run.stop()
        capture.stop()
        for out in outputs:
            out.close()
        if log:
            log.close()
        restore_signals(previous)
    summary = loop.summary(duration)
    summary.update(engine_fps=round(fps_engine, 2) if fps_engine else None,
                   loop_vs_engine=round(summary["fps"] / fps_engine, 3) if fps_engine else None,
                   captured=capture.captured, dropped=capture.dropped, bad_frames=capture.bad_frames,
                   bad_files=capture.bad_files[:20], source_failed=capture.failed,
                   failures=capture.failures, reconnects=capture.reconnects, events=capture.events[-50:],
                   rss_mb={"start": round(rss_start, 1), "end": round(rss_mb(), 1)}, pipelined=loop.pipelined,
                   source_fps=capture.paced_fps, input_format=loop.pipe.format.kind, trt_nms=loop.pipe.nms,
                   output_format=loop.pipe.output)
    summary["bottleneck"] = bottleneck(summary)
    if power is not None and power_run is not None:
        summary["power"] = power_run.summary(summary["frames"])
    return summary
