"""Roboflow's own client (``inference-sdk``), unchanged, against a server: run with the client venv's Python
(``make clients-venv``), never edgekit's (inference-sdk pins its own numpy and OpenCV).

Reads a JSON list of calls on stdin and prints a JSON list of results, one per call:

    {"url": "http://127.0.0.1:8080", "api_key": "...", "model_id": "shapes/1", "mode": "v1" | "v0",
     "images": ["a.jpg", ...] | "a.jpg", "as": "path" | "numpy" | "pil" | "base64",
     "config": {InferenceConfiguration fields}, "call": "infer" | "registry" | "load_model" | "server_info"}

A result is ``{"ok": what the client returned}`` or ``{"error": {"type", "status", "message"}}``.
"""

import base64
import json
import sys
import warnings


def load(path, kind):
    if kind == "numpy":
        import cv2

        return cv2.imread(path)
    if kind == "pil":
        from PIL import Image

        return Image.open(path).convert("RGB")
    if kind == "base64":
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode()
    return path


def run(call):
    from inference_sdk import InferenceConfiguration, InferenceHTTPClient

    client = InferenceHTTPClient(api_url=call["url"], api_key=call.get("api_key"))
    client.configure(InferenceConfiguration(**call.get("config", {})))
    if call.get("mode") == "v0":
        client.select_api_v0()
    what = call.get("call", "infer")
    if what == "registry":
        return client.list_loaded_models().to_dict()
    if what == "load_model":
        return client.load_model(call["model_id"]).to_dict()
    if what == "server_info":
        return client.get_server_info().to_dict()
    images = call["images"]
    kind = call.get("as", "path")
    inputs = [load(p, kind) for p in images] if isinstance(images, list) else load(images, kind)
    return client.infer(inputs, model_id=call["model_id"])


def main():
    warnings.simplefilter("ignore")  # the client's advice on its api_key transport
    results = []
    for call in json.load(sys.stdin):
        try:
            results.append({"ok": run(call)})
        except Exception as exc:  # the client's own errors: HTTPCallErrorError carries the status and message
            results.append({"error": {"type": type(exc).__name__, "status": getattr(exc, "status_code", None),
                                      "message": getattr(exc, "api_message", None) or str(exc)}})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
