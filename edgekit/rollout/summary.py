"""One table for a fleet roll-out: per box the model before and after, the gate numbers, and what happened.

The roll-out playbook (jetson/ansible/rollout.yml) writes, on the controller, ``DIR/rollout.json`` when it starts
(its run id and the boxes it targets) and ``DIR/<host>.json`` for each box as the box finishes (a pessimistic
record first, so a box that stopped half-way says so). A box targeted by this run with no record of this run was
never reached: the canary batch stopped the roll-out first, or the run was interrupted before its batch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

from edgekit.errors import EdgekitError

# what a box ended with; the first two leave the box on the wanted model
OK_RESULTS = ("switched", "up to date")
RESULTS = OK_RESULTS + ("kept", "rolled back", "failed", "not reached")
# --check: what a box would do (rollout.yml: edgekit models plan; rollback.yml: edgekit models status)
CHECK_RESULTS = ("would switch", "would roll back")
COLUMNS = ("host", "model before -> after", "speed", "accuracy", "health", "result", "why")
RUN_FILE = "rollout.json"
SUMMARY_FILES = ("summary.md", "summary.json")


def _read(path: Path) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # half a file cannot happen (atomic writes); an unreadable one is reported as missing
    return data if isinstance(data, dict) else None


def load(folder) -> Dict[str, Any]:
    """``{"run": rollout.json or {}, "rows": [record per box]}``: the boxes the run targeted, in its order, with
    "not reached" for those that have no record of this run; without rollout.json every record found."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgekitError("%s is not a folder: give the roll-out's results folder (benchmarks/rollout)" % folder)
    run = _read(folder / RUN_FILE) or {}
    records = {}
    for path in sorted(folder.glob("*.json")):
        if path.name in (RUN_FILE,) + SUMMARY_FILES or path.name.startswith("."):
            continue
        record = _read(path)
        if record and record.get("host"):
            records[record["host"]] = record
    if not run and not records:
        raise EdgekitError("no roll-out records in %s: run ansible-playbook rollout.yml first" % folder)
    hosts = run.get("hosts") or sorted(records)
    rows = []
    for host in hosts:
        record = records.get(host)
        if record is None or (run.get("run") and record.get("run") != run.get("run")):
            record = {"host": host, "result": "not reached", "why": _not_reached_why(run)}
        rows.append(record)
    return {"run": run, "rows": rows}


def _not_reached_why(run: Dict[str, Any]) -> str:
    if run.get("stopped"):
        return "roll-out stopped %s" % run["stopped"]
    return "no result from this run (its batch did not start, or the run was interrupted)"


def _short_key(key: Optional[str]) -> str:
    if not key:
        return ""
    if key.startswith("trt-"):  # trt-fp16-dla0-<12 hex>: the hex is in the store, the precision is what people read
        return "-".join(p for p in key.split("-") if not (len(p) == 12 and all(c in "0123456789abcdef" for c in p)))
    return "ort" if key == "onnxruntime" else key


def model_label(model: Optional[Dict[str, Any]]) -> str:
    """``name version sha8 (run)``, e.g. ``yolov8n 2 3f2a9c1b trt-fp16``; "none" when the box had no model."""
    if not model or not model.get("sha256"):
        return "none"
    name = str(model.get("name") or "")
    if name.endswith(".onnx"):
        name = name[:-5]
    parts = [name, str(model.get("version") or ""), str(model["sha256"])[:8], _short_key(model.get("key"))]
    return " ".join(p for p in parts if p)


def _same(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]]) -> bool:
    return bool(a and b) and (a.get("sha256"), a.get("key")) == (b.get("sha256"), b.get("key"))


def models_cell(row: Dict[str, Any]) -> str:
    before, after = row.get("before"), row.get("after")
    if row.get("result") in CHECK_RESULTS:
        after = row.get("model")
    if before is None and after is None:
        return "-"
    if _same(before, after) or (before and after is None):
        return "%s (unchanged)" % model_label(before)
    return "%s -> %s" % (model_label(before), model_label(after))


