"""The Starlette app: ``POST /v1/detect``, ``/healthz``, ``/readyz``, ``/v1/info``, ``/metrics``.

The event loop only reads bodies and answers; decoding, letterboxing and NMS run in a small thread pool and
inference in the worker's one thread. Every request gets exactly one answer: 200, a JSON error naming the problem
(400/401/404/413/415), 503 with ``Retry-After`` when the queue is full or the server is loading or draining, 504
past ``--timeout``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from edgekit.log import warn
from edgekit.serve import images
from edgekit.serve.images import RequestError
from edgekit.serve.metrics import Metrics
from edgekit.serve.worker import Expired, InferenceWorker, Job

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
    model_id: Optional[str] = None  # --model-id: a Roboflow model_id this model answers to besides its name


@dataclass
class ServerState:
    config: ServeConfig
    worker: InferenceWorker
    metrics: Metrics
    pool: ThreadPoolExecutor
    draining: bool = False
    info: Dict[str, Any] = field(default_factory=dict)
    identity: Dict[str, Any] = field(default_factory=dict)  # edgekit.runtime.identity.model_identity, once ready


def error_response(status: int, message: str, headers: Optional[Dict[str, str]] = None):
    """``{"error", "status", "message"}``: ``message`` (the same text) is what Roboflow's clients show."""
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message, "status": status, "message": message}, status_code=status,
                        headers=headers)


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
    # conf/iou left out: the model's defaults (0.25/0.7, or what an engine with NMS in it was exported with)
    return {"conf": number("conf", float, None, 0.0, 1.0), "iou": number("iou", float, None, 0.0, 1.0),
            "max_det": number("max_det", int, None, 1, 10000), "format": fmt}


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
        return images.encoded_or_base64(body)
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


@dataclass
class Detected:
    """One image's answer: detections in its own pixels, its size, the server's stage times (ms) and the number
    of images in the inference batch it ran in."""

    dets: Any  # edgekit.vision.detections.Detections
    width: int
    height: int
    stages: Dict[str, float]
    batch: int


def prepare(data: bytes, max_pixels: int, pipeline):
    """In the pool: decode one image and make the model's input of it (edgekit.vision.pipeline), timed."""
    from edgekit.vision.pipeline import FrameSizeError

    t0 = time.perf_counter()
    frame = images.decode_image(data, max_pixels)
    t1 = time.perf_counter()
    try:
        blob, boxes = pipeline.preprocess_owned([frame])
    except FrameSizeError as exc:  # a --graph-letterbox model letterboxes one frame size in its graph
        raise RequestError(400, "%s takes %dx%d images only (exported with --graph-letterbox %dx%d: the letterbox "
                                "is in its graph); this image is %dx%d: send %dx%d images, or serve a model "
                                "exported without --graph-letterbox"
                           % ((exc.model,) + exc.want + exc.want + exc.got + exc.want)) from None
    t2 = time.perf_counter()
    return frame.shape, blob, boxes[0], {"decode": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3}


def resolve_settings(pipeline, params: Dict[str, Any]) -> Dict[str, Any]:
    """The request's conf/IoU/max_det/agnostic with the model's defaults for what it left out (0.25, 0.7, 300, or
    what the model has in it: an NMS engine's conf/IoU, an end-to-end head's top-k); a setting the model
    cannot honour (NMS in the engine at another conf/IoU) is a 400 saying why."""
    conf, iou, max_det = pipeline.with_defaults(params.get("conf"), params.get("iou"), params.get("max_det"))
    settings = {"conf": conf, "iou": iou, "max_det": max_det, "agnostic": bool(params.get("agnostic"))}
    problem = pipeline.settings_problem(settings["conf"], settings["iou"], settings["max_det"], settings["agnostic"])
    if problem:
        raise RequestError(400, problem)
    return settings


# Whether the request in this context arrived after the drain began (set by ``answer``): a request in flight when
# SIGTERM comes is answered, even if it was still reading its body; one that arrives during the drain gets 503.
_ARRIVED_DRAINING: contextvars.ContextVar = contextvars.ContextVar("edgekit_arrived_draining", default=True)


def check_available(state: ServerState) -> None:
    """503 with Retry-After while the model loads, or for a request that arrived while the server drains."""
    draining = state.draining and _ARRIVED_DRAINING.get()
    if draining or not state.worker.ready.is_set():
        raise RequestError(503, "server is %s" % ("draining" if draining else "loading the model"),
                           {"Retry-After": "1"}, "draining" if draining else "loading")


async def detect_images(state: ServerState, datas: List[bytes], params: Dict[str, Any],
                        t_start: float) -> List[Detected]:
    """Decode, preprocess, infer (batched with other requests' images) and postprocess each image.

    ``params``: ``conf``/``iou`` (None: the model's defaults), ``max_det``, ``agnostic``. Each image takes its own
    place in the queue (503 for the whole request when they do not all fit). Raises RequestError or Expired."""
    config, worker = state.config, state.worker
    check_available(state)
    if not datas:
        raise RequestError(400, "no image in the request")
    settings = resolve_settings(worker.pipeline, params)
    admitted = 0
    for _ in datas:
        if not worker.admit():
            for _ in range(admitted):
                worker.release()
            raise RequestError(503, "queue full (%d waiting, --max-queue): retry later" % config.max_queue,
                               {"Retry-After": "1"}, "queue_full")
        admitted += 1
    t_body = time.perf_counter()
    deadline = t_start + config.timeout
    listed = len(datas) > 1
    tasks = [asyncio.ensure_future(_one_image(state, data, settings, deadline, t_body, i if listed else None))
             for i, data in enumerate(datas)]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:  # one image failed: the others' answers are not wanted any more
            task.cancel()


