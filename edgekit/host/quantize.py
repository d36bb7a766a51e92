"""``edgekit quantize``: INT8 the explicit way, on the host, with NVIDIA ModelOpt's ONNX quantization.

ModelOpt inserts symmetric INT8 Q/DQ nodes (per-channel weights, per-tensor activations) in the places
TensorRT fuses, calibrated on a folder of images fed through inference's own letterbox. Devices then build
INT8 from the Q/DQ ONNX with no calibration images on board (``edgekit build --int8`` sees the Q/DQ nodes).

TensorRT 8.5 (JetPack 5) needs: opset <= 17 (ModelOpt writes 19; we relabel to 17 only when every node is
valid there, checked by onnx's checker), FP32 scales (``--high-precision fp32``, the default), int8 zero
points of 0. ``--high-precision fp16`` keeps the unquantized layers in FP16: what TensorRT 11's strongly
typed builds need to be fast (``edgekit build --best``). ``--fp16`` converts to FP16 only (no INT8).

The result is checked with ONNX Runtime against the FP32 model on the calibration frames and the agreement
is written to its manifest. With ``gate`` (``--accuracy-data DATA [--max-map-drop POINTS]``) both are also
evaluated on DATA (:mod:`edgekit.eval.gate`): the mAPs go into the manifest as ``accuracy``, and a model that
loses more than the limit is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import numpy as np

from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.eval.gate import GateRefused, GateRequest, check_model, failure_message, result_line, run_gate
from edgekit.lazy import lazy_import
from edgekit.log import info, phase, warn
from edgekit.manifest import (
    DISK_ERRNOS,
    WriteError,
    atomic_path,
    package_versions,
    read_manifest,
    sha256_file,
    utc_now,
    write_json_atomic,
)
from edgekit.runtime.modelinfo import onnx_metadata
from edgekit.runtime.tensorrt.calib import CalibrationSet
from edgekit.runtime.tensorrt.qdq import JETPACK5_TENSORRT, load_onnx, model_facts, opset, qdq_problems, qdq_summary

TRT85_OPSET = 17


def retarget_opset(proto: Any, target: int) -> Any:
    """Label the default-domain opset ``target`` if every node is valid there (checker + strict inference)."""
    onnx = lazy_import("onnx")
    if opset(proto) <= target:
        return proto
    relabelled = onnx.ModelProto()
    relabelled.CopyFrom(proto)
    for entry in relabelled.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = target
    try:
        onnx.checker.check_model(relabelled, full_check=True)
        onnx.shape_inference.infer_shapes(relabelled, check_type=True, strict_mode=True)
    except Exception as exc:  # checker/inference errors: some node needs the newer opset
        raise EdgekitError("the quantized model needs opset %d (%s): TensorRT 8.5 parses up to %d; build it on "
                           "TensorRT >= 8.6, or pass --opset %d to keep it" % (
                               opset(proto), str(exc).splitlines()[0][:200], target, opset(proto))) from exc
    return relabelled


def calibration_array(calib: CalibrationSet) -> np.ndarray:
    return np.concatenate(list(calib.batches()), axis=0)


def quantize(onnx_path, calib_dir: Optional[str] = None, out: Optional[str] = None, name: Optional[str] = None,
             images: int = 256, method: str = "entropy", high_precision: str = "fp32", target_opset: int = TRT85_OPSET,
             fp16_only: bool = False, verify_frames: int = 32, gate: Optional[GateRequest] = None) -> Path:
    """Write ``NAME-int8-qdq.onnx`` (or ``NAME-fp16.onnx`` with ``fp16_only``) + manifest; returns its path.
    With ``gate``: only when it loses no more mAP on the gate's data than its limit (else :class:`GateRefused`)."""
    onnx_path = Path(onnx_path)
    proto = load_onnx(onnx_path)
    facts = model_facts(proto)
    if facts.qdq:
        raise EdgekitError("%s already has Q/DQ nodes: quantize the FP32 ONNX it came from" % onnx_path)
    if facts.float_type != "fp32":
        raise EdgekitError("%s is already %s: quantize the FP32 ONNX from edgekit export"
                           % (onnx_path, facts.float_type))
    if facts.static_batch is None:
        raise EdgekitError("quantize a static-batch ONNX (edgekit export without --dynamic)")
    if method not in ("entropy", "max"):
        raise EdgekitError("--method %s: choose entropy (TensorRT's classic INT8 calibration) or max" % method)
    if high_precision not in ("fp32", "fp16"):
        raise EdgekitError("--high-precision %s: choose fp32 (TensorRT 8.5+) or fp16" % high_precision)
    from edgekit.runtime.tensorrt.prepare import input_size

    source_manifest = read_manifest(onnx_path) or {}
    if gate is not None:  # a dataset of other classes would gate nothing: said now, not after ModelOpt
        check_model(gate, source_manifest.get("names") or onnx_metadata(proto, "names") or {}, onnx_path.name)
    hw = input_size(proto, source_manifest)
    calib = None
    if not fp16_only:
        if not calib_dir:
            raise EdgekitError("INT8 quantization needs calibration images: --calib DIR")
        calib = CalibrationSet.from_folder(calib_dir, 1, hw, images, at_most=True)  # --images: up to N
    suffix = "-fp16" if fp16_only else "-int8-qdq" + ("-hp16" if high_precision == "fp16" else "")
    target = Path(out or onnx_path.parent) / (name or onnx_path.stem + suffix + ".onnx")
    lazy_import("modelopt")
    try:
        lazy_import("modelopt.onnx.quantization")
    except EdgekitError as exc:
        raise EdgekitError("%s; ModelOpt's ONNX quantization also needs onnx-graphsurgeon, onnxconverter-common, "
                           "polygraphy, onnxslim, ml_dtypes, lief, cppimport (pip install 'edgekit[export]')"
                           % exc) from exc
    onnx = lazy_import("onnx")
    with tempfile.TemporaryDirectory(prefix=".edgekit-quantize-", dir=str(target.parent.resolve())
                                     if target.parent.exists() else None) as work:
        raw = Path(work) / "model.onnx"
        with temp_files_in(work):  # ModelOpt's and ONNX Runtime's own temp files go, with ours, on any exit
            quantized = _quantize_in(raw, proto, onnx_path, calib, method, high_precision, fp16_only)
        if target_opset:
            quantized = retarget_opset(quantized, target_opset)
        problems = qdq_problems(quantized, JETPACK5_TENSORRT) if not fp16_only else []
        if problems:
            warn("TensorRT 8.5 would reject this model: %s" % "; ".join(problems[:3]))
        with atomic_path(target) as tmp:
            onnx.save(quantized, str(tmp))
            agreement = verify(onnx_path, tmp, calib_dir, verify_frames, hw)
            accuracy = _gate(gate, onnx_path, tmp, target, fp16_only) if gate is not None else None
            doc = _manifest(source_manifest, target, tmp, onnx_path, quantized, method, high_precision, fp16_only,
                            calib, problems, agreement)
            doc["accuracy"] = accuracy
            write_json_atomic(str(target) + ".json", doc)
    info("wrote %s (%.1f MB)%s: build it on the device with edgekit build %s --%s" % (
        target, target.stat().st_size / 1e6, "; INT8 calibrated on %d images" % calib.used if calib else "",
        shlex.quote(as_typed(target)), "fp16" if fp16_only else ("best" if high_precision == "fp16" else "int8")))
    return target


