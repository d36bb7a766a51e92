"""Speed tables of docs/results/speed.md, each from the file its docstring names under benchmarks/."""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import List

from tables_format import bench_cells, load, model_label, num, pretty, report_table, span, table, yes_no


def bench_cpu2(root: Path) -> str:
    """edgekit bench of untrained YOLOv8n and YOLOv8m at 640 on 2 CPU cores (README headline).
    Source: benchmarks/cpu2-onnxruntime-yolov8n-m.json."""
    doc = load(root, "benchmarks/cpu2-onnxruntime-yolov8n-m.json")
    rows = [[model_label(r)] + bench_cells(r) for r in doc["results"]]
    return table(["model", "params", "GFLOPs", "preprocess", "inference", "postprocess", "e2e mean / p99",
                  "FPS (e2e)"], rows, "llrrrrrr")


def head_label(result: dict) -> str:
    """What the yolo26 table's ``head`` column says of one bench result."""
    if result.get("output_format") == "end2end":
        return "end-to-end, no NMS (`--end2end`)"
    if result["name"].startswith("yolo11"):
        return "one-to-many, host NMS (existing path)"
    return "one-to-many, host NMS"


def yolo26_cpu2(root: Path) -> str:
    """YOLO26n (host NMS and end-to-end) and YOLO11n beside YOLOv8n, untrained, 640, 2 CPU cores.
    Source: benchmarks/yolo26-cpu2/bench-untrained-640.json."""
    doc = load(root, "benchmarks/yolo26-cpu2/bench-untrained-640.json")
    rows = [[model_label(r), head_label(r)] + bench_cells(r) for r in doc["results"]]
    return table(["model", "head", "params", "GFLOPs", "preprocess", "inference", "postprocess", "e2e mean / p99",
                  "FPS (e2e)"], rows, "lllrrrrrr")


def vision_speed_cpu2(root: Path) -> str:
    """edgekit's preprocess and decode + NMS against ultralytics' torch implementation.
    Source: benchmarks/vision_speed-cpu2.json."""
    doc = load(root, "benchmarks/vision_speed-cpu2.json")
    rows = [[r["stage"], num(r["edgekit_ms"], 3), num(r["ultralytics_ms"], 3), "%#.3gx" % r["ratio"]]
            for r in doc["results"]]
    return table(["stage", "edgekit (ms)", "ultralytics (ms)", "ratio"], rows, "lrrr")


def peer_rows(doc: dict) -> List[List[str]]:
    model = "%s %d" % (pretty(Path(doc["model"]).stem.split("-")[0]), doc["imgsz"])
    size = re.search(r"lb(\d+x\d+)", doc["models"].get("edgekit-graph-letterbox", ""))
    labels = {"edgekit": "float (default)", "edgekit-graph-preprocess": "`--graph-preprocess`",
              "edgekit-graph-letterbox": "`--graph-letterbox %s`" % (size.group(1) if size else "WxH"),
              "ultralytics": "ultralytics `YOLO(onnx).predict`, float"}
    rows = []
    for key, label in labels.items():
        m = doc["median"][key]
        vs = "1" if key == "ultralytics" else num(m["overhead_vs_ultralytics"])
        rows.append([model, label, num(m["preprocess_ms"]), num(m["inference_ms"], 1), num(m["postprocess_ms"]),
                     num(m["overhead_ms"]), num(m["e2e_ms"], 1), vs])
    return rows


def peer_overhead_cpu2(root: Path) -> str:
    """Host work outside inference with and without in-graph preprocessing, against ultralytics' predict, YOLOv8n
    at 640 and 320 (medians of 5 interleaved rounds).
    Sources: benchmarks/peer_overhead-cpu2-yolov8n-640.json, benchmarks/peer_overhead-cpu2-yolov8n-320.json."""
    rows = []
    for size in (640, 320):
        rows += peer_rows(load(root, "benchmarks/peer_overhead-cpu2-yolov8n-%d.json" % size))
    return table(["model", "input", "pre ms", "inference ms", "post ms", "outside inference ms", "e2e ms",
                  "vs ultralytics"], rows, "llrrrrrr")


def model_at_size(path: str) -> str:
    """``.../yolov8n-320.onnx`` -> ``YOLOv8n 320``; no size in the name: ultralytics' default 640."""
    stem = Path(path).stem
    m = re.match(r"^(.*?)-(\d+)$", stem)
    return "%s %s" % (pretty(m.group(1)), m.group(2)) if m else "%s 640" % pretty(stem)


