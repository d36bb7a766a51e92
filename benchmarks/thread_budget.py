"""ONNX Runtime's thread plan (edgekit.runtime.threads) against the goals of issue #24, same ONNX, one run.

    python benchmarks/thread_budget.py engines/yolov8n.onnx --threads 2 --rounds 8 --seconds 2.5 \
        --alternatives --json benchmarks/thread_budget-cpu2-yolov8n-640.json

(engines/yolov8n.onnx: ``edgekit export --weights yolov8n.yaml --imgsz 640 --out engines``; made so when missing.)
Each round runs every block for ``--seconds``, the order reversed every other round; the machine is shared, so
only ratios within a round mean something, and the summary is the median of the per-round ratios:

(a) ``edgekit bench`` (``bench_models``, its plan, its 1280x720 synthetic frames): inference stage mean ms /
    a bare ``onnxruntime.InferenceSession`` (ONNX Runtime's defaults, the same intra-op threads) run alone on
    the same input. Goal <= 1.05.
(b) bench e2e mean ms per frame / ultralytics' ``YOLO(onnx).predict(frame)`` wall time per frame, same frames,
    conf 0.25, IoU 0.7 (its session takes ONNX Runtime's defaults; torch its own thread count). Goal < 1.0.
(c) the camera loop (``run_camera`` on ``synthetic://?fps=0`` 1280x720, headless, pipelined, drawing on), the
    runner opened as ``edgekit camera`` opens it, with ``ort_threading("camera")``: loop FPS / bench e2e FPS.
    Goal >= 0.95.
(d) K streams (``--kstreams K``): ``edgekit camera`` with K ``synthetic://?fps=0`` 1280x720 sources through
    one dynamic-batch ONNX (``--kstream-model``), frames per second over all streams / ``edgekit bench --batch K``
    e2e FPS (images per second) on the same model. Goal >= 0.9.

``--alternatives`` adds what the plan decided against: bench with sleeping threads (the previous default),
the camera with the other spinning choice and with one intra-op thread less (spinning), and the camera beside
a thread busy ``--busy`` of a core (spinning, sleeping, one thread less), which is where the plan stops spinning.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

Block = Callable[[float], Dict[str, float]]  # runs for about `seconds`, returns named numbers
# (name, numerator, denominator, goal operator, goal value)
RATIOS = [
    ("a_bench_inference_vs_bare_session", "bench.inference_ms", "bare.inference_ms", "<=", 1.05),
    ("b_bench_e2e_vs_ultralytics_predict", "bench.e2e_ms", "ultralytics.wall_ms", "<", 1.0),
    ("c_camera_fps_vs_bench_e2e_fps", "camera.fps", "bench.fps", ">=", 0.95),
    ("d_kstream_fps_vs_bench_e2e_fps_at_batch", "kstream.fps", "bench_batch.fps", ">=", 0.9),
    # --alternatives: what the plan decided against, against the same bench
    ("bench_sleeping_inference_vs_bare_session", "bench_sleeping.inference_ms", "bare.inference_ms", None, None),
    ("bench_sleeping_e2e_vs_ultralytics_predict", "bench_sleeping.e2e_ms", "ultralytics.wall_ms", None, None),
    ("camera_other_choice_fps_vs_bench_e2e_fps", "camera_other.fps", "bench.fps", None, None),
    ("camera_beside_busy_thread_spinning_vs_sleeping", "busy_spinning.fps", "busy_sleeping.fps", None, None),
    ("camera_beside_busy_thread_plan_vs_bench", "busy_plan.fps", "bench.fps", None, None),
    ("camera_one_thread_less_spinning_vs_plan", "camera_fewer.fps", "camera.fps", None, None),
    ("camera_beside_busy_one_thread_less_spinning_vs_plan", "busy_fewer.fps", "busy_plan.fps", None, None),
]


def bench_block(model: str, threads: int, batch: Optional[int] = None, spinning: Optional[bool] = None) -> Block:
    """``edgekit bench`` as the command runs it (bench_models: its thread plan, its frames); ``spinning``
    replaces the plan's choice (EDGEKIT_ORT_SPINNING does the same for the command)."""
    from edgekit.bench.core import BenchConfig, bench_models

    def run(seconds: float) -> Dict[str, float]:
        env = os.environ.pop("EDGEKIT_ORT_SPINNING", None)
        if spinning is not None:
            os.environ["EDGEKIT_ORT_SPINNING"] = "1" if spinning else "0"
        try:
            r = bench_models([model], BenchConfig(backend="onnxruntime", warmup=3, duration=seconds, threads=threads,
                                                  batch=batch, power=False), show_progress=False)[0]
        finally:
            os.environ.pop("EDGEKIT_ORT_SPINNING", None)
            if env is not None:
                os.environ["EDGEKIT_ORT_SPINNING"] = env
        st = r["stages"]
        return {"inference_ms": st["inference"]["mean"], "e2e_ms": st["e2e"]["mean"], "fps": r["fps"],
                "preprocess_ms": st["preprocess"]["mean"], "postprocess_ms": st["postprocess"]["mean"]}

    return run


