"""Roboflow's clients, unchanged: the HTTP protocol of Roboflow's ``inference`` server, beside the native API.

``inference-sdk``'s ``InferenceHTTPClient`` pointed at a self-hosted URL speaks its "v1" protocol:
``GET /model/registry``, ``POST /model/add`` and ``POST /infer/object_detection`` (JSON: ``model_id``, ``image``
as ``{"type": "base64", "value": ...}`` or a list of them, ``confidence``, ``iou_threshold``, ...). After
``select_api_v0()`` it speaks the hosted API's: ``POST /{project}/{version}?api_key=...&confidence=...`` with the
image as base64 text in the body. Both run through ``app.detect_images`` (the queue, dynamic batching, timeouts and
metrics of ``POST /v1/detect``, which stays the fast path) and answer Roboflow's ``ObjectDetectionInferenceResponse``.

Refused, each with a JSON error (``message`` is what the client shows): ``url`` images (a box that fetches what a
client names can be steered into its own network), ``numpy`` images (pickles: never loaded), other task types and
workflows (501), drawn images, ``confidence="best"``, removing the served model (403), an unknown model id (404).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
import uuid
from typing import Any, Dict, List, Optional

import numpy as np

from edgekit.serve import images
from edgekit.serve.app import ServerState, answer, check_available, detect_images, read_body
from edgekit.serve.images import RequestError

TASK = "object-detection"
BODY_KEY = "edgekit.body_key"  # scope key: the token a JSON route checks the body's api_key against (TokenAuth)
# POST routes whose key may come in the JSON body (inference-sdk's default): the routes below, each checks it
_BODY_KEY_PATHS = re.compile(r"^/(model/(add|remove|clear)|infer/.+|workflows/.+|[^/]+/workflows/[^/]+)$")
URL_REFUSED = ("url images are refused: this server does not fetch URLs (a box that fetches what clients name can be "
               "steered into its own network); send the image itself as base64 (inference-sdk's infer() fetches a "
               "URL it is given and sends the image)")
NUMPY_REFUSED = ("numpy images are refused: they are Python pickles, which this server never loads; send JPEG or PNG "
                 "as base64")


# --- the key in the JSON body (TokenAuth takes it from the header and the query) -------------------------------
def takes_body_key(scope) -> bool:
    """A POST to one of the JSON routes below, which check the body's ``api_key`` themselves."""
    return scope.get("method") == "POST" and _BODY_KEY_PATHS.match(scope["path"]) is not None


def unauthorized() -> RequestError:
    return RequestError(401, "missing or wrong token: send Authorization: Bearer TOKEN or the query's api_key=TOKEN "
                             "(Roboflow's JSON routes also take api_key in the body), TOKEN being the server's "
                             "--token or EDGEKIT_TOKEN",
                        {"WWW-Authenticate": "Bearer"}, "unauthorized")


def _check_body_key(request, doc) -> None:
    expected = request.scope.get(BODY_KEY)
    if expected is None:  # TokenAuth let the request in on its header or query key, or the server has no token
        return
    given = doc.get("api_key") if isinstance(doc, dict) else None
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected):
        raise unauthorized()


# --- answers ---------------------------------------------------------------------------------------------------
def predictions(dets, names) -> List[Dict[str, Any]]:
    """Roboflow's shape: box center, width and height in pixels, ``class`` name, ``class_id``, ``detection_id``."""
    out = []
    for (x1, y1, x2, y2), conf, cid in zip(dets.xyxy.tolist(), dets.confidence.tolist(), dets.class_id.tolist()):
        out.append({"x": round((x1 + x2) / 2, 2), "y": round((y1 + y2) / 2, 2), "width": round(x2 - x1, 2),
                    "height": round(y2 - y1, 2), "confidence": round(conf, 4), "class": names.get(cid, str(cid)),
                    "class_id": int(cid), "detection_id": str(uuid.uuid4())})
    return out


def _response_doc(result, names, class_filter) -> Dict[str, Any]:
    dets = result.dets
    if class_filter is not None:  # after NMS, as Roboflow's server filters
        dets = dets[np.array([names.get(c, str(c)) in class_filter for c in dets.class_id.tolist()], bool)]
    return {"inference_id": str(uuid.uuid4()), "time": round(result.stages["total"] / 1e3, 6),
            "image": {"width": result.width, "height": result.height}, "predictions": predictions(dets, names)}