def _gate(gate: GateRequest, reference: Path, tmp: Path, target: Path, fp16_only: bool) -> Dict[str, Any]:
    """The new model (still at its temporary path) against the float one, both on ONNX Runtime."""
    record = run_gate(tmp, reference, gate, label=str(target), backend="onnxruntime")
    record["candidate"]["precision"] = "fp16" if fp16_only else "int8"  # the temporary file has no manifest yet
    info(result_line(record))
    if record["passed"] is False:
        raise GateRefused(failure_message(record, (
            "convert again and check the FP16 model on ONNX Runtime" if fp16_only else
            "quantize on more and more varied images like the camera's (--calib DIR, --images 500), or try "
            "--method max") + ("; %s from an earlier run is left as it was" % target.name if target.exists() else "")))
    return record


def _quantize_in(raw: Path, proto: Any, onnx_path: Path, calib: Optional[CalibrationSet], method: str,
                 high_precision: str, fp16_only: bool) -> Any:
    """The FP16 model, or ModelOpt's INT8 Q/DQ model (written to ``raw`` first)."""
    if fp16_only:
        with phase("converting %s to FP16 (ModelOpt AutoCast)" % onnx_path.name):
            return _to_fp16(proto)
    assert calib is not None
    with phase("calibrating and inserting Q/DQ on %d images (ModelOpt, %s)" % (calib.num_batches, method)):
        data = calibration_array(calib)
        _modelopt_int8(onnx_path, raw, data, method, high_precision)
    return lazy_import("onnx").load(str(raw))


