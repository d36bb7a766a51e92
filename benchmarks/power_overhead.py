"""What the power sampler costs the benchmark: edgekit bench with --power vs --no-power, interleaved rounds.

    python benchmarks/power_overhead.py engines/yolov8n.onnx --threads 2 --rounds 6 --iterations 100
    python benchmarks/power_overhead.py MODEL.onnx --fake xavier-nx    # read a faked Xavier NX sysfs tree

Each round benches the same model twice, once with the sampler and once without (order alternating), on the
same frames, and prints the median ratio of end-to-end mean latency (power on / power off; 1.00 = no cost) with
the sampler's own cost (ms of CPU per reading, % of one core). On a box without sensors the sampler does not
run at all, so ``--fake`` reads the test suite's faked Jetson tree (real file reads, constant values).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--interval", type=int, default=100, help="--power-interval in ms")
    ap.add_argument("--fake", choices=["xavier-nx", "orin-nano"], default=None)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    from edgekit.bench import BenchConfig, bench_models
    from edgekit.box import Box
    from edgekit.power import sampler, sources

    if args.fake:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        import fake_boxes

        root = Path(tempfile.mkdtemp(prefix="edgekit-fake-"))
        getattr(fake_boxes, "fake_" + args.fake.replace("-", "_"))(root)
        sampler.Box = lambda: Box(root)
        sources.open_nvml = lambda module="pynvml": None

    def run(power: bool):
        config = BenchConfig(warmup=5, iterations=args.iterations, threads=args.threads, power=power,
                             power_interval=args.interval)
        return bench_models([args.model], config, show_progress=False)[0]

    on, off, costs = [], [], []
    for i in range(args.rounds):
        for power in ((True, False) if i % 2 == 0 else (False, True)):
            r = run(power)
            (on if power else off).append(r["stages"]["e2e"]["mean"])
            if power and r["power"].get("sampler_cost"):
                costs.append(r["power"]["sampler_cost"])
    ratio = float(np.median(np.asarray(on) / np.asarray(off)))
    cost = {k: float(np.median([c[k] for c in costs])) for k in costs[0]} if costs else {}
    print("e2e mean, power on / off: %.3f (median of %d interleaved rounds; on %s ms, off %s ms)"
          % (ratio, args.rounds, ["%.2f" % v for v in on], ["%.2f" % v for v in off]))
    if cost:
        print("sampler every %d ms: %.3f ms CPU per reading (%.3f ms wall), %.3f%% of one core"
              % (args.interval, cost["cpu_ms_per_sample"], cost["ms_per_sample"], cost["cpu_percent"]))
    else:
        print("the sampler did not run: no sensors on this box (try --fake xavier-nx)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "ratio_on_off": ratio, "on_ms": on, "off_ms": off,
                                               "sampler_cost": cost}, indent=2) + "\n")


if __name__ == "__main__":
    main()
