"""Accuracy tables of docs/results/accuracy.md, each from the file its docstring names under benchmarks/."""

from __future__ import annotations

import re
from pathlib import Path

from tables_format import load, mean_ms, num, pct, report_table, table


def metrics(root: Path, rel: str) -> dict:
    return load(root, rel)["results"][0]["metrics"]


def trainings(root: Path) -> str:
    """The two trainings of the synthetic YOLOv8n whose figures the docs quote, on the val split at 160 px.
    Sources: benchmarks/tradeoff-synthetic-cpu2/eval.json, benchmarks/quantize-synthetic-cpu2/
    eval-synthetic-yolov8n-160.json (the same training), benchmarks/eval-synthetic-cpu2/eval-synthetic-yolov8n-160
    {,-u8}.json (float and --graph-preprocess). ``training``: the date of the eval."""
    groups = [
        (["tradeoff-synthetic-cpu2/eval.json", "quantize-synthetic-cpu2/eval-synthetic-yolov8n-160.json"],
         lambda m: "%s (%s)" % (num(m["map50_95"], 3), num(m["map50_95"], 4))),
        (["eval-synthetic-cpu2/eval-synthetic-yolov8n-160.json",
          "eval-synthetic-cpu2/eval-synthetic-yolov8n-160-u8.json"],
         lambda m: "%s (float and `--graph-preprocess` alike)" % num(m["map50_95"], 3)),
    ]
    rows = []
    for files, first in groups:
        ms_ = [metrics(root, "benchmarks/" + f) for f in files]
        keys = ("map50_95", "precision", "recall")
        if any(tuple(m[k] for k in keys) != tuple(ms_[0][k] for k in keys) for m in ms_):
            raise ValueError("%s do not hold one training's figures" % ", ".join(files))
        m = ms_[0]
        where = ", ".join(sorted({"`benchmarks/%s/`" % f.split("/")[0] for f in files}, reverse=True))
        date = load(root, "benchmarks/" + files[0])["created_at"][:10]
        rows.append([first(m), num(m["precision"], 3), num(m["recall"], 3), where, date])
    return table(["mAP50-95 (val, 160 px)", "P", "R", "where", "training"], rows, "lrrll")


def eval_graph_preprocess_cpu2(root: Path) -> str:
    """edgekit eval of the trained synthetic YOLOv8n, float input and --graph-preprocess, 160 px, val split.
    Sources: benchmarks/eval-synthetic-cpu2/eval-synthetic-yolov8n-160.json, ...-160-u8.json."""
    rows = []
    for suffix in ("", "-u8"):
        rel = "eval-synthetic-cpu2/eval-synthetic-yolov8n-160%s.json" % suffix
        r = load(root, "benchmarks/" + rel)["results"][0]
        m = r["metrics"]
        name = Path(r["model"]).name + (" (`--graph-preprocess`)" if r["input_format"] == "uint8" else "")
        rows.append([name, "%s `%s`" % (r["input_format"], r["input_shape"]), m["images"], m["instances"],
                     num(m["precision"], 3), num(m["recall"], 3), num(m["map50"], 3), num(m["map50_95"], 3),
                     "`%s`" % rel.split("/")[1]])
    return table(["model", "input", "images", "instances", "P", "R", "mAP50", "mAP50-95", "file"], rows,
                 "llrrrrrrl")


ULTRALYTICS_VAL = re.compile(r"\d\.\d{3}")


def ultralytics_val(text: str, call: str) -> str:
    """The four figures (mAP50-95 / mAP50 / P / R) benchmarks/yolo26-cpu2/README.md gives after ```call```."""
    flat = " ".join(text.split())
    at = flat.find("`%s`" % call)
    if at < 0:
        raise ValueError("benchmarks/yolo26-cpu2/README.md has no `%s`" % call)
    figures = ULTRALYTICS_VAL.findall(flat[at + len(call) + 2:])[:4]
    if len(figures) < 4:
        raise ValueError("benchmarks/yolo26-cpu2/README.md: fewer than 4 figures after `%s`" % call)
    return " / ".join(figures)