@contextlib.contextmanager
def temp_files_in(folder: str) -> Iterator[None]:
    """Python's temp files (``tempfile.mkstemp``: ModelOpt's intermediate ``tmpXXXX.onnx``, ONNX Runtime's
    calibration models) go into ``folder`` meanwhile: they are deleted with it even after Ctrl-C, which
    ModelOpt's own cleanup never reaches."""
    before = tempfile.tempdir
    tempfile.tempdir = folder
    try:
        yield
    finally:
        tempfile.tempdir = before


def as_typed(path: Path) -> str:
    """``path`` as the user would type it here: relative to the current folder when under it, else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def _modelopt_int8(src: Path, dst: Path, data: np.ndarray, method: str, high_precision: str) -> None:
    from modelopt.onnx.quantization import quantize as mo_quantize

    ort = lazy_import("onnxruntime")
    eps = ["cuda:0", "cpu"] if "CUDAExecutionProvider" in ort.get_available_providers() else ["cpu"]
    logging.getLogger("modelopt").setLevel(logging.WARNING)
    try:
        mo_quantize(str(src), quantize_mode="int8", calibration_data={"images": data}, calibration_method=method,
                    calibration_eps=eps, output_path=str(dst), high_precision_dtype=high_precision,
                    log_level="WARNING")
    except OSError as exc:
        if exc.errno in DISK_ERRNOS:  # ModelOpt's own files beside the output: the disk is full or read-only
            raise WriteError(dst, exc) from exc
        raise EdgekitError("ModelOpt quantization failed: %s" % exc) from exc
    except Exception as exc:  # ModelOpt raises many types; the first line says what went wrong
        raise EdgekitError("ModelOpt quantization failed: %s" % (str(exc).splitlines()[0][:300] if str(exc)
                                                                  else type(exc).__name__)) from exc
    if not dst.is_file():
        raise EdgekitError("ModelOpt wrote no quantized model")


def _to_fp16(proto: Any) -> Any:
    from modelopt.onnx.autocast import convert_to_f16

    return convert_to_f16(proto, low_precision_type="fp16", keep_io_types=True)


def verify(reference: Path, candidate: Path, calib_dir: Optional[str], frames: int, hw) -> Dict[str, Any]:
    """Detections of the new model against the FP32 one on ONNX Runtime (what edgekit compare reports)."""
    from edgekit.bench.frames import load_frames, synthetic_frames
    from edgekit.eval.compare import compare
    from edgekit.runtime.onnxruntime.runner import OnnxRuntimeRunner

    shots = load_frames(calib_dir, limit=frames) if calib_dir else synthetic_frames(count=min(frames, 8))
    with phase("checking against %s on %d frames (ONNX Runtime)" % (reference.name, len(shots))):
        with OnnxRuntimeRunner(reference) as a, OnnxRuntimeRunner(candidate) as b:
            result = compare(a, b, shots)
    return {"frames": result["frames"], "raw": result["raw"], "detections": result["detections"]}


def _manifest(source: Dict[str, Any], target: Path, tmp: Path, onnx_path: Path, proto: Any, method: str,
              high_precision: str, fp16_only: bool, calib: Optional[CalibrationSet], problems, agreement
              ) -> Dict[str, Any]:
    from edgekit.runtime.modelinfo import onnx_io

    inputs, outputs = onnx_io(proto)
    doc = {k: v for k, v in source.items() if k not in ("accuracy", "calibration")}  # the source's, not ours
    doc.update({
        "kind": "onnx", "file": target.name, "sha256": sha256_file(tmp), "created_at": utc_now(),
        "edgekit_version": __version__, "precision": "fp16" if fp16_only else "int8",
        "opset": opset(proto), "inputs": inputs, "outputs": outputs,
        "quantization": None if fp16_only else {
            "tool": "modelopt.onnx.quantization", "mode": "int8", "method": method,
            "high_precision": high_precision, "images": calib.num_batches if calib else 0,
            "undecodable": calib.undecodable if calib else [],
            "qdq": qdq_summary(proto), "tensorrt_8.5_problems": problems,
        },
        "calibration": calib.record() if calib else None,
        "derived_from": {"file": str(onnx_path), "sha256": sha256_file(onnx_path)},
        "agreement_vs_fp32": agreement,
        "versions": dict(source.get("versions") or {}, **package_versions(["nvidia-modelopt", "onnx", "onnxruntime"])),
    })
    return doc
