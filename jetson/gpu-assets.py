#!/usr/bin/env python3
"""Build, on the host, everything the GPU check needs that the GPU machine cannot make (it has no torch).

    make gpu-assets                        # or: python jetson/gpu-assets.py [--out DIR] [--full]

Writes into ``$EDGEKIT_GPU_ASSETS`` (default ``gpu-assets/`` in the project, git-ignored), about 50 MB:

  synthetic-yolov8n-160.onnx (+ .json)  the test suite's trained YOLOv8n (tests/conftest.py, cached in
                                        ~/.cache/edgekit-tests), exported at 160 px, with its edgekit manifest
  synthetic-yolov8n-160-int8-qdq.onnx   the same through ``edgekit quantize`` (ModelOpt Q/DQ, opset 17)
  synthetic-yolov8n-160-lb320x240-nms.onnx
                                        the same weights taking uint8 320x240 camera frames, letterboxed in the
                                        graph, with EfficientNMS_TRT (export --graph-letterbox 320x240 --trt-nms)
  synthetic-yolo26n-160-e2e.onnx (+ .json)
                                        the test suite's trained YOLO26n (build_synthetic_yolo26, cached beside
                                        it), exported at 160 px with its end-to-end head (export --end2end:
                                        [1, 300, 6], TopK in the graph, no NMS), with its manifest
  val/, calib/                          validation frames (detections vs ONNX Runtime) and calibration frames
  yolov8m-640.onnx                      with --full only: random-init YOLOv8m at 640 (about 100 MB; speed only)
  assets.json                           what is there, sha256 of every file, and what made it

The folder is written beside and renamed into place: an interrupted run leaves the previous assets intact.
tests/test_tensorrt_gpu.py and jetson/gpu-check.sh read it without importing torch or ultralytics.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_images(src: Path, dst: Path, count: int) -> int:
    dst.mkdir(parents=True)
    images = sorted(src.glob("*.jpg"))[:count]
    for image in images:
        shutil.copy(image, dst / image.name)
    return len(images)


def _frame_size(folder: Path):
    import cv2

    sizes = {cv2.imread(str(p)).shape[:2] for p in sorted(folder.glob("*.jpg"))}
    if len(sizes) != 1:
        raise SystemExit("gpu-assets: the val frames differ in size (%s); the letterbox model needs one" % sizes)
    return sizes.pop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("EDGEKIT_GPU_ASSETS") or str(ROOT / "gpu-assets"))
    parser.add_argument("--val", type=int, default=32, help="validation frames (default 32)")
    parser.add_argument("--calib", type=int, default=32, help="calibration frames (default 32)")
    parser.add_argument("--qdq-images", type=int, default=16, help="frames edgekit quantize calibrates on (16)")
    parser.add_argument("--full", action="store_true", help="also export a random-init YOLOv8m at 640 (~100 MB)")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    from edgekit.host.export import export
    from edgekit.host.graph import GraphOptions
    from edgekit.host.quantize import quantize
    from edgekit.manifest import package_versions, sha256_file
    from tests.conftest import build_synthetic_model, build_synthetic_yolo26

    t0 = time.perf_counter()
    data, pt, onnx = build_synthetic_model()  # trains once per machine (~4 min on 2 cores), then cached
    _, _, e2e, _ = build_synthetic_yolo26()  # the same, for YOLO26n: only its end-to-end ONNX travels
    out = Path(args.out).resolve()
    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    print("making the GPU check's assets in %s (renamed to %s when complete: the paths below are its files)"
          % (tmp, out.name), flush=True)
    for model in (onnx, e2e):  # each with its manifest: the engine's (head, max_det, names) comes from it
        shutil.copy(model, tmp / model.name)
        shutil.copy(model.with_name(model.name + ".json"), tmp / (model.name + ".json"))
    images = data.parent / "images"
    n_val = copy_images(images / "val", tmp / "val", args.val)
    n_calib = copy_images(images / "train", tmp / "calib", args.calib)
    qdq = Path(quantize(tmp / onnx.name, str(tmp / "calib"), out=str(tmp), images=args.qdq_images))
    frame_h, frame_w = _frame_size(tmp / "val")  # the val frames are what the NMS engine is fed, as they are
    nms = Path(export(weights=str(pt), imgsz=160, out=str(tmp),
                      graph=GraphOptions(letterbox=(frame_h, frame_w), nms=True)))
    full = None
    if args.full:
        full = Path(export(weights="yolov8m.yaml", imgsz=640, out=str(tmp), name="yolov8m-640.onnx"))
    files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
    doc = {
        "kind": "edgekit-gpu-assets", "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": onnx.name, "qdq": qdq.name, "nms": nms.name, "e2e": e2e.name,
        "full": full.name if full else None, "imgsz": 160,
        "frame": [frame_h, frame_w],
        "val": "val", "calib": "calib", "images": {"val": n_val, "calib": n_calib, "qdq": args.qdq_images},
        "files": files, "made_with": package_versions(["torch", "ultralytics", "onnx", "nvidia-modelopt"]),
    }
    (tmp / "assets.json").write_text(json.dumps(doc, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print("wrote %s (%d files, %.1f MB) in %.0f s: carry it to the GPU machine, where the check finds ./%s in the "
          "checkout (elsewhere: EDGEKIT_GPU_ASSETS=DIR)" % (out, len(files) + 1, size / 1e6, time.perf_counter() - t0,
                                                            out.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