def yolo26_accuracy_cpu2(root: Path) -> str:
    """mAP50-95 / mAP50 / P / R of the trained YOLO26n fixture, end-to-end and host-NMS exports, 160 px, val split.
    Sources: benchmarks/yolo26-cpu2/eval-synthetic-yolo26n-160-e2e.json, ...-160.json (edgekit eval), and
    benchmarks/yolo26-cpu2/README.md (ultralytics val of the same ONNX and of the .pt)."""
    text = (root / "benchmarks/yolo26-cpu2/README.md").read_text(encoding="utf-8")
    rows = []
    for suffix, label, onnx_call, pt_call in (
            ("-e2e", "YOLO26n, `--end2end`", "YOLO(e2e.onnx).val()", "val(nms=False)"),
            ("", "YOLO26n, plain (host NMS)", "YOLO(plain.onnx).val()", "val()")):
        m = metrics(root, "benchmarks/yolo26-cpu2/eval-synthetic-yolo26n-160%s.json" % suffix)
        ours = " / ".join(num(m[k], 3) for k in ("map50_95", "map50", "precision", "recall"))
        rows.append([label, ours, ultralytics_val(text, onnx_call),
                     "`%s`: %s" % (pt_call, ultralytics_val(text, "YOLO(pt).%s" % pt_call))])
    return table(["weights, head", "edgekit eval (ONNX Runtime)", "ultralytics val, same ONNX",
                  "ultralytics val, the .pt"], rows)


PRUNE_ROWS = [  # label, key in measured.rows, decimals, scale
    ("params (M)", "params", 2, 1e-6), ("GFLOPs", "gflops", 2, 1), ("preprocess (ms)", "preprocess_ms", 2, 1),
    ("inference (ms)", "latency_ms", 2, 1), ("NMS/postprocess (ms)", "postprocess_ms", 2, 1),
    ("end to end (ms)", "e2e_ms", 2, 1), ("boxes into NMS per frame", "candidates_per_frame", 1, 1),
    ("mAP50-95", "map50_95", 3, 1), ("mAP50", "map50", 3, 1), ("recall", "recall", 3, 1),
    ("mAP50-95 small objects", "map50_95_small", 3, 1), ("recall small objects", "recall_small", 3, 1),
]


def change_label(change: dict) -> str:
    if "points" in change:
        return "%+.1f pts" % change["points"]
    return pct(change["percent"])


def prune_synthetic_small_cpu2(root: Path) -> str:
    """edgekit prune of the trained synthetic YOLOv8n to 66% of its FLOPs, both models fine-tuned 5 epochs, on the
    set with small objects; the command's table and caption. Source:
    benchmarks/prune-synthetic-small-cpu2/prune.json (prune-table.txt there is the console output)."""
    measured = load(root, "benchmarks/prune-synthetic-small-cpu2/prune.json")["measured"]
    base, pruned = measured["rows"]["baseline"], measured["rows"]["pruned"]
    rows = []
    for label, key, digits, scale in PRUNE_ROWS:
        rows.append([label, num(base[key] * scale, digits), num(pruned[key] * scale, digits),
                     change_label(measured["changes"][key])])
    caption = ("latency reduction / FLOPs reduction = %s (inference alone; reference: 0.58); end to end, NMS "
               "included: %s. Accuracy changes in points (x100); boxes into NMS: above the confidence threshold, "
               "mean per frame of the bench's frames (ds/images/val). %s."
               % (num(measured["latency_per_flops_reduction"]), num(measured["e2e_per_flops_reduction"]),
                  measured["baseline"]["note"][0].upper() + measured["baseline"]["note"][1:]))
    return table(["", measured["baseline"]["label"], "pruned", "change"], rows, "lrrr") + "\n" + caption + "\n"