def bare_block(model: str, threads: int, blob) -> Block:
    """A plain onnxruntime.InferenceSession: ONNX Runtime's defaults but the intra-op thread count."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(seconds: float) -> Dict[str, float]:
        for _ in range(3):
            session.run(None, {name: blob})
        times: List[float] = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            session.run(None, {name: blob})
            times.append((time.perf_counter() - t0) * 1e3)
        return {"inference_ms": statistics.mean(times)}

    return run


def ultralytics_block(model: str, frames, imgsz: int) -> Block:
    from ultralytics import YOLO

    yolo = YOLO(model, task="detect")

    def run(seconds: float) -> Dict[str, float]:
        for frame in frames[:3]:
            yolo.predict(frame, imgsz=imgsz, conf=0.25, iou=0.7, verbose=False)
        walls: List[float] = []
        start, i = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            yolo.predict(frames[i % len(frames)], imgsz=imgsz, conf=0.25, iou=0.7, verbose=False)
            walls.append((time.perf_counter() - t0) * 1e3)
            i += 1
        return {"wall_ms": statistics.mean(walls), "fps": 1e3 / statistics.mean(walls)}

    return run


def camera_block(model: str, threads: int, spinning: Optional[bool] = None, busy: float = 0.0) -> Block:
    """The camera loop with the runner opened as ``edgekit camera`` opens it: the plan of
    ``ort_threading("camera")`` (``spinning`` replaces its choice), beside a thread busy ``busy`` of a core."""
    from edgekit.camera.loop import CameraConfig, run_camera
    from edgekit.runtime import open_runner, ort_threading
    from edgekit.video.capture import Capture
    from edgekit.video.outputs import Output
    from edgekit.video.sources import SyntheticSource

    class FrameClock(Output):
        """Notes when each frame leaves the loop: the steady FPS, without the pipeline's fill at the start."""

        def __init__(self) -> None:
            self.times: List[float] = []

        def write(self, frame, index=None) -> None:
            self.times.append(time.perf_counter())

    def run(seconds: float) -> Dict[str, float]:
        with BusyThread(busy):
            plan = ort_threading("camera", extra_threads=busy, intra_threads=threads)
            spin = plan.spinning if spinning is None else spinning
            with open_runner(model, "onnxruntime", threads=plan.threads, spinning=spin) as runner:
                capture, clock = Capture(SyntheticSource(1280, 720, 0), live=False), FrameClock()
                # engine_iters: the camera command's engine-only runs before the loop also warm the session
                s = run_camera(runner, capture, [clock], CameraConfig(duration=seconds, engine_iters=3,
                                                                      pipeline=True, label=runner.path.stem))
        t = clock.times
        return {"fps": (len(t) - 1) / (t[-1] - t[0]), "loop_fps": s["fps"], "spinning": float(spin),
                "bottleneck": s["bottleneck"]["line"]}

    return run


def kstream_blocks(run_kstream: Callable[[float], float], model: str, threads: int, batch: int) -> Dict[str, Block]:
    """(d): the K-stream loop against bench at the engine's batch. ``run_kstream(seconds)`` opens the runner as
    the multi-source command does (``ort_threading("camera", extra_threads=...)``), runs the loop for about
    ``seconds`` and returns frames per second over all streams."""
    return {"kstream": lambda seconds: {"fps": run_kstream(seconds)},
            "bench_batch": bench_block(model, threads, batch=batch)}


