"""Memory over a long multi-source run: K synthetic sources through one engine, RSS sampled as it goes.

    python benchmarks/multi_soak.py /tmp/w/syn160-dyn.onnx --sources 4 --seconds 600 --threads 2 \
        --json benchmarks/multi-soak-600s-cpu2-4src.json

Runs `edgekit camera SRC1..SRCK --headless --log` (the library call the command makes, with a frame log per
stream, tracking and a counting line when --track is given) for --seconds, samples this process's RSS every
--every seconds from another thread, and judges it flat when every sample after the first minute is within 10% of
the first sample after the first minute (the first minute holds ONNX Runtime's arena growth and the stats'
buffers filling). Prints the verdict and writes the samples, the verdict and the camera summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--every", type=float, default=10.0)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--track", action="store_true", help="also --track with a counting line across each frame")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    from edgekit.camera.analytics import AnalyticsConfig
    from edgekit.camera.session import CameraRequest, camera_session
    from edgekit.camera.stats import rss_mb

    width, height = (int(v) for v in args.size.split("x"))
    sources = ["synthetic://?width=%d&height=%d&fps=%g&seed=%d" % (width, height, args.fps, i + 1)
               for i in range(args.sources)]
    analytics = AnalyticsConfig(track=True, lines=[((width / 2, 0), (width / 2, height))]) if args.track else None
    samples = []
    stop = threading.Event()
    t0 = time.perf_counter()

    def sample() -> None:
        while not stop.wait(args.every):
            samples.append((round(time.perf_counter() - t0, 1), round(rss_mb(), 1)))

    sampler = threading.Thread(target=sample, daemon=True)
    with tempfile.TemporaryDirectory() as tmp:
        request = CameraRequest(source=sources[0], sources=sources, model=args.model, threads=args.threads,
                                display=False, duration=args.seconds, log=os.path.join(tmp, "run.jsonl"),
                                engine_iters=0, power=False, analytics=analytics or AnalyticsConfig())
        sampler.start()
        summary = camera_session(request)
        stop.set()
        log_lines = sum(1 for i in range(args.sources) for _ in open(os.path.join(tmp, "run-%d.jsonl" % i)))
    after = [rss for t, rss in samples if t >= 60.0]
    base = after[0] if after else None
    worst = max(abs(r - base) / base for r in after) if after else None
    verdict = {"rss_after_first_minute_mb": base, "rss_max_mb": max(after) if after else None,
               "rss_min_mb": min(after) if after else None,
               "max_change": round(worst, 4) if worst is not None else None,
               "flat_within_10pct": worst is not None and worst <= 0.10}
    print("%d sources for %.0f s: %d frames (%s per stream), %d log lines; RSS %s MB after the first minute, %s-%s MB "
          "after it (max change %.1f%%): %s" % (
              args.sources, args.seconds, summary["frames"], ", ".join(str(s["frames"]) for s in summary["streams"]),
              log_lines, base, verdict["rss_min_mb"], verdict["rss_max_mb"], 100 * (worst or 0),
              "flat" if verdict["flat_within_10pct"] else "NOT flat"))
    if args.json:
        doc = {"kind": "multi-soak", "model": args.model, "sources": sources, "seconds": args.seconds,
               "track": args.track, "threads": args.threads, "rss_samples": samples, "verdict": verdict,
               "log_lines": log_lines, "summary": {k: summary[k] for k in (
                   "frames", "fps", "duration_s", "streams", "batch", "stopped_by", "rss_mb", "bottleneck")}}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
