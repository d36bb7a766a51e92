"""The one inference thread: it owns the runner (a TensorRT execution context is never shared between
threads) and runs requests in dynamic batches, as Triton's dynamic batcher does.

Requests are admitted against ``max_queue`` on arrival (a full queue is refused at once: load shedding, no
unbounded memory). The thread takes the oldest waiting request, adds whatever else is already waiting (or
arrives within ``max_delay_s``) up to ``max_batch``, drops requests whose deadline passed, pads a static-batch
model's input with copies of the last frame, runs one ``Runner.infer`` and hands each request its own output row.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional

import numpy as np

from edgekit.log import info
from edgekit.runtime import Runner, open_runner
from edgekit.runtime.threads import ThreadPlan


class Job:
    """One request's preprocessed frame on its way through the inference thread."""

    __slots__ = ("blob", "deadline", "callback", "cancelled")

    def __init__(self, blob: np.ndarray, deadline: float, callback: Callable[[Any], None]) -> None:
        self.blob = blob
        self.deadline = deadline  # perf_counter time after which the request is answered 504
        self.callback = callback  # called from the inference thread with a dict (output/timings) or an exception
        self.cancelled = False


class Expired(Exception):
    """The request's deadline passed before inference took it."""


class InferenceWorker:
    def __init__(self, model: str, backend: str = "auto", threads: Optional[int] = None,
                 max_batch: Optional[int] = None, max_queue: int = 64, max_delay_s: float = 0.0,
                 warmup: int = 3, metrics=None,
                 on_ready: Optional[Callable[[], None]] = None, on_error: Optional[Callable[[Exception], None]] = None,
                 cuda_graph: bool = False, thread_plan: Optional[ThreadPlan] = None) -> None:
        self.model, self.backend, self.threads, self.cuda_graph = model, backend, threads, cuda_graph
        self.thread_plan = thread_plan  # ONNX Runtime's threads and spinning (edgekit.runtime.threads)
        self.requested_batch = max_batch
        self.max_batch = 1
        self.max_queue, self.max_delay_s, self.warmup = max_queue, max_delay_s, warmup
        self.metrics = metrics
        self.on_ready = on_ready or (lambda: None)
        self.on_error = on_error or (lambda exc: None)
        self.runner: Optional[Runner] = None
        self.pipeline: Any = None  # edgekit.vision.pipeline.Pipeline, once the model is open
        self.hw = (640, 640)
        self.ready = threading.Event()
        self.error: Optional[Exception] = None
        self._queue: Deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._admitted = 0  # admitted and not yet taken by inference (decoding, preprocessing or queued)
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name="edgekit-inference", daemon=True)

    # --- called from the server ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def admit(self) -> bool:
        """Take a place in the queue, or False when ``max_queue`` requests already wait (answer 503)."""
        with self._cond:
            if self._stopping or self._admitted >= self.max_queue:
                return False
            self._admitted += 1
            self._gauge()
            return True

    def release(self) -> None:
        """Give back an admitted place that never reached the queue (bad image, timeout while decoding)."""
        with self._cond:
            self._admitted -= 1
            self._gauge()

    def submit(self, job: Job) -> None:
        with self._cond:
            self._queue.append(job)
            self._cond.notify()

    def stop(self, timeout: float = 30.0) -> None:
        """Answer what is queued, then end the thread and close the runner."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def queue_depth(self) -> int:
        return self._admitted

    # --- the inference thread --------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._open()
        except Exception as exc:  # EdgekitError (bad model) or a backend failure: reported by the server
            self.error = exc
            self.on_error(exc)
            return
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    break
                self._run(batch)
        finally:
            if self.runner is not None:
                self.runner.close()

    def _open(self) -> None:
        from edgekit.errors import EdgekitError
        from edgekit.vision.pipeline import Pipeline

        plan = self.thread_plan
        self.runner = open_runner(self.model, self.backend, threads=plan.threads if plan else self.threads,
                                  cuda_graph=self.cuda_graph, spinning=plan.spinning if plan else None)
        # what the model takes and gives (float or uint8 input, letterbox in the graph, NMS in the engine)
        self.pipeline = Pipeline(self.runner, conf=None, iou=None)  # any model opens; requests are checked
        static = self.runner.static_batch
        if self.requested_batch and static and self.requested_batch > static:
            static_only = self.pipeline.output != "raw" or self.pipeline.format.kind == "uint8-letterbox"
            raise EdgekitError("--max-batch %d is larger than %s's static batch %d: re-export with edgekit export "
                               "--batch %d%s" % (self.requested_batch, self.runner.path.name, static,
                                                 self.requested_batch, "" if static_only else " (or --dynamic)"))
        self.max_batch = self.requested_batch or static or 1
        self.hw = self.pipeline.hw
        blob = self.pipeline.dummy_input(static or 1)
        for _ in range(self.warmup):
            self.runner.infer(blob)
        self.on_ready()
        self.ready.set()
        frames = self.pipeline.format.frame_hw
        info("model %s ready (%s on %s, input %dx%d%s, batch up to %d, queue %d)%s"
             % (self.runner.path.name, self.runner.backend, self.runner.device, self.hw[1], self.hw[0],
                ", letterboxed in the graph from %dx%d images" % (frames[1], frames[0]) if frames else "",
                self.max_batch, self.max_queue, "; " + plan.line() if plan and self.uses_plan else ""))

    @property
    def uses_plan(self) -> bool:
        """The thread plan applies: the model runs on ONNX Runtime (TensorRT has no such threads)."""
        return self.thread_plan is not None and self.runner is not None and self.runner.backend == "onnxruntime"

    def _next_batch(self) -> Optional[List[Job]]:
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._cond.wait()
            batch = [self._queue.popleft()]
            if self.max_delay_s > 0 and len(batch) < self.max_batch:
                until = time.perf_counter() + self.max_delay_s
                while len(self._queue) + len(batch) < self.max_batch and not self._stopping:
                    left = until - time.perf_counter()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            while self._queue and len(batch) < self.max_batch:
                batch.append(self._queue.popleft())
            self._admitted -= len(batch)
            self._gauge()
            return batch

    def _run(self, batch: List[Job]) -> None:
        taken = time.perf_counter()
        live = []
        for job in batch:
            if job.cancelled:
                continue
            if taken > job.deadline:
                job.callback(Expired())
            else:
                live.append(job)
        if not live:
            return
        assert self.runner is not None
        blob = live[0].blob if len(live) == 1 else np.concatenate([j.blob for j in live])
        static = self.runner.static_batch
        if static and len(live) < static:  # a static-batch model takes exactly its batch: pad with the last frame
            blob = np.concatenate([blob] + [live[-1].blob] * (static - len(live)))
        t0 = time.perf_counter()
        try:
            outputs = self.runner.infer(blob)
        except Exception as exc:  # a backend failure answers these requests 500 and the server goes on
            for job in live:
                job.callback(exc)
            return
        inference_ms = (time.perf_counter() - t0) * 1e3
        extra = {k: v for k, v in self.runner.timings.items() if k != "inference"}  # TensorRT h2d/compute/d2h
        if self.metrics is not None:
            self.metrics.batch.observe(len(live))
        for i, job in enumerate(live):
            if job.cancelled:  # answered 504 while it ran
                continue
            timings: Dict[str, float] = {"inference": inference_ms}
            timings.update(extra)
            job.callback({"outputs": [o[i:i + 1] for o in outputs], "timings": timings, "batch": len(live)})

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(self._admitted)