def _num(value: Any, spec: str = ".1f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def speed_cell(gates: Optional[Dict[str, Any]]) -> str:
    speed = (gates or {}).get("gates", {}).get("speed") if gates else None
    if not speed:
        return "-"
    if speed.get("error"):
        return "FAILED: %s" % short_paths(str(speed["error"]))
    text = "%s FPS" % _num(speed.get("fps"))
    if speed.get("min_fps"):
        text += " (min %s)" % _num(speed["min_fps"], "g")
    if speed.get("ratio") is not None:
        text += ", %sx of %s FPS (min %sx)" % (_num(speed["ratio"], ".2f"), _num(speed.get("current_fps")),
                                              _num(speed.get("min_ratio"), "g"))
    elif speed.get("note"):
        text += ", %s" % speed["note"]
    return text + ("" if speed.get("passed", True) else ": FAILED")


def accuracy_cell(gates: Optional[Dict[str, Any]]) -> str:
    accuracy = (gates or {}).get("gates", {}).get("accuracy") if gates else None
    if not accuracy:
        return "-"
    if accuracy.get("skipped"):
        return "skipped: %s" % re.sub(r"\s*\([^)]*\)$", "", str(accuracy["skipped"]))
    if accuracy.get("error"):
        return "FAILED: %s" % short_paths(str(accuracy["error"]))
    text = "mAP50-95 %s vs its ONNX %s: %s points lost (max %s)" % (
        _num(accuracy.get("map"), ".3f"), _num(accuracy.get("onnx_map"), ".3f"), _num(accuracy.get("drop"), ".2f"),
        _num(accuracy.get("max_drop"), "g"))
    return text + ("" if accuracy.get("passed", True) else ": FAILED")


def health_cell(health: Optional[Dict[str, Any]]) -> str:
    if not health:
        return "-"
    seconds = health.get("seconds")
    if health.get("healthy"):
        return "healthy" + (" after %s s" % _num(seconds) if isinstance(seconds, (int, float)) and seconds >= 0.05
                            else "")
    return "not healthy after %s s" % _num(seconds)


# a file in a box's store: HOME/store/models/<sha256>[/runs/<key>][/...]
STORE_PATH = re.compile(r"[^\s'\"(),:;]*?/?store/models/([0-9a-f]{64})(?:/runs/([^\s'\"/(),:;]+))?")


def short_paths(text: str) -> str:
    """Store paths as ``<sha12>/<key>/...``: a box's HOME/store/models/<sha256>/runs/<key>/ says nothing more and is
    long (an unloadable model's error names its file up to three times)."""
    return STORE_PATH.sub(lambda m: m.group(1)[:12] + ("/" + m.group(2) if m.group(2) else ""), text)


def why_cell(why: Any) -> str:
    """One line whatever a command printed, without edgekit's "error: " prefixes and the gate record's path (the
    numbers are in the other columns), store paths shortened."""
    text = " ".join(str(why or "").split())
    text = re.sub(r"(^|: )error: ", r"\1", text)
    text = re.sub(r", /[^,)\s]+\)", ")", text)  # "(model-a, 1, /home/.../model.onnx)": the sha says which file
    return short_paths(re.sub(r"\s*\(record: [^)]*\)\s*$", "", text)) or "-"


def cells(row: Dict[str, Any]) -> Dict[str, str]:
    return {"host": str(row.get("host")), "model before -> after": models_cell(row),
            "speed": speed_cell(row.get("gates")), "accuracy": accuracy_cell(row.get("gates")),
            "health": health_cell(row.get("health")), "result": str(row.get("result") or "?"),
            "why": why_cell(row.get("why"))}


def counts(rows: List[Dict[str, Any]]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for row in rows:
        out[row.get("result") or "?"] = out.get(row.get("result") or "?", 0) + 1
    return out


def title(summary: Dict[str, Any]) -> str:
    run = summary["run"]
    what = "edgekit %s%s" % ("rollback" if run.get("action") == "rollback" else "roll-out",
                             " (--check: nothing changed)" if run.get("check") else "")
    if run.get("model"):
        what += " of %s" % run["model"].get("name", "?")
        if run["model"].get("sha256"):
            what += " (%s)" % run["model"]["sha256"][:8]
    if run.get("started"):
        what += ", %s" % run["started"]
    tally = ", ".join("%d %s" % (n, result) for result, n in counts(summary["rows"]).items())
    return "%s: %s" % (what, tally)


def markdown(summary: Dict[str, Any]) -> str:
    lines = ["**%s**" % title(summary), "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in summary["rows"]:
        c = cells(row)
        lines.append("| " + " | ".join(c[col].replace("|", "\\|") for col in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def table(summary: Dict[str, Any]):
    from rich.table import Table

    out = Table(title=title(summary), title_justify="left")
    for col in COLUMNS:
        out.add_column(col, overflow="fold")
    for row in summary["rows"]:
        c = cells(row)
        out.add_row(*(c[col] for col in COLUMNS))
    return out


def ok_results(run: Dict[str, Any]) -> tuple:
    """Results that leave a box where the run wanted it (rollback.yml wants "rolled back")."""
    return ("rolled back", "would roll back") if run.get("action") == "rollback" else OK_RESULTS + ("would switch",)


def as_json(summary: Dict[str, Any]) -> Dict[str, Any]:
    """What --json prints and summary.json holds: the run, the records, the counts and whether every box is ok."""
    ok = ok_results(summary["run"])
    return {"run": summary["run"], "counts": counts(summary["rows"]),
            "ok": all(r.get("result") in ok for r in summary["rows"]),
            "failed": [r["host"] for r in summary["rows"] if r.get("result") not in ok], "rows": summary["rows"]}
