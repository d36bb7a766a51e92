"""Assemble the app (routes, token check, JSON errors) and run it on uvicorn with a SIGTERM drain.

SIGTERM or Ctrl-C: ``/readyz`` turns 503, uvicorn stops accepting connections and lets the requests in flight
finish (up to ``--drain-timeout``), then the inference thread answers what is queued and the process exits 0.
"""

from __future__ import annotations

import hmac
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.lazy import lazy_import
from edgekit.log import info, warn
from edgekit.runtime.identity import model_identity
from edgekit.runtime.threads import ort_threading
from edgekit.serve import roboflow
from edgekit.serve.access import check_bind, is_loopback, resolve_token, take_query_keys
from edgekit.serve.app import OPEN_ROUTES, ServeConfig, ServerState, detect, error_response
from edgekit.serve.metrics import CountResponses, Metrics
from edgekit.serve.worker import InferenceWorker

SERVE_HINT = "edgekit serve needs the serve extra: pip install 'edgekit[serve]'"


def require_serve_deps() -> None:
    """Starlette, uvicorn, python-multipart, prometheus_client and Pillow, or one line saying what to install."""
    for module in ("starlette", "uvicorn", "multipart", "prometheus_client", "PIL"):
        try:
            __import__(module)
        except ImportError as exc:
            raise EdgekitError("cannot import %s (%s): %s" % (module, exc, SERVE_HINT)) from None


class TokenAuth:
    """Pure ASGI middleware: every route but the probes needs the token, as ``Authorization: Bearer TOKEN`` or where
    Roboflow's clients put it: the query's ``api_key`` (taken out of every query string, token or not, so no handler
    and no access log line sees it) or the JSON body's ``api_key`` on Roboflow's JSON routes, which check it
    themselves when neither header nor query carried a key (edgekit.serve.roboflow)."""

    def __init__(self, app, token: Optional[str], metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics
        self.expected = token.encode() if token else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = take_query_keys(scope)
        if self.expected is None or scope["path"] in OPEN_ROUTES:
            return await self.app(scope, receive, send)
        scheme, _, bearer = dict(scope["headers"]).get(b"authorization", b"").strip().partition(b" ")
        if scheme.lower() == b"bearer":
            given.append(bearer.strip())
        # every key given must be the token (one request cannot try many): header and query keys alike
        if given and all([hmac.compare_digest(key, self.expected) for key in given]):
            return await self.app(scope, receive, send)
        if not given and roboflow.takes_body_key(scope):
            scope[roboflow.BODY_KEY] = self.expected  # the route compares the body's api_key with it
            return await self.app(scope, receive, send)
        self.metrics.rejections.labels("unauthorized").inc()
        refused = roboflow.unauthorized()
        await error_response(refused.status, refused.message, refused.headers)(scope, receive, send)


def make_app(state: ServerState):
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def healthz(request):
        return JSONResponse({"status": "ok"})

    async def readyz(request):
        if state.worker.error is not None:
            return error_response(503, "model failed to load")
        if state.draining or not state.worker.ready.is_set():
            return JSONResponse({"status": "draining" if state.draining else "loading"}, status_code=503,
                                headers={"Retry-After": "1"})
        return JSONResponse({"status": "ready", "model": state.identity})  # the file it runs: sha256, name, version

    async def v1_info(request):
        body = dict(state.info)
        body.update(ready=state.worker.ready.is_set(), max_batch=state.worker.max_batch,
                    max_queue=state.config.max_queue, max_queue_delay_ms=state.config.max_queue_delay_ms,
                    input_hw=list(state.worker.hw), queue_depth=state.worker.queue_depth)
        return JSONResponse(body)

    async def metrics(request):
        return Response(state.metrics.exposition(), media_type=state.metrics.content_type)

    async def http_error(request, exc):
        if exc.status_code == 404:
            message = ("no route %s %s: POST /v1/detect, GET /healthz /readyz /v1/info /metrics; Roboflow's: GET "
                       "/model/registry, POST /model/add /infer/object_detection /{project}/{version}" % (
                           request.method, request.url.path))
        else:
            message = "%s %s: %s" % (request.method, request.url.path, exc.detail)
        return error_response(exc.status_code, message)

    routes = [Route("/v1/detect", detect, methods=["POST"]), Route("/healthz", healthz), Route("/readyz", readyz),
              Route("/v1/info", v1_info), Route("/metrics", metrics)] + roboflow.routes()  # theirs last
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error},
                    middleware=[Middleware(CountResponses, metrics=state.metrics),  # outermost: counts the 401s too
                                Middleware(TokenAuth, token=state.config.token, metrics=state.metrics)])
    app.state.edgekit = state
    return app


def model_summary(model: str) -> dict:
    """Model facts for /v1/info and every response, from the manifest (no runner needed yet)."""
    from pathlib import Path

    from edgekit.manifest import read_manifest, sha256_file

    path = Path(model)
    manifest = read_manifest(path) or {}
    return {"name": path.stem, "file": path.name, "sha256": manifest.get("sha256") or sha256_file(path),
            "precision": manifest.get("precision", "fp32"), "trained": manifest.get("trained"),
            "params": manifest.get("params"), "gflops": manifest.get("gflops"), "pruned": manifest.get("pruned")}


INPUT_FORMATS = {
    "float": "float RGB NCHW in [0, 1]: the server letterboxes and normalizes",
    "uint8": "uint8 BGR NHWC (--graph-preprocess): the server letterboxes, the graph normalizes",
    "uint8-letterbox": "uint8 BGR NHWC frames of one size (--graph-letterbox): the graph letterboxes and normalizes",
}
OUTPUT_FORMATS = {
    "raw": "YOLOv8 [B, 4+nc, N]: the server decodes and runs NMS (conf, iou, max_det per request)",
    "trt-nms": "EfficientNMS_TRT in the engine (--trt-nms): conf at or above its own, its IoU, per request",
    "end2end": "an end-to-end head's [B, K, 6] (--end2end, YOLO26): no NMS; conf and max_det up to K per request, "
               "iou not used",
}