def _json_response(doc, status: int = 200, headers: Optional[Dict[str, str]] = None):
    from starlette.responses import Response

    return Response(json.dumps(doc).encode(), status_code=status, media_type="application/json", headers=headers)


def model_ids(state: ServerState) -> List[str]:
    """The ids the served model answers to: its name (the file stem) and ``--model-id``."""
    ids = [state.info["model"]["name"]]
    if state.config.model_id and state.config.model_id not in ids:
        ids.append(state.config.model_id)
    return ids


def _check_model(state: ServerState, model_id) -> None:
    if not isinstance(model_id, str) or not model_id:
        raise RequestError(400, "model_id is missing: give one of %s" % ", ".join(model_ids(state)))
    if model_id not in model_ids(state):
        raise RequestError(404, "model %r is not served here; this server answers to %s (edgekit serve --model-id "
                                "ID adds one)" % (model_id, " or ".join(repr(i) for i in model_ids(state))))


def _registry(state: ServerState) -> Dict[str, Any]:
    """The served model under each of its ids; its input size is the image size to send: the model's imgsz, or
    the one frame size a --graph-letterbox model takes (the client may downsize images to it)."""
    worker = state.worker
    fmt = worker.pipeline.format
    h, w = fmt.frame_hw or fmt.model_hw
    return {"models": [{"model_id": i, "task_type": TASK, "batch_size": worker.max_batch,
                        "input_height": int(h), "input_width": int(w)} for i in model_ids(state)]}


# --- request parsing -------------------------------------------------------------------------------------------
def _number(value, name: str, lo: float, hi: float, integer: bool = False):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise RequestError(400, "%s=%r: give %s" % (name, value, "an integer" if integer else "a number"))
    if not lo <= value <= hi:
        raise RequestError(400, "%s=%s: must be within %s..%s" % (name, value, lo, hi))
    return int(value) if integer else float(value)


def _confidence(value, name: str = "confidence"):
    if value == "default":  # the model's default, as for /v1/detect
        return None
    if value == "best":
        raise RequestError(400, "%s='best' needs Roboflow's per-class thresholds from its model evaluation, which "
                                "this model does not have: give a number" % name)
    return _number(value, name, 0.0, 1.0)


def _image_items(doc: Dict[str, Any]) -> List[bytes]:
    """``image``: one ``{"type": "base64", "value": ...}`` or a list of them, to encoded image bytes."""
    image = doc.get("image")
    items = image if isinstance(image, list) else [image]
    if image is None or not items:
        raise RequestError(400, "JSON body needs 'image': {'type': 'base64', 'value': '<base64>'} or a list of them")
    items = [{"type": "base64", "value": item} if isinstance(item, str) else item for item in items]
    for i, item in enumerate(items):  # every item's type before any decoding: a url anywhere is refused as such
        where = "image[%d]" % i if isinstance(image, list) else "image"
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "url":
            raise RequestError(400, "%s: %s" % (where, URL_REFUSED))
        if kind == "numpy":
            raise RequestError(400, "%s: %s" % (where, NUMPY_REFUSED))
        if kind != "base64" or not isinstance(item.get("value"), str):
            raise RequestError(400, "%s: give {'type': 'base64', 'value': '<base64 JPEG or PNG>'}" % where)
    return [images.b64decode(item["value"]) for item in items]


def _detection_request(doc: Dict[str, Any], names: Dict[int, str]):
    """The JSON of ``/infer/object_detection`` to (images, params, class_filter). Fields Roboflow's server takes
    that change nothing here (preprocessing switches, active learning, source tags) are ignored, as it does."""
    if doc.get("visualize_predictions") is True:
        raise RequestError(400, "visualize_predictions is not served: this server answers predictions; draw them on "
                                "the client (supervision's annotators)")
    agnostic = doc.get("class_agnostic_nms")
    if agnostic is not None and not isinstance(agnostic, bool):
        raise RequestError(400, "class_agnostic_nms=%r: give true or false" % (agnostic,))
    class_filter = doc.get("class_filter") or None  # an empty list filters nothing, as in Roboflow's server
    if class_filter is not None:
        if not isinstance(class_filter, list) or not all(isinstance(c, str) for c in class_filter):
            raise RequestError(400, "class_filter: give a list of class names")
        unknown = sorted(set(class_filter) - set(names.values()))
        if unknown:  # Roboflow's server answers nothing for them; a misspelling is an error here
            raise RequestError(400, "class_filter names %s, not classes of this model (%s)"
                               % (", ".join(map(repr, unknown)), ", ".join(names[k] for k in sorted(names))))
    params = {"conf": _confidence(doc.get("confidence")),
              "iou": _number(doc.get("iou_threshold"), "iou_threshold", 0.0, 1.0),
              "max_det": _number(doc.get("max_detections"), "max_detections", 1, 10000, integer=True),
              "agnostic": bool(agnostic)}
    return _image_items(doc), params, class_filter