def camera_vs_bench_cpu2(root: Path) -> str:
    """The camera loop against edgekit bench end to end, same runner and threads, interleaved rounds.
    Source: benchmarks/camera_vs_bench-cpu2-yolov8n.json."""
    doc = load(root, "benchmarks/camera_vs_bench-cpu2-yolov8n.json")
    rows = []
    for m in doc["models"]:
        for loop in doc["loops"]:
            med = m["median"][loop]
            rows.append([model_at_size(m["model"]), loop + (" (default)" if loop == "pipelined" else ""),
                         num(m["median"]["bench_fps"], 1), num(med["loop_fps"], 1), num(med["engine_fps"], 1),
                         num(med["ratio"]), span([r[loop]["ratio"] for r in m["rounds"]])])
    return table(["model", "camera loop", "bench e2e FPS", "loop FPS", "engine-only FPS",
                  "loop / bench (median of rounds)", "per round"], rows, "llrrrrr")


def camera_soak_cpu2(root: Path) -> str:
    """A 10-minute edgekit camera run, one synthetic 1280x720 source, untrained YOLOv8n 640.
    Source: benchmarks/camera-soak-600s-cpu2-yolov8n.json."""
    doc = load(root, "benchmarks/camera-soak-600s-cpu2-yolov8n.json")
    rows = []
    for r in doc["results"]:
        e2e = r["stages"]["e2e"]
        rows.append([r["source"], r["label"], num(r["duration_s"], 0), r["frames"], num(r["fps"], 1),
                     num(r["engine_fps"], 1), "%s / %s" % (num(e2e["median"], 0), num(e2e["p99"], 0)),
                     num(r["rss_mb"]["start"], 1), num(r["rss_mb"]["end"], 1)])
    return table(["source", "model", "seconds", "frames", "loop FPS", "engine-only FPS", "e2e p50 / p99 ms",
                  "RSS MB when the loop started", "RSS MB at its end"], rows, "llrrrrrrr")


def multi_soak_cpu2(root: Path) -> str:
    """A 10-minute edgekit camera run of 4 synthetic 640x360 sources at 15 FPS through one dynamic-batch YOLOv8n
    320, with tracking and a counting line, per stream. Source: benchmarks/multi-soak-600s-cpu2-4src.json."""
    doc = load(root, "benchmarks/multi-soak-600s-cpu2-4src.json")
    rows = []
    for src, s in zip(doc["sources"], doc["summary"]["streams"]):
        batches = ", ".join("%s x %s" % (n, k) for k, n in sorted(s["batch_frames"].items(), key=lambda kv: kv[0]))
        rows.append(["`%s`" % src, s["frames"], num(s["fps"]), num(s["source_fps"], 1),
                     "%s / %s" % (num(s["e2e_p50"], 0), num(s["e2e_p99"], 0)), s["dropped"], batches])
    return table(["source", "frames", "FPS", "source FPS", "e2e p50 / p99 ms", "dropped", "frames x batch size"],
                 rows, "lrrrrrl")


def multi_soak_memory_cpu2(root: Path) -> str:
    """Resident memory of the 4-source run, sampled every 10 s. Source: benchmarks/multi-soak-600s-cpu2-4src.json."""
    doc = load(root, "benchmarks/multi-soak-600s-cpu2-4src.json")
    v, samples = doc["verdict"], doc["rss_samples"]
    rows = [[len(samples), num(samples[0][1], 1), num(v["rss_after_first_minute_mb"], 1),
             "%s-%s" % (num(v["rss_min_mb"], 1), num(v["rss_max_mb"], 1)), num(samples[-1][1], 1),
             "%.1f%%" % (100 * v["max_change"]), yes_no(v["flat_within_10pct"])]]
    return table(["samples", "RSS MB at 10 s", "after the first minute", "from then to the end", "at the end",
                  "largest change", "flat (within 10%)"], rows, "rrrrrrl")


