"""The gates a store run passes on this box before it may become current (``edgekit models gate``).

- speed: the run and the current run, timed in interleaved rounds on the same frames (:mod:`edgekit.rollout.speed`);
  its FPS must reach ``min_fps`` (0: no floor) and its speed ratio ``min_ratio`` (no current run, or the run is
  current: no ratio). The ratio is the median over rounds of run FPS / current FPS in the same round: the two
  models of a round ran back to back, so a burst of other load in one round moves one ratio, not the verdict.
- accuracy: when the model shipped an evaluation set (``models/<sha>/eval``) and the run is not the ONNX itself
  (a TensorRT engine), mAP50-95 of the run vs its own ONNX on ONNX Runtime on that set, with edgekit's accuracy
  gate (:mod:`edgekit.eval.gate`); it may lose at most ``max_drop`` points. Otherwise skipped, with why.

Every gate is measured even after one fails, so the record has all the numbers; it is written atomically to
``runs/<key>/gates.json`` whether the run passed or not. A gate that cannot measure the run (the engine does not
load, the evaluation set is broken) fails with the reason.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from edgekit.errors import EdgekitError
from edgekit.manifest import read_manifest, utc_now, write_json_atomic
from edgekit.rollout import speed as speed_mod
from edgekit.rollout.speed import SpeedConfig
from edgekit.store.inputs import SPLITS, eval_data
from edgekit.store.integrity import GATES_FILE

DEFAULT_MIN_SPEED_RATIO = 0.9
DEFAULT_MAX_MAP_DROP = 1.0  # points of mAP50-95 (1.0 = 0.01)
# GATES_FILE: the record's name in the run folder; eval_data: a shipped evaluation set's dataset file (both shared
# with the store, which checks an evaluation set when it is added and warns when a run that failed is activated)


@dataclass
class GateConfig:
    min_fps: float = 0.0
    min_ratio: float = DEFAULT_MIN_SPEED_RATIO
    max_drop: float = DEFAULT_MAX_MAP_DROP
    speed: SpeedConfig = field(default_factory=SpeedConfig)

    def validate(self) -> None:
        for name, value in (("--min-fps", self.min_fps), ("--min-speed-ratio", self.min_ratio),
                            ("--max-map-drop", self.max_drop)):
            if not value >= 0:  # also NaN
                raise EdgekitError("%s %s: give a number >= 0" % (name, value))
        self.speed.validate()


def run_gates(store, sha: str, key: str, config: GateConfig, show_progress: bool = False) -> Dict[str, Any]:
    """Measure every gate of run ``key`` of model ``sha``; the record, also written to the run's gates.json."""
    config.validate()
    run = store.run(sha, key)
    current = store.current()
    gates = {"speed": speed_gate(run, current, config),
             "accuracy": accuracy_gate(store, run, config.max_drop, show_progress)}
    failed = next((name for name, gate in gates.items() if gate["passed"] is False), None)
    record = {"sha256": sha, "key": key, "at": utc_now(), "passed": failed is None, "failed": failed,
              "run": {k: run.get(k) for k in ("backend", "precision", "dla_core", "model_sha256", "name", "version")},
              "current": {"sha256": current["sha256"], "key": current["key"]} if current else None,
              "gates": gates}
    write_json_atomic(Path(run["path"]) / GATES_FILE, record)
    return record


# --- speed ------------------------------------------------------------------------------------------------------
def speed_gate(run: Dict[str, Any], current: Optional[Dict[str, Any]], config: GateConfig) -> Dict[str, Any]:
    gate: Dict[str, Any] = {"min_fps": config.min_fps, "min_ratio": config.min_ratio,
                            "frames": speed_mod.frames_label(config.speed), "rounds": config.speed.rounds,
                            "iterations": config.speed.iterations}
    other = current if current and (current["sha256"], current["key"]) != (run["sha256"], run["key"]) else None
    paths = [run["model_path"]] + ([other["model_path"]] if other else [])
    try:
        try:
            measured = speed_mod.measure(paths, config.speed)
        except speed_mod.ModelFailed as exc:
            if other is None or exc.path != other["model_path"]:
                raise
            measured = speed_mod.measure(paths[:1], config.speed)  # the current run fails here: no ratio to check
            gate["note"] = "the current run cannot run here, so no ratio: %s" % exc
    except speed_mod.ModelFailed as exc:
        return dict(gate, passed=False, error=str(exc), fps=None)
    cand = measured[0]
    gate.update(fps=cand["fps"], inference_fps=cand["inference_fps"], rounds_fps=cand["rounds_fps"],
                candidate=cand, current_fps=None, ratio=None)
    if len(measured) > 1:
        now = measured[1]
        pairs = [a / b for a, b in zip(cand["rounds_fps"], now["rounds_fps"])]
        gate.update(current_fps=now["fps"], ratio=round(float(statistics.median(pairs)), 3),
                    rounds_ratio=[round(r, 3) for r in pairs], current_rounds_fps=now["rounds_fps"],
                    current=dict(now, sha256=other["sha256"], key=other["key"]))
    elif "note" not in gate:
        gate["note"] = "no current model" if current is None else "it is the current run"
    gate["passed"] = (not config.min_fps or cand["fps"] >= config.min_fps) and \
        (gate["ratio"] is None or gate["ratio"] >= config.min_ratio)
    return gate


