"""Roboflow's own client, unchanged, against a real edgekit serve (ONNX Runtime, the trained synthetic fixture).

The client is the real ``inference-sdk`` in its own venv (it pins its own numpy and OpenCV), made by
``make clients-venv`` (``make test`` makes it): both of its protocols (the self-hosted server's "v1" and, after
``select_api_v0()``, the hosted API's), one image and a list, predictions equal to ``/v1/detect``'s for the same
image and thresholds. The key where that client puts it, 401 for every wrong or missing one, the refusals, and no
key in the access log are checked with plain HTTP.
"""

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from serve_helpers import ROOT, Server  # noqa: E402 - imports httpx

TOKEN = "rf-s3cret-key-0123"
MODEL_ID = "shapes/1"
NAME = "synthetic-yolov8n-160"
CLIENT_PYTHON = ROOT / ".venv-clients" / "bin" / "python"
CLIENT_SCRIPT = Path(__file__).parent / "clients" / "roboflow_client.py"


@pytest.fixture(scope="module")
def server(synthetic_model):
    server = Server(synthetic_model[2], "--model-id", MODEL_ID, "--max-queue", "8", token=TOKEN)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def frames(synthetic_model):
    """Three val images of the fixture's dataset (320x240 JPEG)."""
    return [str(p) for p in sorted((synthetic_model[0].parent / "images" / "val").glob("*.jpg"))[:3]]