def kstream_loop(model: str, threads: int, k: int) -> Callable[[float], float]:
    """``edgekit camera`` with K sources, as the command runs it: K ``synthetic://?fps=0`` 1280x720 sources (a new
    frame whenever the loop takes one: no source caps it), the muxer, one batch of K per inference, NMS and drawing
    per frame, headless; the runner opened per run by ``camera_runner`` (its thread plan). Returns frames per
    second over all streams after half a second of warm-up."""
    from edgekit.camera.capacity import RunnerRequest
    from edgekit.camera.loop import CameraConfig
    from edgekit.camera.multi import MultiLoop, StreamSinks
    from edgekit.camera.multi_session import camera_runner, open_captures
    from edgekit.camera.mux import Stream
    from edgekit.video.uri import SourceOptions, parse_uri

    def run(seconds: float) -> float:
        uris = ["synthetic://?width=1280&height=720&fps=0&seed=%d" % (i + 1) for i in range(k)]
        captures = open_captures([parse_uri(u) for u in uris], SourceOptions(), 0)
        try:
            with camera_runner(RunnerRequest(model, "onnxruntime", threads), captures) as (runner, _):
                streams = [Stream(i, c.source.name, c) for i, c in enumerate(captures)]
                loop = MultiLoop(runner, streams, [StreamSinks() for _ in streams], [],
                                 CameraConfig(duration=seconds + 0.5, engine_iters=0, label=runner.path.stem), 0.05)
                for capture in captures:
                    capture.start()
                loop.mux.start()
                loop.measure_from = time.perf_counter() + 0.5
                loop.run()
                end = time.perf_counter()
        finally:
            for capture in captures:
                capture.stop()
        return loop.processed / (end - (loop.measured_at or end - 1))

    return run


class BusyThread:
    """A thread that keeps ``duty`` of a core busy (OpenCV work, which releases the GIL as capture decoding does)."""

    def __init__(self, duty: float) -> None:
        self.duty, self.stop, self.thread = duty, threading.Event(), None

    def _run(self) -> None:
        import cv2
        import numpy as np

        image = np.random.default_rng(0).integers(0, 255, (240, 1280, 3), dtype=np.uint8)
        while not self.stop.is_set():
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 0.004:
                cv2.GaussianBlur(image, (5, 5), 0)
            if self.duty < 1:
                time.sleep((time.perf_counter() - t0) * (1 - self.duty) / self.duty)

    def __enter__(self) -> BusyThread:
        if self.duty > 0:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def run_rounds(blocks: Dict[str, Block], rounds: int, seconds: float) -> List[Dict[str, float]]:
    names = list(blocks)
    rows = []
    for r in range(rounds):
        row: Dict[str, float] = {}
        for name in names if r % 2 == 0 else names[::-1]:
            for key, value in blocks[name](seconds).items():
                row["%s.%s" % (name, key)] = round(value, 3) if isinstance(value, float) else value
        row["load_avg"] = round(os.getloadavg()[0], 2)
        rows.append(row)
        print("round %d: %s" % (r + 1, " | ".join(
            "%s %.3f" % (name, a / b) for name, a, b in ratios_of(row))), flush=True)
    return rows


def ratios_of(row: Dict[str, float]):
    for name, num, den, _, _ in RATIOS:
        if num in row and den in row and row[den]:
            yield name, row[num], row[den]


def summarize(rows: List[Dict[str, float]]) -> Dict[str, Dict[str, object]]:
    out = {}
    for name, num, den, op, goal in RATIOS:
        per_round = [row[num] / row[den] for row in rows if num in row and den in row and row[den]]
        if not per_round:
            continue
        median = statistics.median(per_round)
        met = None if op is None else {"<=": median <= goal, "<": median < goal, ">=": median >= goal}[op]
        out[name] = {"median": round(median, 3), "per_round": [round(x, 3) for x in per_round],
                     "numerator_median": round(statistics.median(row[num] for row in rows if num in row), 3),
                     "denominator_median": round(statistics.median(row[den] for row in rows if den in row), 3),
                     "goal": None if op is None else "%s %s" % (op, goal), "met": met}
    return out


def ensure_model(path: str, dynamic: bool = False) -> str:
    if Path(path).is_file():
        return path
    from edgekit.host.export import export

    print("exporting %s from yolov8n.yaml (random init, 640%s)" % (path, ", dynamic" if dynamic else ""), flush=True)
    return str(export(weights="yolov8n.yaml", imgsz=640, dynamic=dynamic, out=str(Path(path).parent),
                      name=Path(path).name))


