"""Read what matters about an ONNX before building it: Q/DQ or not, float type, batch; and whether the
Q/DQ nodes are ones TensorRT accepts.

TensorRT's explicit quantization takes symmetric INT8 Q/DQ: zero point 0 of type int8, FP32 scales (FP16
scales from TensorRT 10), per-tensor for activations and per-channel on weights (``axis``). TensorRT 8.5's
ONNX parser reads opsets up to 17; ModelOpt writes 19, which ``edgekit quantize`` relabels when every node
is valid at 17 (checked). ONNX Runtime's default quantizer (uint8, asymmetric, com.microsoft ops) is not
accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.lazy import lazy_import
from edgekit.runtime.modelinfo import graph_inputs
from edgekit.runtime.tensorrt.plan import ModelFacts, version_tuple

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
JETPACK5_TENSORRT = "8.5.2"  # the TensorRT a Q/DQ model must suit to build on every box (JetPack 5.1)
INT8 = 3  # onnx.TensorProto.INT8
FLOAT, FLOAT16 = 1, 10


def load_onnx(path) -> Any:
    """Load an ONNX file, or say in one line why it is not one."""
    onnx = lazy_import("onnx")
    path = Path(path)
    if not path.is_file():
        raise EdgekitError("ONNX %s not found" % path)
    if path.stat().st_size == 0:
        raise EdgekitError("ONNX %s is empty (0 bytes): re-export it with edgekit export" % path)
    try:
        return onnx.load(str(path))
    except Exception as exc:  # DecodeError and friends: a truncated or foreign file
        raise EdgekitError("%s is not a readable ONNX model (%s): re-export it with edgekit export"
                           % (path, type(exc).__name__)) from exc


def model_facts(proto) -> ModelFacts:
    inputs = graph_inputs(proto)
    if len(inputs) != 1:
        raise EdgekitError("the model has %d inputs; edgekit builds single-input YOLO models" % len(inputs))
    t = inputs[0].type.tensor_type
    dims = list(t.shape.dim)
    batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None
    has_qdq = any(n.op_type in QDQ_OPS for n in proto.graph.node)
    return ModelFacts(qdq=has_qdq, float_type=_float_type(proto, t.elem_type), static_batch=batch)


def _float_type(proto, input_type: int) -> str:
    """fp16 when the model computes in FP16 (FP16 input, or most float weights FP16), else fp32."""
    if input_type == FLOAT16:
        return "fp16"
    floats = [i.data_type for i in proto.graph.initializer if i.data_type in (FLOAT, FLOAT16) and len(i.dims) >= 1]
    if floats and sum(1 for d in floats if d == FLOAT16) > len(floats) // 2:
        return "fp16"
    return "fp32"


def max_opset(tensorrt_version: str) -> int:
    """The newest default-domain opset this TensorRT's ONNX parser reads."""
    v = version_tuple(tensorrt_version)
    if v[:2] < (10, 0):
        return 17  # 8.5 and 8.6
    if v[:2] < (10, 6):
        return 20
    return 22


def opset(proto) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def qdq_problems(proto, tensorrt_version: str) -> List[str]:
    """Why TensorRT ``tensorrt_version`` would reject or mis-build this Q/DQ model; empty when fine."""
    from onnx import numpy_helper

    problems: List[str] = []
    version = version_tuple(tensorrt_version)
    if opset(proto) > max_opset(tensorrt_version):
        problems.append("opset %d is newer than TensorRT %s parses (%d)" % (opset(proto), tensorrt_version,
                                                                           max_opset(tensorrt_version)))
    inits: Dict[str, Any] = {i.name: i for i in proto.graph.initializer}
    constants = {n.output[0]: n.attribute[0].t for n in proto.graph.node
                 if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
    inits.update(constants)
    bad_domain = [n.name for n in proto.graph.node if n.op_type in QDQ_OPS and n.domain not in ("", "ai.onnx")]
    if bad_domain:
        problems.append("%d Q/DQ nodes are in a non-standard domain (e.g. com.microsoft), e.g. %s: TensorRT reads "
                        "only ONNX's own QuantizeLinear/DequantizeLinear" % (len(bad_domain), bad_domain[0]))
    for node in proto.graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        where = node.name or node.output[0]
        scale = inits.get(node.input[1]) if len(node.input) > 1 else None
        if scale is None:
            problems.append("%s: scale is not a constant (TensorRT needs constant scales)" % where)
        elif scale.data_type == FLOAT16 and version[0] < 10:
            problems.append("%s: FP16 scale; TensorRT %s needs FP32 scales (quantize with --high-precision fp32)"
                            % (where, tensorrt_version))
        elif scale.data_type not in (FLOAT, FLOAT16):
            problems.append("%s: scale of ONNX type %d; TensorRT needs float scales" % (where, scale.data_type))
        elif np.any(numpy_helper.to_array(scale) <= 0):
            problems.append("%s: scales must be positive" % where)
        has_zero = len(node.input) > 2 and bool(node.input[2])
        zero = inits.get(node.input[2]) if has_zero else None
        if zero is not None:
            if zero.data_type != INT8:
                problems.append("%s: zero point of ONNX type %d; TensorRT takes symmetric INT8 only (int8 zero "
                                "point 0), as edgekit quantize writes" % (where, zero.data_type))
            elif np.any(numpy_helper.to_array(zero) != 0):
                problems.append("%s: non-zero zero point; TensorRT takes symmetric INT8 only" % where)
        elif has_zero:
            problems.append("%s: zero point is not a constant (TensorRT needs constant zero points)" % where)
        elif node.op_type == "QuantizeLinear":
            problems.append("%s: no zero point, so it quantizes to uint8; TensorRT takes int8" % where)
        elif version[0] < 10:  # onnx-tensorrt 8.x: "... requires 3 inputs for the DequantizeLinear operator"
            problems.append("%s: DequantizeLinear without a zero point (2 inputs); TensorRT %s's parser needs all 3 "
                            "(an int8 zero point 0)" % (where, tensorrt_version))
        if any(a.name == "block_size" and a.i for a in node.attribute) and version[0] < 10:
            problems.append("%s: blocked quantization needs TensorRT >= 10" % where)
        if len(problems) >= 8:
            problems.append("...")
            break
    return problems


def check_buildable(proto, facts: ModelFacts, tensorrt_version: str, path) -> None:
    """Stop before a TensorRT build that would fail deep inside the parser."""
    if opset(proto) > max_opset(tensorrt_version) and not facts.qdq:
        raise EdgekitError("%s has opset %d; TensorRT %s parses up to %d: re-export with edgekit export --opset %d"
                           % (path, opset(proto), tensorrt_version, max_opset(tensorrt_version),
                              max_opset(tensorrt_version)))
    if facts.qdq:
        problems = qdq_problems(proto, tensorrt_version)
        if problems:
            raise EdgekitError("%s: Q/DQ model TensorRT %s cannot build: %s; make it with %s"
                               % (path, tensorrt_version, "; ".join(problems[:3]),
                                  "edgekit quantize MODEL.onnx --calib DIR"))


def qdq_summary(proto) -> Dict[str, Optional[int]]:
    q = sum(1 for n in proto.graph.node if n.op_type == "QuantizeLinear")
    dq = sum(1 for n in proto.graph.node if n.op_type == "DequantizeLinear")
    return {"quantize_nodes": q, "dequantize_nodes": dq, "opset": opset(proto)}