def model_formats(pipe) -> dict:
    """What the model takes and gives, for /v1/info: a client reads there which requests it can make."""
    import numpy as np

    fmt = pipe.format
    frame = list(reversed(fmt.frame_hw)) if fmt.frame_hw else None  # width, height
    return {"input": {"format": fmt.kind, "dtype": np.dtype(pipe.runner.input_dtype).name, "imgsz": list(fmt.model_hw),
                      "frame_size": frame, "about": INPUT_FORMATS.get(fmt.kind, fmt.kind)},
            "output": {"format": pipe.output, "nms": pipe.baked() or None, "defaults": pipe.default_settings(),
                       "about": OUTPUT_FORMATS.get(pipe.output, pipe.output)}}


def accuracy_gate(model: str):
    """The model's accuracy gate record (edgekit build/quantize --accuracy-data), for /v1/info; None without one.
    Kept out of ``model_summary``, which every detection response carries."""
    from edgekit.manifest import read_manifest

    return (read_manifest(model) or {}).get("accuracy")


def serve(config: ServeConfig) -> None:
    """Run until SIGTERM/Ctrl-C (exit 0 after the drain); a model that fails to load is an EdgekitError."""
    require_serve_deps()
    uvicorn = lazy_import("uvicorn")
    from pathlib import Path

    if not Path(config.model).is_file():
        raise EdgekitError("model %s not found: give the engine or ONNX to serve" % config.model)
    check_bind(config.host, config.port)
    config.token = resolve_token(config.token, config.no_token, config.host)
    from edgekit.sysinfo import system_info

    metrics = Metrics()
    holder = {}

    def failed(exc):
        server = holder.get("server")
        if server is not None:
            server.should_exit = True

    def ready():
        import numpy as np

        from edgekit.serve.images import decode_image, encode_jpeg

        decode_image(encode_jpeg(np.zeros((64, 64, 3), np.uint8)), 4096)  # first decode loads Pillow's and cv2's codecs
        runner, pipe = worker.runner, worker.pipeline
        state.info["names"] = dict(runner.info.names) if runner.info else {}
        state.info["model"].update(backend=runner.backend, device=runner.device, clock=runner.clock,
                                   input_shape=[runner.static_batch or worker.max_batch]
                                   + list(pipe.dummy_input(1).shape[1:]))
        state.info.update(model_formats(pipe))
        # the sha256 of the file opened (not the manifest's word), for /readyz, /v1/info and edgekit_model_info
        precision = runner.info.get("precision") if runner.info else None
        state.identity = model_identity(runner.path, runner.backend, precision)
        state.info["model"].update(sha256=state.identity["sha256"], version=state.identity["version"],
                                   path=state.identity["path"])
        metrics.set_model(state.identity)
        state.info["ort_threads"] = plan.as_dict() if worker.uses_plan else None  # threads, spinning and why

    # ONNX Runtime's threads spin unless other processes keep the cores busy; the decode workers and the event loop
    # work per request, a few ms against inference's tens, and inference waits for them: they are not busy work
    plan = ort_threading("serve", extra_threads=0.0, intra_threads=config.threads)
    worker = InferenceWorker(config.model, config.backend, config.threads, config.max_batch, config.max_queue,
                             config.max_queue_delay_ms / 1e3, config.warmup, metrics, on_ready=ready,
                             on_error=failed, cuda_graph=config.cuda_graph, thread_plan=plan)
    pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="edgekit-decode")
    state = ServerState(config, worker, metrics, pool)
    state.info = {"model": model_summary(config.model), "accuracy_gate": accuracy_gate(config.model),
                  "edgekit": __version__, "system": system_info(),
                  "http": _available("httptools", "h11"), "loop": _available("uvloop", "asyncio")}

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            if not state.draining:
                info("draining: answering requests in flight, then exiting (signal %d)" % sig)
            state.draining = True
            super().handle_exit(sig, frame)

    uv_config = uvicorn.Config(make_app(state), host=config.host, port=config.port, log_level="warning",
                               access_log=config.access_log, timeout_graceful_shutdown=config.drain_timeout,
                               lifespan="off", server_header=False)
    if config.access_log:  # its lines are INFO: log_level="warning" (set on it by uvicorn.Config) would drop them
        import logging

        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    server = Server(uv_config)
    holder["server"] = server
    # uvicorn re-raises the signal it caught once it has shut down; a no-op handler makes that a clean exit 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *args: None)
    worker.start()
    info("edgekit serve %s on http://%s:%d (token %s); /readyz turns 200 once the model is warm"
         % (Path(config.model).name, config.host, config.port, "required" if config.token else "off"))
    if config.token is None and not is_loopback(config.host):  # only with --no-token (resolve_token)
        warn("--no-token: anyone who reaches %s:%d can use this server" % (config.host, config.port))
    try:
        server.run()
    finally:
        worker.stop(config.drain_timeout)
        pool.shutdown(wait=True)
    if worker.error is not None:
        if isinstance(worker.error, EdgekitError):
            raise worker.error
        raise EdgekitError("model %s failed to load: %s: %s" % (config.model, type(worker.error).__name__,
                                                                str(worker.error).strip()[:200]))
    info("stopped after answering every request in flight")


def _available(fast: str, fallback: str) -> str:
    """What uvicorn's "auto" picks: the C implementation when installed (the serve extra has it)."""
    import importlib.util

    return fast if importlib.util.find_spec(fast) is not None else fallback

