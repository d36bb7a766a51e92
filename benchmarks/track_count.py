"""Cost per frame of tracking (ByteTrack) and counting (line, zone) against decode + NMS, same run.

    python benchmarks/track_count.py --threads 2 --rounds 5 --frames 200 --json benchmarks/track_count-cpu2.json

For N objects per frame (``--objects``, default 10, 70, 200) moving smoothly across a 1920x1080 frame (random
sizes 40..160 px, speeds 2..12 px per frame, bouncing off the edges, 1 px box noise, 3 classes, confidence
0.5..0.95), each round times per frame, over ``--frames`` consecutive frames with a fresh tracker and counters
(the first 10 frames are warm-up), one stage after another on each frame: ``track``
(edgekit.vision.track.Tracker.update: supervision's ByteTrack and the conversions), ``line`` (LineCounter.update
on the tracked boxes: a line across the middle), ``zone`` (ZoneCounter.update: a polygon over the middle quarter
of the frame), ``draw`` (both counters' draw on a 1920x1080 frame); and in a pass of its own, as the reference,
``nms`` (edgekit.vision.postprocess: decode + NMS + box mapping of a YOLOv8 [1, 84, 8400] output with 8
candidate anchors per object and low background scores, letterboxed 1920x1080 -> 640: NMS keeps 1.2-1.4 N
boxes, as small objects' candidates overlap less; nms_boxes_median in the JSON).
Rounds rotate the order of the object counts and alternate which pass goes first. Printed and written: the
median over rounds of each stage's median ms per frame, and each stage's ratio to NMS. Thread counts are set
explicitly (OMP/OpenBLAS/MKL and OpenCV) before numpy loads. The machine may be busy with other work: compare
within a run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _threads_from_argv(default: int = 2) -> int:
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return default


THREADS = _threads_from_argv()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

W, H, WARMUP = 1920, 1080, 10


def moving_objects(rng, n: int, frames: int):
    """Per frame, the Detections of ``n`` objects moving smoothly and bouncing off the frame's edges."""
    from edgekit.vision.detections import Detections

    size = rng.uniform(40, 160, (n, 2))
    pos = rng.uniform(0, 1, (n, 2)) * (np.array([W, H]) - size)
    speed = rng.uniform(2, 12, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    vel = np.stack([np.cos(angle), np.sin(angle)], 1) * speed[:, None]
    cls = rng.integers(0, 3, n).astype(np.int32) * 2  # person, car, truck-like ids 0, 2, 4
    conf = rng.uniform(0.5, 0.95, n).astype(np.float32)
    out = []
    for _ in range(frames):
        pos += vel
        for axis, limit in ((0, W), (1, H)):
            low, high = pos[:, axis] < 0, pos[:, axis] + size[:, axis] > limit
            vel[low | high, axis] *= -1
            pos[:, axis] = np.clip(pos[:, axis], 0, limit - size[:, axis])
        jitter = rng.normal(0, 1.0, (n, 4))  # a detector's box noise
        xyxy = np.concatenate([pos, pos + size], 1) + jitter
        out.append(Detections(xyxy.astype(np.float32), conf.copy(), cls.copy()))
    return out


def raw_output(rng, dets, lb, nc: int = 80, anchors: int = 8400, per_object: int = 8) -> np.ndarray:
    """A YOLOv8 [1, 4+nc, anchors] output whose NMS gives about the boxes of ``dets`` (in 640 input space)."""
    out = np.zeros((1, 4 + nc, anchors), np.float32)
    out[0, :2] = rng.uniform(0, 640, (2, anchors))
    out[0, 2:4] = rng.uniform(4, 60, (2, anchors))
    out[0, 4:] = rng.uniform(0, 0.05, (nc, anchors))
    idx = rng.choice(anchors, len(dets) * per_object, replace=False).reshape(len(dets), per_object)
    gx, gy = lb.gain
    for i, (box, cid) in enumerate(zip(dets.xyxy, dets.class_id)):
        cx, cy = (box[0] + box[2]) / 2 * gx + lb.pad[0], (box[1] + box[3]) / 2 * gy + lb.pad[1]
        w, h = (box[2] - box[0]) * gx, (box[3] - box[1]) * gy
        j = idx[i]
        out[0, 0, j] = cx + rng.normal(0, 1, per_object)
        out[0, 1, j] = cy + rng.normal(0, 1, per_object)
        out[0, 2, j] = w * rng.uniform(0.95, 1.05, per_object)
        out[0, 3, j] = h * rng.uniform(0.95, 1.05, per_object)
        out[0, 4 + cid, j] = rng.uniform(0.4, 0.9, per_object)
    return out


def time_pass(what: str, frames, outputs, lb, image) -> dict:
    """ms per frame of each stage over the frame sequence (fresh tracker and counters), warm-up frames left out:
    ``what`` "nms", or "track" (track, line, zone and draw timed one after another on each frame)."""
    from edgekit.vision.count import LineCounter, ZoneCounter
    from edgekit.vision.postprocess import postprocess
    from edgekit.vision.track import Tracker

    if what == "nms":
        times = []
        for k in range(len(frames)):
            t0 = time.perf_counter()
            postprocess(outputs[k % len(outputs)], [lb])
            times.append((time.perf_counter() - t0) * 1e3)
        return {"nms": times[WARMUP:]}
    names = {0: "person", 2: "car", 4: "truck"}
    tracker = Tracker(30)
    line = LineCounter((0, H / 2), (W, H / 2))
    zone = ZoneCounter([(W / 4, H / 4), (3 * W / 4, H / 4), (3 * W / 4, 3 * H / 4), (W / 4, 3 * H / 4)])
    out: dict = {"track": [], "line": [], "zone": [], "draw": []}
    for dets in frames:
        t0 = time.perf_counter()
        tracked = tracker.update(dets)
        t1 = time.perf_counter()
        line.update(tracked)
        t2 = time.perf_counter()
        zone.update(tracked)
        t3 = time.perf_counter()
        line.draw(image, names)
        zone.draw(image, names)
        t4 = time.perf_counter()
        for key, dt in (("track", t1 - t0), ("line", t2 - t1), ("zone", t3 - t2), ("draw", t4 - t3)):
            out[key].append(dt * 1e3)
    return {k: v[WARMUP:] for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=THREADS, help="BLAS/OpenMP and OpenCV threads (set before numpy)")
    ap.add_argument("--objects", default="10,70,200", help="objects per frame, comma-separated")
    ap.add_argument("--frames", type=int, default=200, help="consecutive frames per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    load_start = [round(v, 2) for v in os.getloadavg()]

    import supervision

    from edgekit.vision.postprocess import postprocess
    from edgekit.vision.preprocess import letterbox_plan

    lb = letterbox_plan((H, W), (640, 640)).letterbox
    image = np.zeros((H, W, 3), np.uint8)
    stages = ["track", "line", "zone", "draw", "nms"]
    counts = [int(n) for n in args.objects.split(",")]
    rng = np.random.default_rng(args.seed)
    data = {}
    for n in counts:
        frames = moving_objects(rng, n, args.frames)
        outputs = [raw_output(rng, frames[i], lb) for i in range(0, args.frames, max(args.frames // 10, 1))]
        data[n] = (frames, outputs, [len(postprocess(o, [lb])[0]) for o in outputs])
    per_round = {n: {s: [] for s in stages} for n in counts}
    t_start = time.perf_counter()
    for r in range(args.rounds):
        for i, n in enumerate(counts[r % len(counts):] + counts[:r % len(counts)]):
            for what in (("track", "nms") if (r + i) % 2 == 0 else ("nms", "track")):
                for stage, ms in time_pass(what, data[n][0], data[n][1], lb, image).items():
                    per_round[n][stage].append(statistics.median(ms))
        print("round %d/%d done (%.0f s)" % (r + 1, args.rounds, time.perf_counter() - t_start), flush=True)

    results = []
    print("threads=%d frames=%d rounds=%d supervision %s (median ms per frame, ratio to NMS)"
          % (args.threads, args.frames, args.rounds, supervision.__version__))
    print("%8s %10s %10s %10s %10s %10s %12s %12s" % ("objects", "track", "line", "zone", "draw", "nms",
                                                     "track/nms", "line+zone/nms"))
    for n in counts:
        med = {s: statistics.median(per_round[n][s]) for s in stages}
        row = {"objects": n, "nms_boxes_median": int(np.median(data[n][2]))}
        row.update({"%s_ms" % s: round(med[s], 4) for s in stages})
        row.update({"%s_per_nms" % s: round(med[s] / med["nms"], 2) for s in stages if s != "nms"})
        row["rounds_ms"] = {s: [round(v, 4) for v in per_round[n][s]] for s in stages}
        results.append(row)
        print("%8d %10.3f %10.3f %10.3f %10.3f %10.3f %11.2fx %11.2fx" % (
            n, med["track"], med["line"], med["zone"], med["draw"], med["nms"], med["track"] / med["nms"],
            (med["line"] + med["zone"]) / med["nms"]))
    if args.json:
        import scipy

        from edgekit.manifest import write_json_atomic
        from edgekit.sysinfo import system_info

        write_json_atomic(args.json, {
            "kind": "track_count", "threads": args.threads, "frames": args.frames, "rounds": args.rounds,
            "warmup_frames": WARMUP, "frame": [W, H], "seed": args.seed, "system": system_info(),
            "versions": {"supervision": supervision.__version__, "scipy": scipy.__version__, "numpy": np.__version__},
            "load_avg_start": load_start, "load_avg_end": [round(v, 2) for v in os.getloadavg()],
            "results": results})
        print("wrote %s" % args.json)


if __name__ == "__main__":
    main()
