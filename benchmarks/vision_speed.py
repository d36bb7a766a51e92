"""Pre/postprocessing speed: edgekit (OpenCV/numpy, no torch) vs ultralytics' own (torch), same run.

    python benchmarks/vision_speed.py --threads 2 --repeat 200

Prints median ms per call and the ratio reference/edgekit (>1 means edgekit is faster). Needs the
export extra (torch, ultralytics) for the reference side. Threads are set explicitly for both sides.
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def raw_output(rng, nc=80, n=8400, size=640, confident=0.01):
    """A trained-looking raw output: most anchors near zero, ~1% confident ones clustered on objects."""
    xy = rng.random((1, 2, n)) * size
    wh = rng.random((1, 2, n)) * size / 6 + 4
    scores = rng.random((1, nc, n)).astype(np.float32) * 0.05
    hot = rng.random(n) < confident
    scores[0, rng.integers(0, nc, hot.sum()), np.flatnonzero(hot)] = rng.random(hot.sum()) * 0.7 + 0.3
    return np.concatenate([xy, wh, scores], 1).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils import ops
    from ultralytics.utils.nms import non_max_suppression

    from edgekit.vision import postprocess, preprocess

    torch.set_num_threads(args.threads)  # ultralytics sets OMP_NUM_THREADS=1 on import: be explicit
    cv2.setNumThreads(args.threads)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    size = (args.imgsz, args.imgsz)
    out = raw_output(rng, size=args.imgsz)
    _, boxes = preprocess([frame], size)

    def pre_reference():  # what ultralytics' predictor does: LetterBox, BGR->RGB, HWC->CHW, /255
        im = np.stack([LetterBox(size, auto=False)(image=frame)])
        im = np.ascontiguousarray(im[..., ::-1].transpose((0, 3, 1, 2)))
        return torch.from_numpy(im).float() / 255

    def post_reference():
        pred = non_max_suppression(torch.from_numpy(out), conf_thres=0.25, iou_thres=0.7)[0]
        pred[:, :4] = ops.scale_boxes(size, pred[:, :4], frame.shape[:2])
        return pred

    rows = [
        ("preprocess 1280x720 -> %d" % args.imgsz, lambda: preprocess([frame], size), pre_reference),
        ("decode + NMS + scale (8400 anchors)", lambda: postprocess(out, boxes), post_reference),
    ]
    results = []
    print("threads=%d repeat=%d (median ms per call)" % (args.threads, args.repeat))
    print("%-40s %10s %12s %8s" % ("stage", "edgekit", "ultralytics", "ratio"))
    for name, ours, ref in rows:
        a, b = median_ms(ours, args.repeat), median_ms(ref, args.repeat)
        results.append({"stage": name, "edgekit_ms": round(a, 4), "ultralytics_ms": round(b, 4),
                        "ratio": round(b / a, 2)})
        print("%-40s %10.3f %12.3f %7.2fx" % (name, a, b, b / a))
    if args.json:
        from edgekit.manifest import write_json_atomic
        from edgekit.sysinfo import system_info

        write_json_atomic(args.json, {"kind": "vision_speed", "threads": args.threads, "system": system_info(),
                                      "results": results})


if __name__ == "__main__":
    main()