def _legacy_threshold(query, name: str):
    """The hosted API's confidence/overlap: a fraction, or percent when 1 or more (``confidence=50``), as
    Roboflow's server reads them; ``confidence=default``: the model's default."""
    raw = query.get(name)
    if raw is None:
        return None
    if name == "confidence" and raw in ("default", "best"):
        return _confidence(raw)
    try:
        value = float(raw)
    except ValueError:
        raise RequestError(400, "query %s=%r: not a number" % (name, raw)) from None
    if not 0.0 <= value <= 100.0:
        raise RequestError(400, "query %s=%s: give a fraction (0.4) or percent (40)" % (name, raw))
    return value / 100.0 if value >= 1.0 else value


def _legacy_params(query) -> Dict[str, Any]:
    """The hosted API's query (``POST /{project}/{version}``); parameters that change nothing here are ignored, as
    Roboflow's server ignores what it does not know."""
    for ours, theirs in (("conf", "confidence"), ("iou", "overlap"), ("max_det", "max_detections")):
        if ours in query:
            raise RequestError(400, "query %s: Roboflow's hosted API calls it %s (or use POST /v1/detect)" % (
                ours, theirs))
    if query.get("image"):
        raise RequestError(400, URL_REFUSED)
    if query.get("image_type", "base64") == "numpy":
        raise RequestError(400, NUMPY_REFUSED)
    if query.get("format", "json") != "json":
        raise RequestError(400, "format=%s (a drawn image) is not served: ask for format=json and draw the "
                                "predictions on the client" % query.get("format"))
    raw = query.get("max_detections")
    try:
        max_det = int(raw) if raw is not None else None
    except ValueError:
        raise RequestError(400, "query max_detections=%r: not an integer" % raw) from None
    if max_det is not None and not 1 <= max_det <= 10000:
        raise RequestError(400, "query max_detections=%s: must be within 1..10000" % raw)
    return {"conf": _legacy_threshold(query, "confidence"), "iou": _legacy_threshold(query, "overlap"),
            "max_det": max_det, "agnostic": False}


# --- routes ----------------------------------------------------------------------------------------------------
def _route(work, body: bool):
    """A Roboflow route: ``work(request, state, doc)`` under ``app.answer`` (load shedding, timeouts, metrics,
    JSON errors); ``body``: it reads a JSON body first, and the key in it when TokenAuth deferred to it."""
    async def endpoint(request):
        request.scope["edgekit.route"] = "roboflow"  # edgekit_requests_total's route label (metrics.py)
        state: ServerState = request.app.state.edgekit

        async def run():
            doc = await _read_json(request, state) if body else None
            if not body and request.scope.get(BODY_KEY) is not None:  # never deferred to a route without a body
                raise unauthorized()
            return await work(request, state, doc)

        return await answer(request, run)

    return endpoint


async def _read_json(request, state: ServerState):
    raw = await read_body(request, int(state.config.max_body_mb * 1024 * 1024))
    try:
        doc = await asyncio.get_running_loop().run_in_executor(state.pool, json.loads, raw) if raw else {}
    except ValueError as exc:
        if request.scope.get(BODY_KEY) is not None:
            raise unauthorized() from None
        raise RequestError(400, "body is not valid JSON: %s" % str(exc).splitlines()[0]) from None
    _check_body_key(request, doc)
    if not isinstance(doc, dict):
        raise RequestError(400, "body must be a JSON object")
    return doc


async def _server_info(request, state, doc):
    from edgekit import __version__

    return _json_response({"name": "edgekit serve", "version": __version__, "uuid": state.info.setdefault(
        "uuid", str(uuid.uuid4()))})


async def _model_registry(request, state, doc):
    check_available(state)
    return _json_response(_registry(state))


async def _model_add(request, state, doc):
    check_available(state)
    _check_model(state, doc.get("model_id"))  # the one served model is loaded already: nothing to download
    return _json_response(_registry(state))