async def _one_image(state: ServerState, data: bytes, settings: Dict[str, Any], deadline: float,
                     t_body: float, index: Optional[int] = None) -> Detected:
    """One admitted image through the pool, the inference thread and the pool again; ``index``: its place in a
    list of images, named in its error."""
    config, worker = state.config, state.worker
    loop = asyncio.get_running_loop()
    submitted = False
    try:
        try:  # the decode threads can be busy too: the deadline holds while waiting for them
            shape, blob, lb, timings = await asyncio.wait_for(loop.run_in_executor(
                state.pool, prepare, data, config.max_pixels, worker.pipeline),
                max(deadline - time.perf_counter(), 0.001))
        except asyncio.TimeoutError:
            raise Expired() from None
        except RequestError as exc:
            if index is not None:
                exc.message = "image[%d]: %s" % (index, exc.message)
            raise
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
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            job.cancelled = True
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise Expired() from None
        if isinstance(result, Exception):
            raise result
        return await loop.run_in_executor(state.pool, finish, worker.pipeline, result, lb, shape, settings, timings,
                                          t_body)
    finally:
        if not submitted:
            worker.release()


def finish(pipeline, result, lb, shape, settings, timings, t_body: float) -> Detected:
    """In the pool: NMS (or reading the engine's own), boxes back to the image, the server's stage times."""
    t0 = time.perf_counter()
    dets = pipeline.decode(result["outputs"], [lb], settings["conf"], settings["iou"], settings["max_det"],
                           settings["agnostic"])[0]
    t1 = time.perf_counter()
    stages = {"decode": timings["decode"], "preprocess": timings["preprocess"], "queue": 0.0}
    stages.update(result["timings"])  # inference (+ h2d/compute/d2h on TensorRT)
    stages["postprocess"] = (t1 - t0) * 1e3
    stages["total"] = (t1 - t_body) * 1e3
    # queue: every wait between the work stages (thread pool, inference queue, batch forming, event loop hand-offs)
    work = stages["decode"] + stages["preprocess"] + stages["inference"] + stages["postprocess"]
    stages["queue"] = max(stages["total"] - work, 0.0)
    stages = {k: round(v, 3) for k, v in stages.items()}
    return Detected(dets, int(shape[1]), int(shape[0]), stages, result["batch"])


async def answer(request, handler):
    """Run ``await handler()`` (a route's work, returning its Response) with the in-flight gauge; every failure is
    one JSON error: RequestError with its status, 504 past --timeout, 500 for a backend failure."""
    state: ServerState = request.app.state.edgekit
    metrics = state.metrics
    metrics.in_flight.inc()
    arrival = _ARRIVED_DRAINING.set(state.draining)
    try:  # edgekit_requests_total is counted by CountResponses (metrics.py) for every route
        return await handler()
    except RequestError as exc:
        metrics.rejections.labels(exc.reason or _reason(exc.status)).inc()
        return error_response(exc.status, exc.message, exc.headers)
    except Expired:
        metrics.rejections.labels("timeout").inc()
        return error_response(504, "request took longer than --timeout %.1f s (queue too long for this model?)"
                              % state.config.timeout)
    except Exception as exc:  # a backend failure: the request is answered and the server goes on
        warn("inference failed: %s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[0][:200]
                                           if str(exc).strip() else ""))
        return error_response(500, "inference failed: %s" % type(exc).__name__)
    finally:
        _ARRIVED_DRAINING.reset(arrival)
        metrics.in_flight.dec()


async def detect(request):
    """POST /v1/detect: one image in the body, detections (or Roboflow's predictions with format=roboflow)."""
    return await answer(request, lambda: _detect(request))


async def _detect(request):
    from starlette.responses import Response

    state: ServerState = request.app.state.edgekit
    t_start = time.perf_counter()
    check_available(state)  # before reading a body that will not be used
    kind = images.check_content_type(request.headers.get("content-type", ""))
    params = parse_params(request.query_params)
    body = await read_body(request, int(state.config.max_body_mb * 1024 * 1024))
    data = await image_bytes(request, kind, body)
    result = (await detect_images(state, [data], params, t_start))[0]
    state.metrics.observe_stages(result.stages)
    payload = await asyncio.get_running_loop().run_in_executor(state.pool, native_body, state, result,
                                                               params["format"])
    server_timing = ", ".join("%s;dur=%.2f" % (k, v) for k, v in result.stages.items())
    return Response(payload, media_type="application/json", headers={"Server-Timing": server_timing})


def native_body(state: ServerState, result: Detected, fmt: str) -> bytes:
    from edgekit.serve import roboflow  # Roboflow's answer shape lives with its protocol (which imports this module)

    names = state.info.get("names") or {}
    image = {"width": result.width, "height": result.height}
    if fmt == "roboflow":
        body: Dict[str, Any] = {"time": round(result.stages["total"] / 1e3, 6), "image": image,
                                "predictions": roboflow.predictions(result.dets, names)}
    else:
        body = {"image": image, "detections": result.dets.to_list(names)}
    body.update(model=state.info.get("model"), batch_size=result.batch, timings_ms=result.stages)
    return json.dumps(body).encode()


def _settle(future, result) -> None:
    if not future.done():
        future.set_result(result)


def _reason(status: int) -> str:
    return {400: "bad_request", 404: "not_found", 413: "too_large", 415: "unsupported_type"}.get(status, str(status))
