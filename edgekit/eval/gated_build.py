"""``edgekit build --accuracy-data``: build beside the final name, measure, then keep or refuse.

(Here, above the runtime, because it runs the build and the evaluation: the runtime never imports eval.)

The engine and its manifest are written into a hidden folder inside OUT (the same disk, so the move is a
rename); the gate (:mod:`edgekit.eval.gate`) evaluates that engine and its reference ONNX; a kept engine moves
under its final name with ``accuracy`` in its manifest (the manifest first, then the engine, as every edgekit
write), a refused one goes with the folder, and so does anything an error or Ctrl-C leaves. An engine already
under the final name from an earlier build is left as it was: the refusal says so.

No TensorRT here: the build itself is ``builder.build_engine`` (imported when called), so the flow is tested
without a GPU with a stand-in build and the candidate run on ONNX Runtime.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

from edgekit.errors import EdgekitError
from edgekit.eval.gate import (
    GateRefused,
    GateRequest,
    check_model,
    covers,
    failure_message,
    reference_for,
    result_line,
    run_gate,
)
from edgekit.log import info
from edgekit.manifest import WriteError, read_manifest, write_json_atomic
from edgekit.runtime.modelinfo import onnx_metadata
from edgekit.runtime.tensorrt.plan import BuildRequest
from edgekit.runtime.tensorrt.prepare import Prepared


def check_gate(prepared: Prepared, gate: Optional[GateRequest]) -> None:
    """The accuracy gate (``edgekit.eval.gate``) can measure this model: its classes are the dataset's, and it
    takes one image at a time as eval feeds it."""
    if gate is None:
        return
    names = prepared.onnx_manifest.get("names") or onnx_metadata(prepared.proto, "names") or {}
    check_model(gate, names, prepared.onnx_path.name)
    if (prepared.onnx_manifest.get("nms") or {}).get("in_graph"):
        raise EdgekitError("--accuracy-data measures against the ONNX on ONNX Runtime, which cannot run the "
                           "EfficientNMS_TRT in %s: gate the same model exported without --trt-nms"
                           % prepared.onnx_path.name)
    if prepared.facts.static_batch not in (None, 1):
        raise EdgekitError("--accuracy-data evaluates one image at a time and %s has a static batch of %d: gate a "
                           "batch-1 export of the same model" % (prepared.onnx_path.name, prepared.facts.static_batch))


def build_gated(prepared: Prepared, request: BuildRequest, gate: GateRequest, out: str = "engines",
                build: Optional[Callable[..., Path]] = None, **build_options: Any) -> Path:
    """Build, gate, and keep the engine under ``out`` or raise the one-line refusal; returns the kept path."""
    if build is None:
        from edgekit.runtime.tensorrt.builder import build_engine as build
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".edgekit-gate-", dir=str(out)))
    except OSError as exc:
        raise WriteError(out, exc) from exc
    try:
        staged = build(prepared, request, out=out, stage=str(stage), **build_options)
        final = Path(out) / staged.name
        try:
            reference, note = reference_for(prepared.onnx_path)
            record = run_gate(staged, reference, gate, label=str(final), note=note,
                              gpu=build_options.get("gpu", 0))
        except Exception as exc:  # the gate could not measure: keep the build, never under its final name
            raise EdgekitError("%s was built but its accuracy could not be measured (%s): kept unverified as %s "
                               "(not under its name; measure it with edgekit eval)"
                               % (final.name, str(exc).strip().splitlines()[0][:300] if str(exc).strip()
                                  else type(exc).__name__, keep_unverified(staged, final))) from exc
        info(result_line(record))
        if record["passed"] is False:
            raise GateRefused(failure_message(record, advice(prepared, request, final)))
        publish(staged, final, record)
    finally:
        shutil.rmtree(str(stage), ignore_errors=True)
    return final


def keep_unverified(staged: Path, final: Path) -> Path:
    """A built engine the gate could not measure, kept as ``NAME.unverified`` beside the final name (with its
    manifest), so a late failure never costs the build."""
    kept = final.with_name(final.name + ".unverified")
    try:
        os.replace(str(staged), str(kept))
        if Path(str(staged) + ".json").exists():
            os.replace(str(staged) + ".json", str(kept) + ".json")
    except OSError as exc:
        raise WriteError(kept, exc) from exc
    return kept


def publish(staged: Path, final: Path, record: dict) -> None:
    """Move a measured engine under its final name, its manifest carrying the ``accuracy`` record."""
    manifest = read_manifest(staged) or {}
    manifest["accuracy"] = record
    write_json_atomic(str(final) + ".json", manifest)
    try:
        os.replace(str(staged), str(final))
    except OSError as exc:
        raise WriteError(final, exc) from exc
    info("wrote %s (%.1f MB)%s" % (final, final.stat().st_size / 1e6, "; INT8 calibrated on %d images"
                                   % manifest["calibration_images"] if manifest.get("calibration_images") else ""))


def advice(prepared: Prepared, request: BuildRequest, final: Path) -> str:
    """What to try after a refusal, for the kind of engine that was refused."""
    if prepared.facts.qdq:
        text = "re-quantize on the host on more images like the camera's (edgekit quantize --calib DIR --images 500)"
    elif request.calib:
        text = ("calibrate on more and more varied frames like the camera's (--calib; NVIDIA suggests ~500), or "
                "build --fp16")
    else:
        text = "build a higher precision (--fp32), or raise --max-map-drop if this drop is acceptable"
    if final.exists():
        text += "; %s from an earlier build is left as it was" % final.name
    return text


def why_rebuild(current: Path, gate: Optional[GateRequest]) -> Optional[str]:
    """``--if-changed``: why an up-to-date engine must still be built (and gated) again, or None to keep it."""
    if gate is None:
        return None
    return covers((read_manifest(current) or {}).get("accuracy"), gate)