THREAD_BUDGET_ROWS = [
    ("a_bench_inference_vs_bare_session", "(a) bench inference / bare `onnxruntime.InferenceSession` (ORT defaults, "
     "2 threads)", "ms"),
    ("b_bench_e2e_vs_ultralytics_predict", "(b) bench e2e / ultralytics `YOLO(onnx).predict` wall time, same frames",
     "ms"),
    ("c_camera_fps_vs_bench_e2e_fps", "(c) camera loop (`synthetic://?fps=0` 1280x720, headless, pipelined) / bench "
     "e2e FPS", "FPS"),
    ("d_kstream_fps_vs_bench_e2e_fps_at_batch", "(d) camera with 2 sources (`synthetic://?fps=0` 1280x720 each, one "
     "dynamic-batch ONNX, batches of 2) / `bench --batch 2` e2e FPS (images/s)", "FPS"),
    ("bench_sleeping_inference_vs_bare_session", "bench with sleeping threads (the previous default): inference / "
     "bare session", "ms"),
    ("bench_sleeping_e2e_vs_ultralytics_predict", "bench with sleeping threads: e2e / ultralytics predict", "ms"),
    ("camera_other_choice_fps_vs_bench_e2e_fps", "camera with sleeping threads / bench e2e FPS", "FPS"),
    ("camera_one_thread_less_spinning_vs_plan", "camera with one thread less, spinning / camera with the plan", "FPS"),
    ("camera_beside_busy_thread_spinning_vs_sleeping", "beside a thread busy 60% of a core: camera spinning / "
     "sleeping (the plan sleeps there)", "FPS"),
    ("camera_beside_busy_one_thread_less_spinning_vs_plan", "beside that thread: one thread less, spinning / the "
     "plan (2 threads, sleeping)", "FPS"),
]


def thread_budget_cpu2(root: Path) -> str:
    """ONNX Runtime's thread plan against its alternatives, YOLOv8n 640, medians of 8 rounds' ratios.
    Source: benchmarks/thread_budget-cpu2-yolov8n-640.json."""
    summary = load(root, "benchmarks/thread_budget-cpu2-yolov8n-640.json")["summary"]
    rows = []
    for key, label, unit in THREAD_BUDGET_ROWS:
        s = summary[key]
        ratio = num(s["median"], 3)
        rows.append([label, "**%s**" % ratio if s["goal"] else ratio,
                     "%s / %s %s" % (num(s["numerator_median"]), num(s["denominator_median"]), unit),
                     s["goal"] or ""])
    return table(["what (defaults unless said)", "ratio", "medians", "goal"], rows, "lrrl")


def track_count(root: Path, rel: str) -> str:
    doc = load(root, rel)
    rows = []
    for r in doc["results"]:
        rows.append([r["objects"], "%s ms" % num(r["track_ms"]), "%s ms" % num(r["line_ms"]),
                     "%s ms" % num(r["zone_ms"]), "%s ms" % num(r["draw_ms"]), "%s ms" % num(r["nms_ms"]),
                     "%.1fx" % (r["track_ms"] / r["nms_ms"]), "%.1fx" % ((r["line_ms"] + r["zone_ms"]) / r["nms_ms"])])
    return table(["objects", "track (ByteTrack)", "line", "zone", "draw line + zone", "decode + NMS", "track / NMS",
                  "line + zone / NMS"], rows, "rrrrrrrr")


def track_count_cpu2(root: Path) -> str:
    """Tracking and counting cost per frame against decode + NMS, Python 3.11, supervision 0.29.1.
    Source: benchmarks/track_count-cpu2.json."""
    return track_count(root, "benchmarks/track_count-cpu2.json")


def track_count_cpu2_py38(root: Path) -> str:
    """The same on Python 3.8 with supervision 0.25.1 (what a JetPack 5 box runs).
    Source: benchmarks/track_count-cpu2-py38-sv0251.json."""
    return track_count(root, "benchmarks/track_count-cpu2-py38-sv0251.json")


def held_label(step: dict) -> str:
    if step["held"]:
        return "yes"
    reasons = [re.sub(r"^stream [\d,]+ | \([^)]*\)$", "", why) for why in step["why"].split("; ")]
    return "no: %s (limited by %s)" % (" and ".join(reasons), step["limited_by"])


def streams_cpu2(root: Path) -> str:
    """edgekit streams: how many synthetic streams one dynamic-batch YOLOv8n 320 holds on 2 CPU cores.
    Sources: benchmarks/streams-cpu2/streams-1080p30-yolov8n-320.json, .../streams-360p15-yolov8n-320.json."""
    rows = []
    for name in ("streams-1080p30-yolov8n-320", "streams-360p15-yolov8n-320"):
        for result in load(root, "benchmarks/streams-cpu2/%s.json" % name)["results"]:
            what = "%dx%d at %g FPS" % (result["width"], result["height"], result["fps"])
            for i, s in enumerate(result["steps"]):
                rows.append([what if i == 0 else "", s["streams"], num(s["fps_min"], 1), num(s["fps_total"], 1),
                             "%s / %s" % (num(s["e2e_p50_max"], 0), num(s["e2e_p99_max"], 0)),
                             num(s["inference_ms"], 1), held_label(s)])
    return table(["streams", "K", "slowest stream FPS", "total FPS", "worst e2e p50 / p99 ms",
                  "inference ms per batch", "held"], rows, "lrrrrrl")


