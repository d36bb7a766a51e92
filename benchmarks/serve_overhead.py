"""What serving costs: edgekit serve on loopback against the local edgekit bench pipeline, in one run.

Interleaved rounds (the machine is shared, so each round measures local and served back to back and the
summary is the median of the per-round ratios): per round,

- local: ``edgekit bench``'s pipeline (preprocess, inference, NMS) on decoded 1280x720 frames, and the same
  plus ``cv2.imdecode`` of the JPEG (what the server must do that a camera loop does not);
- served: the remote bench client (``edgekit.serve.client``) posting the same frames as JPEG to a real
  ``edgekit serve`` process on 127.0.0.1, one frame in flight, then 4, 16, 64.

Reported: served single-frame latency minus local e2e (ms and ratio), the HTTP+JSON overhead (client wait
minus server total, per request), and throughput at each number of frames in flight against the local
bench's frames/s (one frame at a time: the engine-bound limit). ``outside_server_ms`` is the client latency minus
the server's total: upload, network, HTTP on both sides and the client's JSON decode.

    edgekit export --weights yolov8n.yaml --imgsz 640 --out /tmp/m
    python benchmarks/serve_overhead.py --model /tmp/m/yolov8n.onnx --threads 2 --rounds 3 \
        --out benchmarks/serve-overhead-cpu2.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekit.bench.core import BenchConfig, bench_model  # noqa: E402
from edgekit.bench.frames import synthetic_frames  # noqa: E402
from edgekit.runtime import open_runner  # noqa: E402
from edgekit.serve.client import BenchPlan, Loadgen  # noqa: E402
from edgekit.serve.images import encode_jpeg  # noqa: E402
from edgekit.sysinfo import system_info  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Quiet:
    def advance(self, task):
        pass


def local_round(runner, frames, jpegs, iterations):
    config = BenchConfig(warmup=3, iterations=iterations, threads=runner.threads)
    result = bench_model(runner, frames, config)
    decode = []
    for i in range(iterations):
        t0 = time.perf_counter()
        cv2.imdecode(jpegs[i % len(jpegs)], cv2.IMREAD_COLOR)
        decode.append((time.perf_counter() - t0) * 1e3)
    return {"e2e_median": result["stages"]["e2e"]["median"], "e2e_mean": result["stages"]["e2e"]["mean"],
            "decode_median": statistics.median(decode), "fps": result["fps"],
            "inference_median": result["stages"]["inference"]["median"]}


def served_round(url, bodies, steps, requests_for):
    gen = Loadgen(BenchPlan(url=url, warmup=3), bodies)
    out = {}
    for c in steps:
        gen.plan.requests = requests_for(c)
        step = asyncio.run(gen.closed(c, _Quiet(), None))
        assert step["errors"] == 0, step["status_counts"]
        out[c] = {"latency_median": step["latency"]["median"], "fps": step["throughput_fps"],
                  "wait_median": step["client"]["wait"]["median"],
                  "server_total_median": step["server"]["total"]["median"],
                  "overhead_median": step["client"]["overhead"]["median"],
                  "outside_server_median": step["latency"]["median"] - step["server"]["total"]["median"],
                  "overhead_p90": step["client"]["overhead"]["p90"],
                  "server_decode_median": step["server"]["decode"]["median"],
                  "upload_median": step["client"]["upload"]["median"]}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--steps", default="1,4,16,64")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    frames = synthetic_frames()
    bodies = [encode_jpeg(f, args.jpeg_quality) for f in frames]
    import numpy as np

    jpegs = [np.frombuffer(b, np.uint8) for b in bodies]
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen([sys.executable, "-m", "edgekit", "serve", args.model, "--port", str(port),
                               "--threads", str(args.threads), "--max-queue", "256", "--timeout", "600"], env=env)
    try:
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        server_info = httpx.get(url + "/v1/info").json()
        rounds = []
        with open_runner(args.model, "onnxruntime", threads=args.threads) as runner:
            for r in range(args.rounds):
                local = local_round(runner, frames, jpegs, args.iterations)
                served = served_round(url, bodies, steps, lambda c: max(args.iterations, 2 * c))
                rounds.append({"local": local, "served": served})
                print("round %d: local e2e %.1f ms (%.1f fps), served 1 in flight %.1f ms, overhead %.2f ms; fps %s"
                      % (r + 1, local["e2e_median"], local["fps"], served[1]["latency_median"],
                         served[1]["overhead_median"], {c: served[c]["fps"] for c in steps}), file=sys.stderr)
    finally:
        server.terminate()
        server.wait(60)

    def med(values):
        return round(statistics.median(values), 3)

    summary = {
        "local_e2e_ms": med([r["local"]["e2e_median"] for r in rounds]),
        "local_decode_ms": med([r["local"]["decode_median"] for r in rounds]),
        "local_fps": med([r["local"]["fps"] for r in rounds]),
        "served_1_latency_ms": med([r["served"][1]["latency_median"] for r in rounds]),
        "served_minus_local_ms": med([r["served"][1]["latency_median"] - r["local"]["e2e_median"] for r in rounds]),
        "served_over_local_ratio": med([r["served"][1]["latency_median"] / r["local"]["e2e_median"] for r in rounds]),
        "served_minus_local_and_decode_ms": med([r["served"][1]["latency_median"] - r["local"]["e2e_median"]
                                                 - r["local"]["decode_median"] for r in rounds]),
        "http_json_overhead_ms": med([r["served"][1]["overhead_median"] for r in rounds]),
        "http_json_overhead_p90_ms": med([r["served"][1]["overhead_p90"] for r in rounds]),
        "outside_server_ms": med([r["served"][1]["outside_server_median"] for r in rounds]),
        "server_decode_ms": med([r["served"][1]["server_decode_median"] for r in rounds]),
        "upload_ms": med([r["served"][1]["upload_median"] for r in rounds]),
        "throughput": {c: {"fps": med([r["served"][c]["fps"] for r in rounds]),
                           "ratio_to_local": med([r["served"][c]["fps"] / r["local"]["fps"] for r in rounds]),
                           "latency_ms": med([r["served"][c]["latency_median"] for r in rounds]),
                           "overhead_ms": med([r["served"][c]["overhead_median"] for r in rounds])}
                       for c in steps},
    }
    document = {"benchmark": "serve_overhead", "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                "how": "interleaved rounds on a shared machine: each round benches local then served back to back; "
                       "summary = median over rounds of per-round medians and ratios",
                "model": Path(args.model).name, "image": "synthetic 1280x720, JPEG quality %d, %d KB mean"
                % (args.jpeg_quality, sum(map(len, bodies)) // len(bodies) // 1024),
                "threads": args.threads, "server_http": server_info.get("http"), "server_loop": server_info.get("loop"),
                "system": system_info(), "summary": summary, "rounds": rounds}
    text = json.dumps(document, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
