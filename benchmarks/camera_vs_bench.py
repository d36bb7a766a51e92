"""The camera loop against `edgekit bench` end to end, same model, same runner, same threads, same run.

    python benchmarks/camera_vs_bench.py engines/yolov8n-320.onnx engines/yolov8n.onnx --threads 2 \
        --rounds 5 --seconds 10 --json benchmarks/camera_vs_bench-cpu2.json

Each round runs `edgekit bench`'s timing loop (preprocess -> inference -> decode + NMS on 1280x720 synthetic
frames, one after another) for ``--seconds``, then the camera loop (capture thread, pipelined stages, drawing,
headless) on ``synthetic://?fps=0`` (a new 1280x720 frame whenever the loop takes one: no source frame rate
caps it) for ``--seconds``, on the same opened runner; the order alternates between rounds. Printed per model:
the median over rounds of bench e2e FPS, camera loop FPS, engine-only FPS and the per-round ratio loop / bench
(target >= 0.95 on a CPU), and the camera's bottleneck line. The machine may be busy with other work: only the
ratios within a round mean something.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


def bench_fps(runner, frames, seconds: float, threads: int) -> float:
    from edgekit.bench.core import BenchConfig, bench_model

    result = bench_model(runner, frames, BenchConfig(warmup=5, duration=seconds, threads=threads))
    return result["fps"]


def camera_summary(runner, seconds: float, loop: str) -> dict:
    from edgekit.camera.loop import CameraConfig, run_camera
    from edgekit.video.capture import Capture
    from edgekit.video.sources import SyntheticSource

    capture = Capture(SyntheticSource(1280, 720, 0), live=False)
    config = CameraConfig(duration=seconds, engine_iters=30, pipeline=loop == "pipelined", label=runner.path.stem)
    return run_camera(runner, capture, [], config)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--loops", default="pipelined", help="camera loops to time, comma-separated: pipelined "
                    "(edgekit camera's default), sequential (--no-pipeline)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from edgekit.bench.frames import synthetic_frames
    from edgekit.runtime import open_runner

    frames = synthetic_frames()
    doc = {"kind": "camera_vs_bench", "threads": args.threads, "rounds": args.rounds, "seconds": args.seconds,
           "loops": args.loops.split(","), "host": platform.node(), "cpus": os.cpu_count(),
           "load_avg_start": os.getloadavg(), "models": []}
    for model in args.models:
        rows = []
        with open_runner(model, "onnxruntime", threads=args.threads) as runner:
            for r in range(args.rounds):
                order = ["bench"] + args.loops.split(",")
                order = order if r % 2 == 0 else order[::-1]
                row = {}
                for what in order:
                    if what == "bench":
                        row["bench_fps"] = bench_fps(runner, frames, args.seconds, args.threads)
                        continue
                    s = camera_summary(runner, args.seconds, what)
                    row[what] = dict(loop_fps=s["fps"], engine_fps=s["engine_fps"], pipelined=s["pipelined"],
                                     bottleneck=s["bottleneck"]["line"], stage_ms=s["bottleneck"]["stage_ms"])
                for loop in args.loops.split(","):
                    row[loop]["ratio"] = round(row[loop]["loop_fps"] / row["bench_fps"], 3)
                    print("%s round %d: bench e2e %.1f FPS | %s loop %.1f FPS | engine-only %.1f | loop/bench %.3f"
                          " | %s" % (runner.path.name, r + 1, row["bench_fps"], loop, row[loop]["loop_fps"],
                                     row[loop]["engine_fps"], row[loop]["ratio"], row[loop]["bottleneck"]), flush=True)
                row["load_avg"] = os.getloadavg()[0]
                rows.append(row)
        med = {"bench_fps": round(statistics.median(r["bench_fps"] for r in rows), 2)}
        for loop in args.loops.split(","):
            med[loop] = {k: round(statistics.median(r[loop][k] for r in rows), 3)
                         for k in ("loop_fps", "engine_fps", "ratio")}
            print("%s median of %d rounds: bench e2e %.1f FPS | %s loop %.1f FPS | loop/bench %.3f (target >= 0.95)"
                  % (model, len(rows), med["bench_fps"], loop, med[loop]["loop_fps"], med[loop]["ratio"]), flush=True)
        doc["models"].append({"model": model, "rounds": rows, "median": med})
    doc["load_avg_end"] = os.getloadavg()
    doc["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if args.json:
        from edgekit.manifest import write_json_atomic

        write_json_atomic(args.json, doc)
        print("wrote %s" % args.json)


if __name__ == "__main__":
    main()