def serve_loopback_cpu2(root: Path) -> str:
    """edgekit report of a local bench and a remote bench over loopback at 1, 4, 16 and 64 frames in flight.
    Sources: benchmarks/serve-loopback-cpu2/bench.json, remote-bench.json (report.md there is the same table)."""
    return report_table(root, "benchmarks/serve-loopback-cpu2/", [
        "model", "pruned", "precision", "backend", "destination", "in flight", "params (M)", "GFLOPs", "pre ms",
        "infer ms", "post ms", "e2e ms", "FPS", "mAP50-95", "recall"], "llllllrrrrrrrrr")


def serve_overhead_cpu2(root: Path) -> str:
    """One 1280x720 JPEG served against the local bench, medians of interleaved rounds.
    Source: benchmarks/serve-overhead-cpu2.json."""
    doc = load(root, "benchmarks/serve-overhead-cpu2.json")
    s = doc["summary"]
    size = re.search(r"(\d+x\d+)", doc["image"])
    kb = re.search(r"(\d+ KB)", doc["image"])
    what = "one frame (%s JPEG%s)" % (size.group(1) if size else "", ", " + kb.group(1) if kb else "")
    rows = [
        ["local `edgekit bench` e2e (decoded frame: preprocess, inference, NMS)", num(s["local_e2e_ms"], 1), "1.00"],
        ["served, 1 frame in flight (post to JSON decoded, loopback)", num(s["served_1_latency_ms"], 1),
         num(s["served_over_local_ratio"], 3)],
        ["served minus local (medians, so the parts below need not add up)", num(s["served_minus_local_ms"], 1), ""],
        ["of which JPEG decode on the server (`cv2.imdecode`: %s ms locally)" % num(s["local_decode_ms"], 1),
         num(s["server_decode_ms"], 1), ""],
        ["of which outside the server (latency - server total: upload, HTTP both sides, JSON)",
         num(s["outside_server_ms"], 1), ""],
        ["**HTTP+JSON overhead** (client wait - server total), median (p90)",
         "**%s** (%s)" % (num(s["http_json_overhead_ms"]), num(s["http_json_overhead_p90_ms"], 1)), ""],
    ]
    return table([what, "ms", "vs local"], rows, "lrr")


def serve_concurrency_cpu2(root: Path) -> str:
    """Served throughput and latency against frames in flight, medians of interleaved rounds.
    Source: benchmarks/serve-overhead-cpu2.json."""
    s = load(root, "benchmarks/serve-overhead-cpu2.json")["summary"]
    rows = [[k, num(t["fps"]), num(t["ratio_to_local"]), num(t["latency_ms"], 0), num(t["overhead_ms"], 1)]
            for k, t in sorted(s["throughput"].items(), key=lambda kv: int(kv[0]))]
    return table(["frames in flight", "served frames/s", "vs local bench frames/s (%s)" % num(s["local_fps"]),
                  "median latency ms", "overhead ms"], rows, "rrrrr")


def power_overhead_cpu2(root: Path) -> str:
    """Cost of the power sampler reading a faked Xavier NX tree, 12 interleaved rounds with and without it.
    Source: benchmarks/power-overhead-cpu2-fake-xavier-nx.json."""
    doc = load(root, "benchmarks/power-overhead-cpu2-fake-xavier-nx.json")
    c, a = doc["sampler_cost"], doc["args"]
    ratios = [on / off for on, off in zip(doc["on_ms"], doc["off_ms"])]
    rows = [[a["fake"], "%d ms" % a["interval"], len(ratios), num(c["cpu_ms_per_sample"]), num(c["ms_per_sample"]),
             "%s%%" % num(c["cpu_percent"]), num(statistics.median(ratios)), span(ratios)]]
    return table(["faked board", "interval", "rounds", "CPU ms per reading", "wall ms per reading",
                  "share of one core", "e2e mean latency with / without (median)", "per round"], rows, "lrrrrrrr")
