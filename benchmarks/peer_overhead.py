"""edgekit's per-frame work outside inference against ultralytics' `YOLO(onnx).predict`, same ONNX, same run.

    python benchmarks/peer_overhead.py engines/yolov8n.onnx --preprocess-model engines/yolov8n-u8.onnx \
        --letterbox-model engines/yolov8n-lb1280x720.onnx --threads 2 --rounds 5 --frames 40 \
        --json benchmarks/peer_overhead-cpu2-yolov8n-640.json

Every round feeds the same 1280x720 synthetic frames (edgekit.bench.frames.synthetic_frames) to:
ultralytics ``YOLO(onnx, task="detect").predict(frame, imgsz, conf=0.25, iou=0.7)`` on the float ONNX, and
edgekit's bench loop (``edgekit.bench.core.bench_model``: preprocess -> Runner.infer -> decode + NMS) on the float
ONNX, on the ``--graph-preprocess`` ONNX (uint8 input: the host only letterboxes) and on the
``--graph-letterbox 1280x720`` ONNX (the host passes the frame as it is); the order rotates between rounds.
Overhead outside inference, per frame (medians): edgekit, preprocess + postprocess as bench times them;
ultralytics, the predict call's wall time minus its own ``speed["inference"]`` (the ONNX Runtime session run).
ONNX Runtime uses ``--threads`` intra-op threads on both sides (ultralytics' session takes ONNX Runtime's
default, one per core, so pass the core count), and torch ``--threads`` threads for ultralytics' pre/post.
Printed: per round and the median over rounds, the overhead ratio edgekit / ultralytics (target <= 0.5) and
e2e FPS. The machine may be busy with other work: compare within a round.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np


def edgekit_round(runner, frames, n: int) -> dict:
    from edgekit.bench.core import BenchConfig, bench_model

    r = bench_model(runner, frames, BenchConfig(warmup=3, iterations=n, threads=None))
    st = r["stages"]
    return {"overhead_ms": st["preprocess"]["median"] + st["postprocess"]["median"],
            "preprocess_ms": st["preprocess"]["median"], "postprocess_ms": st["postprocess"]["median"],
            "inference_ms": st["inference"]["median"], "e2e_ms": st["e2e"]["median"], "fps": r["fps"]}


def ultralytics_round(model, frames, n: int, imgsz: int) -> dict:
    walls, infer, pre, post = [], [], [], []
    for i in range(n + 3):
        frame = frames[i % len(frames)]
        t0 = time.perf_counter()
        result = model.predict(frame, imgsz=imgsz, conf=0.25, iou=0.7, verbose=False)[0]
        wall = (time.perf_counter() - t0) * 1e3
        if i >= 3:  # warm-up
            walls.append(wall)
            infer.append(result.speed["inference"])
            pre.append(result.speed["preprocess"])
            post.append(result.speed["postprocess"])
    overhead = [w - i for w, i in zip(walls, infer)]
    return {"overhead_ms": float(np.median(overhead)), "preprocess_ms": float(np.median(pre)),
            "postprocess_ms": float(np.median(post)), "inference_ms": float(np.median(infer)),
            "e2e_ms": float(np.median(walls)), "fps": round(1e3 / float(np.mean(walls)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="the float ONNX from edgekit export")
    ap.add_argument("--preprocess-model", default=None, help="the same model exported with --graph-preprocess")
    ap.add_argument("--letterbox-model", default=None, help="the same model exported with --graph-letterbox 1280x720")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=40, help="timed frames per side per round")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    os.environ.setdefault("YOLO_OFFLINE", "1")
    import cv2
    import torch
    from ultralytics import YOLO

    from edgekit.bench.frames import synthetic_frames
    from edgekit.runtime import open_runner

    torch.set_num_threads(args.threads)  # ultralytics sets OMP_NUM_THREADS=1 on import: be explicit
    cv2.setNumThreads(args.threads)
    frames = synthetic_frames()
    sides = {"edgekit": args.model, "edgekit-graph-preprocess": args.preprocess_model,
             "edgekit-graph-letterbox": args.letterbox_model}
    runners = {k: open_runner(v, "onnxruntime", threads=args.threads) for k, v in sides.items() if v}
    imgsz = runners["edgekit"].input_hw()[0]
    peer = YOLO(args.model, task="detect")
    names = list(runners) + ["ultralytics"]
    rounds = []
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        row = {}
        for name in order:
            if name == "ultralytics":
                row[name] = ultralytics_round(peer, frames, args.frames, imgsz)
            else:
                row[name] = edgekit_round(runners[name], frames, args.frames)
        ref = row["ultralytics"]["overhead_ms"]
        for name in runners:
            row[name]["overhead_vs_ultralytics"] = round(row[name]["overhead_ms"] / ref, 3)
            row[name]["e2e_fps_vs_ultralytics"] = round(row[name]["fps"] / row["ultralytics"]["fps"], 3)
        print("round %d: overhead outside inference (ms): %s" % (r + 1, " | ".join(
            "%s %.2f%s" % (n, row[n]["overhead_ms"], " (x%.2f)" % row[n]["overhead_vs_ultralytics"]
                           if n != "ultralytics" else "") for n in names)), flush=True)
        row["load_avg"] = os.getloadavg()[0]
        rounds.append(row)
    summary = {}
    for name in names:
        keys = [k for k in rounds[0][name] if isinstance(rounds[0][name][k], (int, float))]
        summary[name] = {k: round(statistics.median(r[name][k] for r in rounds), 3) for k in keys}
    print("median of %d rounds (%s, %dx%d input, %d threads):" % (args.rounds, os.path.basename(args.model), imgsz,
                                                                   imgsz, args.threads))
    print("%-26s %9s %9s %9s %9s %9s %9s %9s" % ("side", "pre ms", "infer ms", "post ms", "overhead", "e2e ms", "FPS",
                                                 "ovh/ultr"))
    for name in names:
        s = summary[name]
        print("%-26s %9.2f %9.2f %9.2f %9.2f %9.2f %9.1f %9s" % (
            name, s["preprocess_ms"], s["inference_ms"], s["postprocess_ms"], s["overhead_ms"], s["e2e_ms"], s["fps"],
            "%.3f" % s["overhead_vs_ultralytics"] if "overhead_vs_ultralytics" in s else "-"))
    for runner in runners.values():
        runner.close()
    if args.json:
        from edgekit.manifest import package_versions, write_json_atomic

        write_json_atomic(args.json, {
            "kind": "peer_overhead", "model": args.model, "models": sides, "imgsz": imgsz, "threads": args.threads,
            "rounds": rounds, "median": summary, "host": platform.node(), "cpus": os.cpu_count(),
            "versions": package_versions(["ultralytics", "torch", "onnxruntime", "opencv-python", "numpy"]),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        print("wrote %s" % args.json)


if __name__ == "__main__":
    main()