# --- accuracy ---------------------------------------------------------------------------------------------------
def accuracy_gate(store, run: Dict[str, Any], max_drop: float, show_progress: bool = False) -> Dict[str, Any]:
    folder = store.model_dir(run["sha256"])
    if run.get("backend") == "onnxruntime":
        return {"skipped": "the run is the ONNX itself (nothing to compare it with)", "passed": None}
    if not (folder / "eval").is_dir():
        return {"skipped": "the model shipped no evaluation set (edgekit models add --eval DIR)", "passed": None}
    from edgekit.eval import gate as eval_gate

    onnx = folder / "model.onnx"
    try:
        request, note = _request(folder / "eval", max_drop)
        names = (read_manifest(onnx) or {}).get("names")
        if names:
            eval_gate.check_model(request, names, run["model_path"])
        detail = eval_gate.run_gate(run["model_path"], onnx, request, label=run["model_path"],
                                    backend=run.get("backend") or "tensorrt", show_progress=show_progress)
    except EdgekitError as exc:
        return {"passed": False, "error": "cannot measure accuracy: %s" % exc, "max_drop": max_drop}
    if note:
        detail["note"] = note
    return {"map": detail["candidate"]["map50_95"], "onnx_map": detail["reference"]["map50_95"],
            "drop": detail["drop_points"], "max_drop": max_drop, "images": detail["images"],
            "data": detail["data"], "split": detail["split"], "passed": bool(detail["passed"]), "detail": detail}


def _request(folder: Path, max_drop: float):
    """The accuracy request on the shipped set; a data.yaml whose ``path:`` names a folder that is not on this box
    (made on the workstation) is read from its own folder. (request, note or None)."""
    from edgekit.eval import gate as eval_gate
    from edgekit.lazy import lazy_import

    data, images = eval_data(folder)
    if images is not None:
        return eval_gate.gate_request(str(data), images=images, max_drop=max_drop), None
    yaml = lazy_import("yaml")
    try:
        cfg = yaml.safe_load(data.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise EdgekitError("%s is not a valid data.yaml: %s" % (data, str(exc).splitlines()[0])) from exc
    if not isinstance(cfg, dict):
        raise EdgekitError("%s is not a data.yaml (names: and val: keys)" % data)
    split = next((s for s in SPLITS if s in cfg), "val")
    root = Path(str(cfg.get("path") or "."))
    if (root if root.is_absolute() else data.parent / root).is_dir():
        return eval_gate.gate_request(str(data), split=split, max_drop=max_drop), None
    with tempfile.TemporaryDirectory(prefix="edgekit-eval-") as tmp:
        moved = Path(tmp) / data.name
        moved.write_text(yaml.safe_dump(dict(cfg, path=str(folder))))
        request = eval_gate.gate_request(str(moved), split=split, max_drop=max_drop)
    request.data = str(data)
    return request, "%s names path %s, not on this box: read from %s" % (data.name, cfg.get("path"), folder)


# --- what people read -------------------------------------------------------------------------------------------
def _short(item: Dict[str, Any]) -> str:
    return "%s/%s" % (item["sha256"][:12], item["key"])


def _count(n: int, noun: str) -> str:
    return "%d %s%s" % (n, noun, "" if n == 1 else "s")


def speed_line(gate: Dict[str, Any]) -> str:
    if gate.get("error"):
        return "speed: %s" % gate["error"]
    floor = "min %g FPS" % gate["min_fps"] if gate["min_fps"] else "no FPS floor"
    text = "speed: %.1f FPS (%s, %s in %s, %s)" % (gate["fps"], gate["frames"], _count(gate["iterations"], "iteration"),
                                                    _count(gate["rounds"], "round"), floor)
    if gate.get("ratio") is not None:
        text += " vs the current %s %.1f FPS: %.2fx, min %.2fx" % (_short(gate["current"]), gate["current_fps"],
                                                                   gate["ratio"], gate["min_ratio"])
    else:
        text += ", %s" % gate.get("note")
    return text + ": " + ("passed" if gate["passed"] else "FAILED")


def accuracy_line(gate: Dict[str, Any]) -> str:
    if gate.get("skipped"):
        return "accuracy: skipped: %s" % gate["skipped"]
    if gate.get("error"):
        return "accuracy: %s" % gate["error"]
    return "accuracy: mAP50-95 %.3f vs %.3f for its ONNX on ONNX Runtime (%s, %s, %s): %.2f points lost, " \
           "max %g: %s" % (gate["map"], gate["onnx_map"], gate["data"], gate["split"], _count(gate["images"], "image"),
                           gate["drop"], gate["max_drop"], "passed" if gate["passed"] else "FAILED")


def lines(record: Dict[str, Any]):
    return [speed_line(record["gates"]["speed"]), accuracy_line(record["gates"]["accuracy"])]


def failure_message(record: Dict[str, Any], path: str) -> str:
    """One line: the failed gate with its numbers, what was kept, where the record is."""
    name = record["failed"]
    gate = record["gates"][name]
    run = "%s/%s" % (record["sha256"][:12], record["key"])
    if gate.get("error"):
        why = gate["error"]
    elif name == "speed":
        low = gate["min_fps"] and gate["fps"] < gate["min_fps"]
        why = ("%.1f FPS, below --min-fps %g" % (gate["fps"], gate["min_fps"])) if low else (
            "%.1f FPS is %.2fx the current %s's %.1f FPS, below --min-speed-ratio %g" % (
                gate["fps"], gate["ratio"], _short(gate["current"]), gate["current_fps"], gate["min_ratio"]))
    else:
        why = "mAP50-95 %.3f vs %.3f for its ONNX: %.2f points lost, more than --max-map-drop %g" % (
            gate["map"], gate["onnx_map"], gate["drop"], gate["max_drop"])
    return "gate %s failed for %s: %s; current is unchanged (record: %s)" % (name, run, why, path)
