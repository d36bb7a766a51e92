"""The Starlette app: ``POST /v1/detect``, ``/healthz``, ``/readyz``, ``/v1/info``, ``/metrics``.

The event loop only reads bodies and answers; decoding, letterboxing and NMS run in a small thread pool and
inference in the worker's one thread. Every request gets exactly one answer: 200, a JSON error naming the problem
(400/401/404/413/415), 503 with ``Retry-After`` when the queue is full or the server is loading or draining, 504
past ``--timeout``.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from edgekit.log import warn
from edgekit.serve import images
from edgekit.serve.images import RequestError
from edgekit.serve.metrics import Metrics
from edgekit.serve.worker import Expired, InferenceWorker, Job
from edgekit.vision import postprocess, preprocess

OPEN_ROUTES = ("/healthz", "/readyz")  # probes answer without a token
FORMATS = ("edgekit", "roboflow")


@dataclass
class ServeConfig:
    model: str
    backend: str = "auto"
    threads: Optional[int] = None
    host: str = "127.0.0.1"
    port: int = 8080
    token: Optional[str] = None  # --token; serve() falls back to $EDGEKIT_TOKEN (edgekit.serve.access)
    no_token: bool = False  # --no-token: serve a non-loopback --host without a token, on purpose
    max_batch: Optional[int] = None
    max_queue_delay_ms: float = 0.0
    max_queue: int = 64
    timeout: float = 10.0  # seconds from request start to 504
    max_body_mb: float = 20.0
    max_pixels: int = 40_000_000
    workers: int = 2  # decode/letterbox/NMS pool
    warmup: int = 3
    drain_timeout: float = 30.0
    cuda_graph: bool = False
    access_log: bool = False


@dataclass
class ServerState:
    config: ServeConfig
    worker: InferenceWorker
    metrics: Metrics
    pool: ThreadPoolExecutor
    draining: bool = False
    info: Dict[str, Any] = field(default_factory=dict)


def error_response(status: int, message: str, headers: Optional[Dict[str, str]] = None):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def parse_params(query) -> Dict[str, Any]:
    def number(name, cast, default, lo, hi):
        raw = query.get(name)
        if raw is None:
            return default
        try:
            value = cast(raw)
        except ValueError:
            raise RequestError(400, "query %s=%r: not a number" % (name, raw)) from None
        if not lo <= value <= hi:
            raise RequestError(400, "query %s=%s: must be within %s..%s" % (name, raw, lo, hi))
        return value

    unknown = sorted(set(query.keys()) - {"conf", "iou", "max_det", "format"})
    if unknown:  # a misspelled key is an error, never silently the default
        raise RequestError(400, "unknown query parameter %s (known: conf, iou, max_det, format)" % ", ".join(unknown))
    repeated = sorted(k for k in set(query.keys()) if len(query.getlist(k)) > 1)
    if repeated:
        raise RequestError(400, "query parameter %s given more than once" % ", ".join(repeated))
    fmt = query.get("format", "edgekit")
    if fmt not in FORMATS:
        raise RequestError(400, "query format=%r: choose one of %s" % (fmt, ", ".join(FORMATS)))
    return {"conf": number("conf", float, 0.25, 0.0, 1.0), "iou": number("iou", float, 0.7, 0.0, 1.0),
            "max_det": number("max_det", int, 300, 1, 10000), "format": fmt}


async def read_body(request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise RequestError(413, "body is %s bytes; this server takes at most %d (--max-body-mb)" % (length, limit))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "body is over %d bytes (--max-body-mb)" % limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def image_bytes(request, kind: str, body: bytes) -> bytes:
    if kind in images.RAW_TYPES:
        return body
    if kind == images.JSON_TYPE:
        return images.image_from_json(body)
    if kind == images.FORM_TYPE:  # Roboflow's hosted API sends base64; curl --data-binary sends raw bytes as this
        return body if images.looks_encoded(body) else images.b64decode(body)
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream():
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_files=1, max_fields=16).parse()
    except MultiPartException as exc:
        raise RequestError(400, "bad multipart body: %s" % exc) from None
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise RequestError(400, "multipart body needs a 'file' part holding the image")
        return await upload.read()
    finally:
        await form.close()


def prepare(data: bytes, max_pixels: int, hw, dtype):
    """In the pool: decode and letterbox one image, timed."""
    t0 = time.perf_counter()
    frame = images.decode_image(data, max_pixels)
    t1 = time.perf_counter()
    blob, boxes = preprocess([frame], hw, dtype=dtype)
    t2 = time.perf_counter()
    return frame, blob, boxes[0], {"decode": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3}


async def detect(request):
    state: ServerState = request.app.state.edgekit
    state.metrics.in_flight.inc()
    try:
        return await _detect(request, state)
    finally:  # edgekit_requests_total is counted by CountResponses (metrics.py) for every route
        state.metrics.in_flight.dec()


async def _detect(request, state: ServerState):
    from starlette.responses import Response

    config, worker, metrics = state.config, state.worker, state.metrics
    t_start = time.perf_counter()
    deadline = t_start + config.timeout
    if state.draining or not worker.ready.is_set():
        metrics.rejections.labels("draining" if state.draining else "loading").inc()
        return error_response(503, "server is %s" % ("draining" if state.draining else "loading the model"),
                              {"Retry-After": "1"})
    admitted = submitted = False
    try:
        kind = images.check_content_type(request.headers.get("content-type", ""))
        params = parse_params(request.query_params)
        body = await read_body(request, int(config.max_body_mb * 1024 * 1024))
        t_body = time.perf_counter()
        if not worker.admit():
            metrics.rejections.labels("queue_full").inc()
            return error_response(503, "queue full (%d waiting, --max-queue): retry later" % config.max_queue,
                                  {"Retry-After": "1"})
        admitted = True
        loop = asyncio.get_running_loop()
        data = await image_bytes(request, kind, body)
        runner = worker.runner
        try:  # the decode threads can be busy too: the deadline holds while waiting for them
            frame, blob, lb, timings = await asyncio.wait_for(loop.run_in_executor(
                state.pool, prepare, data, config.max_pixels, worker.hw, runner.input_dtype),
                max(deadline - time.perf_counter(), 0.001))
        except asyncio.TimeoutError:
            raise Expired() from None
        future = loop.create_future()

        def deliver(result, future=future):
            try:
                loop.call_soon_threadsafe(_settle, future, result)
            except RuntimeError:  # the loop has closed (shutdown): this request was answered already (504)
                pass

        job = Job(blob, deadline, deliver)
        worker.submit(job)
        submitted = True
        try:
            result = await asyncio.wait_for(future, max(deadline - time.perf_counter(), 0.001))
        except asyncio.TimeoutError:
            job.cancelled = True
            raise Expired() from None
        if isinstance(result, Exception):
            raise result
        payload, timings = await loop.run_in_executor(
            state.pool, finish, state, result, lb, frame.shape, params, timings, t_body)
        metrics.observe_stages(timings)
        server_timing = ", ".join("%s;dur=%.2f" % (k, v) for k, v in timings.items())
        return Response(payload, media_type="application/json", headers={"Server-Timing": server_timing})
    except RequestError as exc:
        metrics.rejections.labels(_reason(exc.status)).inc()
        return error_response(exc.status, exc.message)
    except Expired:
        metrics.rejections.labels("timeout").inc()
        return error_response(504, "request took longer than --timeout %.1f s (queue too long for this model?)"
                              % config.timeout)
    except Exception as exc:  # a backend failure: the request is answered and the server goes on
        warn("inference failed: %s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[0][:200]
                                           if str(exc).strip() else ""))
        return error_response(500, "inference failed: %s" % type(exc).__name__)
    finally:
        if admitted and not submitted:
            worker.release()


def finish(state: ServerState, result, lb, shape, params, timings, t_body: float):
    """In the pool: NMS, map boxes back, build the JSON body with the server's stage times."""
    t0 = time.perf_counter()
    dets = postprocess(result["output"], [lb], conf=params["conf"], iou=params["iou"], max_det=params["max_det"])[0]
    t1 = time.perf_counter()
    stages = {"decode": timings["decode"], "preprocess": timings["preprocess"], "queue": 0.0}
    stages.update(result["timings"])  # inference (+ h2d/compute/d2h on TensorRT)
    stages["postprocess"] = (t1 - t0) * 1e3
    stages["total"] = (t1 - t_body) * 1e3
    # queue: every wait between the work stages (thread pool, inference queue, batch forming, event loop hand-offs)
    work = stages["decode"] + stages["preprocess"] + stages["inference"] + stages["postprocess"]
    stages["queue"] = max(stages["total"] - work, 0.0)
    stages = {k: round(v, 3) for k, v in stages.items()}
    names = state.info.get("names") or {}
    h, w = shape[:2]
    if params["format"] == "roboflow":
        body: Dict[str, Any] = {"time": round(stages["total"] / 1e3, 6), "image": {"width": w, "height": h},
                                "predictions": roboflow_predictions(dets, names)}
    else:
        body = {"image": {"width": w, "height": h}, "detections": dets.to_list(names)}
    body.update(model=state.info.get("model"), batch_size=result["batch"], timings_ms=stages)
    return json.dumps(body).encode(), stages


def roboflow_predictions(dets, names):
    """Roboflow's shape: box center, width and height in pixels, ``class`` name and ``class_id``."""
    out = []
    for (x1, y1, x2, y2), conf, cid in zip(dets.xyxy.tolist(), dets.confidence.tolist(), dets.class_id.tolist()):
        out.append({"x": round((x1 + x2) / 2, 2), "y": round((y1 + y2) / 2, 2), "width": round(x2 - x1, 2),
                    "height": round(y2 - y1, 2), "confidence": round(conf, 4), "class": names.get(cid, str(cid)),
                    "class_id": int(cid)})
    return out


def _settle(future, result) -> None:
    if not future.done():
        future.set_result(result)


def _reason(status: int) -> str:
    return {400: "bad_request", 413: "too_large", 415: "unsupported_type"}.get(status, str(status))