def main(argv: Optional[List[str]] = None, kstream: Optional[Callable[[float], float]] = None,
         kstream_batch: int = 1) -> Dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=str(ROOT / "engines" / "yolov8n.onnx"))
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: one per core)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.5, help="per block")
    ap.add_argument("--alternatives", action="store_true", help="also time what the plan decided against")
    ap.add_argument("--busy", type=float, default=0.6, help="--alternatives: the busy thread's share of a core")
    ap.add_argument("--kstreams", type=int, default=0,
                    help="(d): K synthetic sources through the multi-source loop (0: skip)")
    ap.add_argument("--kstream-model", default=str(ROOT / "engines" / "yolov8n-dynamic.onnx"),
                    help="(d): a dynamic-batch (export --dynamic) or static batch-K ONNX; made when missing")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from edgekit.runtime.threads import cpu_cores, ort_threading

    threads = args.threads or cpu_cores()
    # ultralytics sets OMP_NUM_THREADS=1 on import when unset; the bench and camera run with it unset, which
    # means one thread per core: say so, for every side
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.pop("EDGEKIT_ORT_SPINNING", None)  # the defaults are what is measured
    model = ensure_model(args.model)

    from edgekit.bench.frames import synthetic_frames
    from edgekit.runtime import open_runner
    from edgekit.vision.pipeline import Pipeline

    frames = synthetic_frames()
    with open_runner(model, "onnxruntime", threads=threads) as runner:
        blob, _ = Pipeline(runner).preprocess([frames[0]])
        imgsz = runner.input_hw()[0]
    camera_plan = ort_threading("camera", intra_threads=threads)
    blocks: Dict[str, Block] = {
        "bench": bench_block(model, threads),
        "bare": bare_block(model, threads, blob),
        "ultralytics": ultralytics_block(model, frames, imgsz),
        "camera": camera_block(model, threads),
    }
    if args.alternatives:
        blocks.update({
            "bench_sleeping": bench_block(model, threads, spinning=False),
            "camera_other": camera_block(model, threads, spinning=not camera_plan.spinning),
            "busy_spinning": camera_block(model, threads, spinning=True, busy=args.busy),
            "busy_sleeping": camera_block(model, threads, spinning=False, busy=args.busy),
            "busy_plan": camera_block(model, threads, busy=args.busy),
        })
        if threads > 1:  # make room instead: one intra-op thread less, spinning
            blocks.update({"camera_fewer": camera_block(model, threads - 1, spinning=True),
                           "busy_fewer": camera_block(model, threads - 1, spinning=True, busy=args.busy)})
    if kstream is None and args.kstreams:
        kmodel = ensure_model(args.kstream_model, dynamic=True)
        kstream, kstream_batch = kstream_loop(kmodel, threads, args.kstreams), args.kstreams
        blocks.update(kstream_blocks(kstream, kmodel, threads, kstream_batch))
    elif kstream is not None:
        blocks.update(kstream_blocks(kstream, model, threads, kstream_batch))
    plans = {"bench": ort_threading("bench", intra_threads=threads).as_dict(), "camera": camera_plan.as_dict(),
             "camera_beside_busy": ort_threading("camera", extra_threads=args.busy, intra_threads=threads).as_dict()}
    print("plans: %s" % "; ".join("%s: %s" % (k, v["reason"] + (" -> spin" if v["spinning"] else " -> sleep"))
                                  for k, v in plans.items()), flush=True)
    doc: Dict[str, object] = {
        "kind": "thread_budget", "model": Path(model).name, "imgsz": imgsz, "threads": threads,
        "rounds": args.rounds, "seconds": args.seconds, "busy": args.busy if args.alternatives else None,
        "plans": plans, "host": platform.node(), "cpus": os.cpu_count(), "load_avg_start": os.getloadavg(),
        "command": "python benchmarks/thread_budget.py %s" % " ".join(argv if argv is not None else sys.argv[1:]),
    }
    started = time.perf_counter()
    rows = run_rounds(blocks, args.rounds, args.seconds)
    summary = summarize(rows)
    for name, s in summary.items():
        print("%-50s median %.3f  (%s; rounds %s)%s" % (
            name, s["median"], "goal %s: %s" % (s["goal"], "met" if s["met"] else "NOT met") if s["goal"] else
            "%.2f / %.2f" % (s["numerator_median"], s["denominator_median"]),
            " ".join("%.2f" % x for x in s["per_round"]), ""), flush=True)
    doc.update(summary=summary, rounds_data=rows, load_avg_end=os.getloadavg(),
               seconds_total=round(time.perf_counter() - started, 1),
               finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    from edgekit.sysinfo import system_info

    doc["system"] = system_info()
    if args.json:
        from edgekit.manifest import write_json_atomic

        write_json_atomic(args.json, doc)
        print("wrote %s" % args.json)
    return doc


if __name__ == "__main__":
    main()