def prune_yolov8m_cpu2(root: Path) -> str:
    """Untrained YOLOv8m and its FastNAS subnet at 66% of the FLOPs, benched at 640 on 2 CPU cores.
    Source: benchmarks/prune-yolov8m-66pct-cpu2.json."""
    results = load(root, "benchmarks/prune-yolov8m-66pct-cpu2.json")["results"]
    base = next(r for r in results if not r["name"].endswith("-pruned"))
    pruned = next(r for r in results if r["name"].endswith("-pruned"))
    size = base["input_shape"][-1]

    def row(label, before, after, fmt):
        return [label, fmt(before), fmt(after), "%.1f%%" % (100 * (after / before - 1))]

    rows = [row("params", base["params"], pruned["params"], lambda v: "%.2fM" % (v / 1e6)),
            row("GFLOPs at %d" % size, base["gflops"], pruned["gflops"], lambda v: num(v)),
            row("ONNX Runtime CPU inference, mean", mean_ms(base, "inference"), mean_ms(pruned, "inference"),
                lambda v: "%s ms" % num(v, 1))]
    return table(["", "baseline", "pruned", "change"], rows, "lrrr")


def quantize_synthetic_cpu2(root: Path) -> str:
    """edgekit quantize (ModelOpt Q/DQ INT8) of the trained synthetic YOLOv8n at 160 against its FP32 ONNX, on
    ONNX Runtime. Sources: benchmarks/quantize-synthetic-cpu2/ (eval-*.json, bench.json, the Q/DQ manifest)."""
    d = "benchmarks/quantize-synthetic-cpu2/"
    fp32 = metrics(root, d + "eval-synthetic-yolov8n-160.json")
    int8 = metrics(root, d + "eval-synthetic-yolov8n-160-int8-qdq.json")
    bench = {r["precision"]: r for r in load(root, d + "bench.json")["results"]}
    manifest = load(root, d + "synthetic-yolov8n-160-int8-qdq.onnx.json")
    q, agree = manifest["quantization"], manifest["agreement_vs_fp32"]["detections"]
    rows = [["Q + DQ nodes", "-", "%d + %d" % (q["qdq"]["quantize_nodes"], q["qdq"]["dequantize_nodes"])],
            ["calibration images (method)", "-", "%d (%s)" % (q["images"], q["method"])]]
    for label, key, digits in (("mAP50-95", "map50_95", 4), ("mAP50", "map50", 3), ("P", "precision", 3),
                               ("recall", "recall", 3)):
        rows.append([label, num(fp32[key], digits), num(int8[key], digits)])
    for label, stage in (("inference median / mean (ms)", "inference"), ("e2e median / mean (ms)", "e2e")):
        rows.append([label] + ["%s / %s" % (num(bench[p]["stages"][stage]["median"], 1),
                                            num(bench[p]["stages"][stage]["mean"], 1)) for p in ("fp32", "int8")])
    rows.append(["detections matched to FP32's (%d frames), mean IoU" % manifest["agreement_vs_fp32"]["frames"], "-",
                 "%d of %d, %s" % (agree["matched"], agree["a"], num(agree["mean_iou"]))])
    return table(["", "FP32", "INT8 Q/DQ"], rows, "lrr")


def tradeoff_synthetic_cpu2(root: Path) -> str:
    """edgekit tradeoff of the trained synthetic YOLOv8n and untrained YOLOv8n/YOLOv8m at 160 on ONNX Runtime.
    Sources: benchmarks/tradeoff-synthetic-cpu2/bench.json, eval.json (report.md there is the same table)."""
    return report_table(root, "benchmarks/tradeoff-synthetic-cpu2/", [
        "model", "pruned", "precision", "backend", "params (M)", "GFLOPs", "pre ms", "infer ms", "post ms", "e2e ms",
        "FPS", "mAP50-95", "recall"], "llllrrrrrrrrr")


def tradeoff_synthetic_small_cpu2(root: Path) -> str:
    """edgekit tradeoff of the pruning run's two fine-tuned checkpoints (baseline and pruned), input 160x160 on ONNX
    Runtime, on the set with small objects; the report's columns that are all ``-`` left out.
    Sources: benchmarks/tradeoff-synthetic-small-cpu2/bench.json, eval.json (report.md there has every column)."""
    return report_table(root, "benchmarks/tradeoff-synthetic-small-cpu2/", [
        "model", "pruned", "precision", "params (M)", "GFLOPs", "pre ms", "infer ms", "post ms", "e2e ms", "FPS",
        "dataset", "mAP50-95", "mAP small", "mAP medium", "recall", "recall small", "vs", "mAP change",
        "small change"], "lllrrrrrrrlrrrrrlrr")