async def _model_remove(request, state, doc):
    if request.url.path.endswith("/remove"):
        _check_model(state, doc.get("model_id"))
    raise RequestError(403, "edgekit serve keeps its model loaded for as long as it runs: stop the server "
                            "(systemctl stop, or SIGTERM) to unload it")


async def _detect_and_answer(state: ServerState, datas: List[bytes], params, class_filter, listed: bool, t_start):
    results = await detect_images(state, datas, params, t_start)
    for result in results:
        state.metrics.observe_stages(result.stages)
    names = state.info.get("names") or {}
    docs = [_response_doc(r, names, class_filter) for r in results]
    headers = {"X-Processing-Time": "%.6f" % (time.perf_counter() - t_start)}  # read by inference-sdk
    if len(results) == 1:
        headers["Server-Timing"] = ", ".join("%s;dur=%.2f" % (k, v) for k, v in results[0].stages.items())
    return _json_response(docs if listed else docs[0], headers=headers)


async def _infer_object_detection(request, state, doc):
    t_start = time.perf_counter()
    check_available(state)
    _check_model(state, doc.get("model_id"))
    if isinstance(doc.get("image"), list) and len(doc["image"]) > state.config.max_queue:  # could never be admitted
        raise RequestError(413, "%d images in one request; this server queues at most %d (--max-queue): send fewer "
                                "per request" % (len(doc["image"]), state.config.max_queue))
    names = state.info.get("names") or {}  # base64 decoding in the pool, off the event loop
    datas, params, class_filter = await asyncio.get_running_loop().run_in_executor(
        state.pool, _detection_request, doc, names)
    return await _detect_and_answer(state, datas, params, class_filter, isinstance(doc.get("image"), list), t_start)


async def _legacy_infer(request, state, doc):
    """``POST /{project}/{version}``: Roboflow's hosted API (inference-sdk after ``select_api_v0()``)."""
    t_start = time.perf_counter()
    check_available(state)
    params = _legacy_params(request.query_params)
    _check_model(state, "%s/%s" % (request.path_params["project"], request.path_params["version"]))
    kind = images.media_type(request.headers.get("content-type", ""))
    body = await read_body(request, int(state.config.max_body_mb * 1024 * 1024))
    if kind == images.MULTIPART_TYPE:
        from edgekit.serve.app import image_bytes

        data = await image_bytes(request, kind, body)
    else:
        data = await asyncio.get_running_loop().run_in_executor(state.pool, images.encoded_or_base64, body)
    return await _detect_and_answer(state, [data], params, None, False, t_start)


async def _not_served(request, state, doc):
    path = request.url.path
    if "workflows" in path.split("/"):
        message = ("workflows are not served: edgekit serve runs one object detector (POST /infer/object_detection); "
                   "run the rest of the workflow in your application")
    else:
        message = ("%s is not served: edgekit serve runs one object detector (%s): POST /infer/object_detection"
                   % (path, ", ".join(model_ids(state))))
    raise RequestError(501, message)


def _hosted_path(endpoint):
    """``/{project}/{version}`` takes any method, so that a path it does not serve is the router's answer: any
    other method is 404 (GET /v2/nothing), another route's path 405 (POST /v1/info)."""
    async def hosted(request):
        from starlette.exceptions import HTTPException
        from starlette.routing import Match

        if request.method != "POST":
            raise HTTPException(404)
        for route in request.app.router.routes:
            if route.endpoint is not hosted and route.matches(request.scope)[0] == Match.PARTIAL:
                raise HTTPException(405, "Method Not Allowed: this route takes %s"
                                    % ", ".join(sorted(route.methods or ())))
        return await endpoint(request)

    return hosted


def routes():
    """The Roboflow routes, to go after edgekit's own (``/{project}/{version}`` takes any other two-part path)."""
    from starlette.routing import Route

    post = ["POST"]
    return [Route("/info", _route(_server_info, False)),
            Route("/model/registry", _route(_model_registry, False)),
            Route("/model/add", _route(_model_add, True), methods=post),
            Route("/model/remove", _route(_model_remove, True), methods=post),
            Route("/model/clear", _route(_model_remove, True), methods=post),
            Route("/infer/object_detection", _route(_infer_object_detection, True), methods=post),
            Route("/infer/{task:path}", _route(_not_served, True), methods=post),
            Route("/workflows/{rest:path}", _route(_not_served, True), methods=post),
            Route("/{workspace}/workflows/{workflow}", _route(_not_served, True), methods=post),
            Route("/{project}/{version}", _hosted_path(_route(_legacy_infer, False)),
                  methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])]

