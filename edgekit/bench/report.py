"""Bench results as a rich table, JSON (with system info) and CSV, written atomically."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

from rich.table import Table

from edgekit.bench.stats import STAT_KEYS
from edgekit.manifest import utc_now
from edgekit.power import report as power_report
from edgekit.sysinfo import system_info


def input_size_text(row: Dict[str, Any]) -> str:
    """HxW of a result's input tensor: [B, 3, H, W] floats, or [B, H, W, 3] uint8 pixels (--graph-preprocess);
    for a --graph-letterbox model the frame size its graph takes, marked "frame" (after the network's imgsz where
    the result has it); "-" where the result does not say (an older or remote result). Results without
    ``input_format`` are read by the shape's layout."""
    shape = row.get("input_shape") or []
    if len(shape) != 4:
        return "-"
    fmt = str(row.get("input_format") or "")
    nhwc = shape[3] == 3 and (fmt.startswith("uint8") if fmt else shape[1] != 3)
    hw = shape[1:3] if nhwc else shape[2:4]
    text = "x".join(str(d) if isinstance(d, int) else "?" for d in hw)
    if not (nhwc and fmt == "uint8-letterbox"):
        return text
    imgsz = row.get("imgsz")  # the network's size, where the result has it (eval results do)
    return "%s (frame %s)" % ("x".join(map(str, imgsz)), text) if imgsz else text + " frame"


STAGE_ORDER = ("preprocess", "stage", "h2d", "compute", "d2h", "inference", "postprocess", "e2e")
DEFAULT_DIR = Path("benchmarks") / "results"


def ordered_stages(result: Dict[str, Any]) -> List[str]:
    stages = result["stages"]
    return [s for s in STAGE_ORDER if s in stages] + sorted(s for s in stages if s not in STAGE_ORDER)


def weights_note(result: Dict[str, Any]) -> str:
    if result.get("trained") is False:
        return "untrained"
    return "" if result.get("trained") else "weights unknown"


def results_table(results: Sequence[Dict[str, Any]]) -> Table:
    """One table for all models: a row per stage, FPS on the end-to-end and inference rows."""
    caption = "\n".join(line for line in (settings_line(results), candidates_line(results),
                                          power_report.caption(list(results)), gate_lines(results)) if line)
    table = Table(title="edgekit bench (latency in ms)", show_lines=False, caption=caption, caption_justify="left")
    power = any(power_report.has_power(r) for r in results)
    for col in ("model", "backend", "input", "batch", "stage") + STAT_KEYS + ("FPS",) + (
            ("W mean/peak", "mJ/frame") if power else ()):
        table.add_column(col, justify="left" if col in ("model", "backend", "stage") else "right")
    for n, r in enumerate(results):
        note = weights_note(r)
        name = r["name"] + (" (%s)" % note if note else "")
        if r.get("interrupted"):  # stopped by Ctrl-C/SIGTERM: these are the iterations it finished
            name += " (interrupted after %d iterations)" % r["iterations"]
        for i, stage in enumerate(ordered_stages(r)):
            s = r["stages"][stage]
            fps = {"e2e": r["fps"], "inference": r["inference_fps"]}.get(stage)
            table.add_row(
                name if i == 0 else "",
                "%s/%s" % (r["backend"], _short(r["device"])) if i == 0 else "",
                input_size_text(r) if i == 0 else "",
                str(r["batch"]) if i == 0 else "",
                stage,
                *("%.2f" % s[k] for k in STAT_KEYS),
                "%.1f" % fps if fps is not None else "",
                *((power_report.cells(r) if stage == "e2e" else ("", "")) if power else ()),
                end_section=(i == len(r["stages"]) - 1 and n < len(results) - 1),
            )
    return table


def settings_line(results: Sequence[Dict[str, Any]]) -> str:
    """What the numbers were measured with, under the table (the JSON holds the same per model)."""
    if not results:
        return ""
    r = results[0]
    if r.get("source") == "synthetic":
        sizes = sorted({"%dx%d" % (hw[1], hw[0]) for hw in (x.get("synthetic_hw") or (720, 1280) for x in results)})
        source = "synthetic %s frames" % "/".join(sizes)  # a --graph-letterbox model gets its own frame size
    else:
        source = "frames from %s" % r.get("source")
    counts = sorted({x["iterations"] for x in results})
    iterations = "%d timed iterations" % counts[0] if len(counts) == 1 else "%s timed iterations (%s)" % (
        "/".join(str(c) for c in counts), ", ".join("%s %d" % (x.get("name"), x["iterations"]) for x in results))
    return ("%s after %d warm-up | %s | %s | FPS = batch x 1000 / mean ms "
            "(e2e row: the whole pipeline; inference row: the engine alone)"
            % (iterations, r["warmup"], threads_text(results), source))


def threads_text(results: Sequence[Dict[str, Any]]) -> str:
    """``ORT: 2 threads, spinning (bench: inference alone)`` where ONNX Runtime ran (its thread plan), else
    ``N threads`` (older results, TensorRT)."""
    from edgekit.runtime.threads import ThreadPlan

    plans = [r["ort_threads"] for r in results if r.get("ort_threads")]
    if plans:
        return ThreadPlan(**plans[0]).line()
    return "%s threads" % (results[0].get("threads") or "default")


def candidates_line(results: Sequence[Dict[str, Any]]) -> str:
    """Boxes entering NMS per frame, per model: the postprocess time grows with them (a fine-tuned or pruned
    model can pass many more than another). Empty when no result has them (NMS in the engine, older results)."""
    shown = [(r.get("name"), r.get("candidates_per_frame")) for r in results]
    if all(n is None for _, n in shown):
        return ""
    return "boxes into NMS per frame (mean, they drive postprocess): %s" % ", ".join(
        "%s %s" % (name, "-" if n is None else "%.1f" % n) for name, n in shown)


def gate_lines(results: Sequence[Dict[str, Any]]) -> str:
    """The accuracy gate each model passed when it was built (its manifest's ``accuracy``), one line per model."""
    from edgekit.eval.gate import caption

    return "\n".join(line for line in (caption(r.get("accuracy_gate"), r.get("name") or "") for r in results) if line)


def result_document(kind: str, results: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """What every saved result file holds (bench, eval, compare, camera): edgekit report reads these."""
    return {"kind": kind, "created_at": utc_now(), "system": system_info(), "results": list(results)}


def to_csv(results: Sequence[Dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model", "backend", "device", "precision", "trained", "batch", "stage", *STAT_KEYS,
                     "count", "fps", "power_w_mean", "power_w_peak", "energy_per_frame_mj", "frames_per_joule",
                     "throttled"])
    for r in results:
        for stage in ordered_stages(r):
            s = r["stages"][stage]
            fps = {"e2e": r["fps"], "inference": r["inference_fps"]}.get(stage, "")
            writer.writerow([r["model"], r["backend"], r["device"], r["precision"], r["trained"], r["batch"],
                             stage, *(s[k] for k in STAT_KEYS), s["count"], fps,
                             *(power_report.csv_cells(r) if stage == "e2e" else ("",) * 5)])
    return buf.getvalue()


def default_result_path(kind: str, name: str = "", folder=None) -> Path:
    """FOLDER/KIND[-NAME]-TIME.json, FOLDER being benchmarks/results unless given."""
    stem = "%s-%s.json" % ("-".join(x for x in (kind, name) if x), time.strftime("%Y%m%d-%H%M%S"))
    return Path(folder or DEFAULT_DIR) / stem


def _short(device: str) -> str:
    return device.replace("ExecutionProvider", "").lower()