def _client(calls):
    """Run the calls with inference-sdk in its own venv (tests/clients/roboflow_client.py); one result each."""
    if not CLIENT_PYTHON.exists():
        message = "Roboflow's client is not installed: make clients-venv (make test makes it)"
        if os.environ.get("EDGEKIT_REQUIRE_CLIENTS"):  # set by make test: CI runs it for real
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run([str(CLIENT_PYTHON), str(CLIENT_SCRIPT)], input=json.dumps(calls), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _native(server, path, conf=None, iou=None):
    """What POST /v1/detect answers for the same image and thresholds."""
    query = "&".join("%s=%s" % (k, v) for k, v in (("conf", conf), ("iou", iou)) if v is not None)
    response = server.post(Path(path).read_bytes(), params="?" + query if query else "")
    assert response.status_code == 200, response.text
    return response.json()


def _assert_equal(answer, native):
    """Roboflow's answer for one image holds /v1/detect's detections: same boxes, classes and confidences."""
    assert set(answer) == {"inference_id", "time", "image", "predictions"} and answer["time"] > 0
    assert answer["image"] == native["image"]
    got, want = answer["predictions"], native["detections"]
    assert len(got) == len(want)
    for p, d in zip(sorted(got, key=lambda p: -p["confidence"]), sorted(want, key=lambda d: -d["confidence"])):
        assert set(p) == {"x", "y", "width", "height", "confidence", "class", "class_id", "detection_id"}
        xyxy = [p["x"] - p["width"] / 2, p["y"] - p["height"] / 2, p["x"] + p["width"] / 2, p["y"] + p["height"] / 2]
        assert xyxy == pytest.approx(d["xyxy"], abs=0.02)
        assert (p["class"], p["class_id"], p["confidence"]) == (d["class_name"], d["class_id"], d["confidence"])


def _call(server, images, mode="v1", model_id=MODEL_ID, **extra):
    return dict({"url": server.url, "api_key": TOKEN, "model_id": model_id, "mode": mode, "images": images}, **extra)


@pytest.mark.parametrize("mode", ["v1", "v0"])
def test_real_client_one_image_and_a_list_equal_v1_detect(server, frames, mode):
    thresholds = {"confidence_threshold": 0.3, "iou_threshold": 0.5}
    model_ids = [MODEL_ID, NAME] if mode == "v1" else [MODEL_ID]  # v0 takes project/version only
    calls = [_call(server, frames[0], mode, model_id=m) for m in model_ids]
    calls += [_call(server, frames, mode),  # a list: one request per image (the client's max_batch_size 1)
              _call(server, frames, mode, config=dict(thresholds, max_batch_size=3))]  # v1: one request, 3 images
    results = _client(calls)
    assert all("ok" in r for r in results), results
    for single in results[:len(model_ids)]:
        _assert_equal(single["ok"], _native(server, frames[0]))
    listed, with_thresholds = results[-2]["ok"], results[-1]["ok"]
    assert isinstance(listed, list) and len(listed) == len(with_thresholds) == 3
    for answer, answer_thresholds, path in zip(listed, with_thresholds, frames):
        _assert_equal(answer, _native(server, path))
        _assert_equal(answer_thresholds, _native(server, path, conf=0.3, iou=0.5))
    assert sum(len(a["predictions"]) for a in listed) > 0  # the fixture finds shapes on these


def test_real_client_key_transports_inputs_and_errors(server, frames):
    ok = [_call(server, frames[0], config={"api_key_transport": t}) for t in ("legacy", "header", "both")]
    ok += [_call(server, frames[0], mode="v0", config={"api_key_transport": "header"})]
    ok += [_call(server, frames[0], **{"as": kind}) for kind in ("numpy", "pil", "base64")]
    ok += [dict(_call(server, None), call="registry")]
    bad = [dict(_call(server, frames[0]), api_key="wrong"), dict(_call(server, frames[0], "v0"), api_key="wrong"),
           _call(server, frames[0], model_id="other/7"), _call(server, frames[0], "v0", model_id="other/7")]
    results = _client(ok + bad)
    for result in results[:len(ok) - 1]:
        assert result["ok"]["image"] == {"width": 320, "height": 240}, result
        assert result["ok"]["predictions"] == [] or result["ok"]["predictions"][0]["class"] in (
            "circle", "square", "triangle")
    assert [m["model_id"] for m in results[len(ok) - 1]["ok"]["models"]] == [NAME, MODEL_ID]
    assert [r["error"]["status"] for r in results[len(ok):]] == [401, 401, 404, 404], results[len(ok):]
    assert "token" in results[len(ok)]["error"]["message"]  # the client shows the body's message
    assert "'other/7' is not served here" in results[-1]["error"]["message"] and MODEL_ID in results[-1]["error"][
        "message"]


def _b64(path):
    return base64.b64encode(Path(path).read_bytes()).decode()


def _infer_body(path, **fields):
    return dict({"model_id": MODEL_ID, "image": {"type": "base64", "value": _b64(path)}}, **fields)


ROUTES = [  # (method, path, JSON body or None): every Roboflow route
    ("GET", "/model/registry", None), ("GET", "/info", None), ("POST", "/model/add", {"model_id": MODEL_ID}),
    ("POST", "/model/remove", {"model_id": MODEL_ID}), ("POST", "/model/clear", None),
    ("POST", "/infer/object_detection", "image"), ("POST", "/infer/classification", {"model_id": MODEL_ID}),
    ("POST", "/infer/workflows/ws/flow", {}), ("POST", "/workflows/run", {}), ("POST", "/ws/workflows/flow", {}),
    ("POST", "/" + MODEL_ID, "base64"), ("POST", "/v1/detect", "jpeg")]
KEYS = [  # how a client gives the key: none, or a wrong one in each place the server takes it
    ("no key", {}, {}, None), ("wrong bearer", {"Authorization": "Bearer nope"}, {}, None),
    ("wrong query key", {}, {"api_key": "nope"}, None), ("wrong body key", {}, {}, "nope"),
    ("wrong bearer, right body key", {"Authorization": "Bearer nope"}, {}, TOKEN),
    ("two query keys, one right", {}, [("api_key", "nope"), ("api_key", TOKEN)], None),
    ("right key, other scheme", {"Authorization": "Basic " + TOKEN}, {}, None)]


def _request(server, method, path, body, frame, headers=None, params=None, body_key=None):
    if body == "image":
        body = _infer_body(frame)
    if isinstance(body, dict) and body_key is not None:
        body = dict(body, api_key=body_key)
    kwargs = {"json": body} if isinstance(body, dict) else {}
    if body == "base64":
        kwargs = {"content": _b64(frame), "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
    elif body == "jpeg":
        kwargs = {"content": Path(frame).read_bytes(), "headers": {"Content-Type": "image/jpeg"}}
    kwargs["headers"] = dict(kwargs.get("headers", {}), **(headers or {}))
    return httpx.request(method, server.url + path, params=params, timeout=60, **kwargs)


@pytest.mark.parametrize("case,headers,params,body_key", KEYS, ids=[k[0] for k in KEYS])
def test_every_route_answers_401_to_a_missing_or_wrong_key(server, frames, case, headers, params, body_key):
    for method, path, body in ROUTES:
        response = _request(server, method, path, body, frames[0], headers, params, body_key)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer" and "token" in response.json()["message"]


@pytest.mark.parametrize("where", ["bearer", "query", "body"])
def test_the_key_is_taken_where_roboflow_clients_put_it(server, frames, where):
    headers = {"Authorization": "Bearer " + TOKEN} if where == "bearer" else {}
    params = {"api_key": TOKEN} if where == "query" else None
    for method, path, body in ROUTES:
        if where == "body" and not isinstance(body, dict) and body != "image":
            continue  # only the JSON routes read a key in their body
        response = _request(server, method, path, body, frames[0], headers, params, TOKEN if where == "body" else None)
        assert response.status_code in (200, 403, 501), (method, path, response.text)  # 403/501: refused routes
    metrics = server.metrics()
    assert metrics["edgekit_requests_total[('code', '200'), ('route', 'roboflow')]"] >= 1


REFUSED = [  # (case, path, JSON body or (query, raw body), status, fragment of the message)
    ("url image", "/infer/object_detection", {"image": {"type": "url", "value": "http://10.0.0.1/a.jpg"}}, 400,
     "url images are refused"),
    ("url image in a list", "/infer/object_detection", {"image": [{"type": "base64", "value": "x"},
                                                                  {"type": "url", "value": "http://x/a.jpg"}]},
     400, "image[1]: url images are refused"),
    ("numpy image (a pickle)", "/infer/object_detection", {"image": {"type": "numpy", "value": "gASV"}}, 400,
     "never loads"),
    ("no image", "/infer/object_detection", {"image": None}, 400, "needs 'image'"),
    ("unknown model", "/infer/object_detection", {"model_id": "coco/3"}, 404, "'coco/3' is not served here"),
    ("no model id", "/infer/object_detection", {"model_id": None}, 400, "model_id is missing"),
    ("confidence best", "/infer/object_detection", {"confidence": "best"}, 400, "per-class thresholds"),
    ("confidence out of range", "/infer/object_detection", {"confidence": 40}, 400, "0.0..1.0"),
    ("drawn image", "/infer/object_detection", {"visualize_predictions": True}, 400, "draw them on the client"),
    ("unknown class in filter", "/infer/object_detection", {"class_filter": ["car"]}, 400, "'car'"),
    ("more images than --max-queue", "/infer/object_detection", {"image": [{"type": "base64", "value": "x"}] * 9},
     413, "--max-queue"),
    ("other task", "/infer/instance_segmentation", {"model_id": MODEL_ID}, 501, "one object detector"),
    ("workflow", "/infer/workflows", {"workflow_id": "x"}, 501, "workflows are not served"),
    ("unload", "/model/remove", {"model_id": MODEL_ID}, 403, "keeps its model loaded"),
    ("add an unknown model", "/model/add", {"model_id": "coco/3"}, 404, "'coco/3' is not served here"),
    ("hosted API url image", "/" + MODEL_ID, ("?image=http://10.0.0.1/a.jpg", b""), 400, "url images are refused"),
    ("hosted API numpy body", "/" + MODEL_ID, ("?image_type=numpy", b"gASV"), 400, "never loads"),
    ("hosted API drawn image", "/" + MODEL_ID, ("?format=image", b"x"), 400, "format=json"),
    ("hosted API edgekit names", "/" + MODEL_ID, ("?conf=0.5", b"x"), 400, "calls it confidence"),
    ("hosted API unknown model", "/coco/3", ("", b"x"), 404, "'coco/3' is not served here"),
    ("another route's path", "/v1/info", ("", b"x"), 405, "takes GET"),
]


@pytest.mark.parametrize("case,path,body,status,fragment", REFUSED, ids=[r[0] for r in REFUSED])
def test_what_is_not_served_is_refused_with_a_clear_json_error(server, frames, case, path, body, status, fragment):
    headers = {"Authorization": "Bearer " + TOKEN}
    if isinstance(body, dict):
        response = httpx.post(server.url + path, json=dict(_infer_body(frames[0]), **body), headers=headers, timeout=60)
    else:
        response = httpx.post(server.url + path + body[0], content=body[1], headers=headers, timeout=60)
    assert response.status_code == status, response.text
    doc = response.json()
    assert doc["message"] == doc["error"] and fragment in doc["message"] and "\n" not in doc["message"]


def test_hosted_api_thresholds_in_percent_and_json_options(server, frames):
    headers = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/x-www-form-urlencoded"}
    answers = [httpx.post(server.url + "/" + MODEL_ID + query, content=content, headers=headers, timeout=60).json()
               for query, content in (("?confidence=30&overlap=50", _b64(frames[1])),  # percent, as curl users give
                                      ("?confidence=0.3&overlap=0.5", _b64(frames[1])),  # fraction, as the client
                                      ("?confidence=30&overlap=50", Path(frames[1]).read_bytes()))]  # raw JPEG body
    answers.append(httpx.post(server.url + "/" + MODEL_ID + "?confidence=0.3&overlap=0.5", timeout=60,
                              headers={"Authorization": "Bearer " + TOKEN},
                              files={"file": ("x.jpg", Path(frames[1]).read_bytes(), "image/jpeg")}).json())
    native = _native(server, frames[1], conf=0.3, iou=0.5)
    for answer in answers:
        _assert_equal(answer, native)
    default = httpx.post(server.url + "/infer/object_detection", headers=headers, timeout=60,
                         json=_infer_body(frames[1], confidence="default", iou_threshold=None)).json()
    _assert_equal(default, _native(server, frames[1]))  # the model's defaults, as /v1/detect's
    everything = httpx.post(server.url + "/infer/object_detection", headers=headers, timeout=60, json=_infer_body(
        frames[1], confidence=0.05, class_agnostic_nms=True, disable_preproc_auto_orient=True, source="x")).json()
    assert everything["predictions"]  # fields that change nothing here are ignored, as Roboflow's server does
    kept = {p["class"] for p in everything["predictions"]}
    only = httpx.post(server.url + "/infer/object_detection", headers=headers, timeout=60, json=_infer_body(
        frames[1], confidence=0.05, class_agnostic_nms=True, class_filter=sorted(kept)[:1])).json()
    assert {p["class"] for p in only["predictions"]} == set(sorted(kept)[:1])


def test_keys_never_reach_the_access_log_and_v1_detect_takes_the_query_key(synthetic_model, frames):
    server = Server(synthetic_model[2], "--access-log", token=TOKEN)
    try:
        jpeg = Path(frames[0]).read_bytes()
        detect = httpx.post(server.url + "/v1/detect?api_key=%s&conf=0.3" % TOKEN, content=jpeg, timeout=60,
                            headers={"Content-Type": "image/jpeg"})
        assert detect.status_code == 200, detect.text
        assert httpx.get(server.url + "/model/registry?x=1&api%5Fkey=" + TOKEN, timeout=60).status_code == 200
        assert httpx.get(server.url + "/model/registry?api_key=wrong-key-9876", timeout=60).status_code == 401
    finally:
        code, out = server.stop()
    assert code == 0 and '"POST /v1/detect?conf=0.3 HTTP/1.1" 200' in out and "/model/registry?x=1 " in out, out
    assert TOKEN not in out and "wrong-key-9876" not in out and "api_key" not in out and "api%5F" not in out, out


@pytest.mark.parametrize("query,kept,keys", [
    (b"a=1&api_key=k1&b=2", b"a=1&b=2", [b"k1"]), (b"api%5Fkey=k%2B1+2", b"", [b"k+1 2"]),
    (b"api_key=a&api_key=b", b"", [b"a", b"b"]), (b"conf=0.3", b"conf=0.3", []), (b"", b"", [])])
def test_query_keys_are_taken_out_of_the_query_string(query, kept, keys):
    from edgekit.serve.access import take_query_keys

    scope = {"query_string": query}
    assert take_query_keys(scope) == keys and scope["query_string"] == kept


def test_model_id_option_is_checked():
    from helpers import invoke

    result = invoke(["serve", "model.onnx", "--model-id", "two words"])
    assert result.exit_code == 2 and "--model-id" in result.output and "shapes/3" in result.output
    for shadowed in ("model/add", "v1/detect", "infer/object_detection"):  # the server's own routes would win
        result = invoke(["serve", "model.onnx", "--model-id", shadowed])
        assert result.exit_code == 2 and "is a route of this server" in result.output, result.output


def test_a_bad_image_in_a_list_is_named_by_its_place(server, frames):
    body = _infer_body(frames[0], api_key=TOKEN)
    cut = base64.b64encode(Path(frames[1]).read_bytes()[:-200]).decode()  # no end-of-image marker
    body["image"] = [body["image"], {"type": "base64", "value": cut}]
    response = httpx.post(server.url + "/infer/object_detection", json=body, timeout=60)
    assert response.status_code == 400 and response.json()["message"].startswith("image[1]: truncated JPEG"), \
        response.text
