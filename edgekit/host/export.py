"""YOLOv8 weights or model YAML -> simplified, checked ONNX + manifest.

The pipeline is a few small steps, each testable alone:
``resolve_weights`` -> ``load_model`` -> ``export_raw_onnx`` (ultralytics' exporter, so the graph keeps its
conventions: input ``images``, output ``output0``, metadata props) -> ``simplify_and_check`` (onnxsim,
onnx.checker, strict shape inference) -> optional graph surgery (``edgekit.host.graph``: uint8 input with
preprocessing in the graph, EfficientNMS_TRT) -> atomic write of ``NAME.onnx`` and ``NAME.onnx.json``.
``end2end``: YOLO26's one-to-one head (ultralytics' ``nms=False``, ``edgekit.host.end2end``) instead of the
one-to-many head the exporter keeps by default.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.host import end2end as e2e
from edgekit.host.graph import GraphOptions, apply_graph_options, graph_manifest
from edgekit.host.weights import weights_loading
from edgekit.lazy import lazy_import
from edgekit.log import info, phase
from edgekit.manifest import atomic_path, disk_errors, package_versions, sha256_file, utc_now, write_json_atomic
from edgekit.runtime.modelinfo import onnx_io

# TensorRT 8.5 (JetPack 5.1) parses ONNX opsets up to 17; newer TensorRT reads 17 too.
DEFAULT_OPSET = 17
MAX_OPSET = 17
ULTRALYTICS_ASSETS = "https://github.com/ultralytics/assets/releases"


@dataclass
class WeightsSpec:
    """What the user asked to export, resolved before anything heavy is imported."""

    arg: str  # as given: path to .pt / .yaml, or an ultralytics built-in YAML name
    path: Optional[Path]  # the local file, when there is one
    kind: str  # "pt" or "yaml"
    trust: bool = False  # --trust-weights: full unpickling, which runs code from the file

    @property
    def stem(self) -> str:
        return Path(self.arg).stem


def resolve_weights(weights: str, download: bool = False, trust: bool = False) -> WeightsSpec:
    """Check the weights argument without touching the network (fails in milliseconds when offline)."""
    spec = _resolve(weights, download)
    spec.trust = trust
    return spec


def _resolve(weights: str, download: bool) -> WeightsSpec:
    p = Path(weights).expanduser()
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        # a local YAML, or a name ultralytics resolves from its own package (yolov8n.yaml) with no download
        if not p.exists() and not builtin_yaml(p.name):
            raise EdgekitError("--weights %s: no such file here, and ultralytics has no built-in model of that name "
                               "(e.g. yolov8n.yaml, yolov8s.yaml, yolov8m.yaml, yolov8l.yaml, yolov8x.yaml)" % weights)
        return WeightsSpec(weights, p.resolve() if p.exists() else None, "yaml")
    if suffix != ".pt":
        raise EdgekitError("--weights %s: expected YOLOv8 weights (.pt) or a model YAML (.yaml)" % weights)
    if p.exists():
        return WeightsSpec(weights, p.resolve(), "pt")
    if download:
        return WeightsSpec(weights, None, "pt")  # ultralytics downloads official names into the working dir
    raise EdgekitError(
        "weights %s not found: put the file at %s (official YOLOv8 weights are at %s), pass --download to "
        "let ultralytics fetch it, or use --weights %s for an untrained model"
        % (weights, p.resolve(), ULTRALYTICS_ASSETS,
           p.stem + ".yaml" if builtin_yaml(p.stem + ".yaml") else "a model YAML such as yolov8m.yaml")
    )


def builtin_yaml(name: str) -> bool:
    """Whether ultralytics resolves ``name`` (yolov8m.yaml -> cfg/models/v8/yolov8.yaml, scale m) from its own
    package, found the way ultralytics' yaml_model_load unifies scales, without importing ultralytics."""
    import importlib.util
    import re

    try:
        spec = importlib.util.find_spec("ultralytics")
    except ImportError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return True  # cannot tell here; load_model names what is missing
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", name)
    cfg = Path(list(spec.submodule_search_locations)[0]) / "cfg" / "models"
    return any(cfg.rglob(unified))


def load_model(spec: WeightsSpec):
    """Load with ultralytics (``YOLO("yolov8m.pt")`` / ``YOLO("yolov8m.yaml")``); errors become one line."""
    lazy_import("torch")
    YOLO = lazy_import("ultralytics").YOLO
    source = str(spec.path) if spec.path else spec.arg
    try:
        with weights_loading(spec.arg, spec.trust):  # never runs code from a .pt unless --trust-weights
            model = YOLO(source)
    except EdgekitError:
        raise
    except Exception as exc:  # corrupt checkpoint, unknown YAML, failed download, ...
        if spec.kind == "pt":  # torch's and ultralytics' own words here are a KeyError number or advice for
            # another model family: say what it is
            raise EdgekitError("cannot load YOLOv8 model from %s: not a readable ultralytics checkpoint (empty, "
                               "truncated, corrupt, or not saved by ultralytics; %s)"
                               % (spec.arg, type(exc).__name__)) from exc
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgekitError("cannot load YOLOv8 model from %s: %s" % (spec.arg, msg)) from exc
    if model.task != "detect":
        raise EdgekitError("%s is a %s model: edgekit exports detection models" % (spec.arg, model.task))
    return model


def is_trained(model, spec: WeightsSpec) -> bool:
    """A YAML is random init; a checkpoint counts as trained only if it records a training run."""
    if spec.kind == "yaml":
        return False
    ckpt = getattr(model, "ckpt", None) or {}
    return bool(ckpt.get("train_args"))


def model_stats(model, imgsz: int, end2end: bool = False) -> Dict[str, Any]:
    from ultralytics.utils.torch_utils import get_flops

    net = e2e.exported_branch(model.model, end2end)  # YOLO26: the branch exported, not both
    return {
        "params": int(sum(p.numel() for p in net.parameters())),
        "gflops": round(float(get_flops(net, imgsz)), 3),
        "names": {int(k): str(v) for k, v in model.names.items()},
        "stride": int(net.stride.max()),
        "task": model.task,
    }


def export_raw_onnx(model, workdir: Path, stem: str, imgsz: int, batch: int, dynamic: bool, opset: int,
                    end2end: bool = False, max_det: int = 300) -> Path:
    """Run ultralytics' ONNX exporter into ``workdir`` (unsimplified; we simplify with onnxsim). ``end2end``: the
    one-to-one head with its top-k of ``max_det`` boxes (``nms=False``); else the default one-to-many head."""
    # The exporter names its output after model.pt_path (else the YAML name, in the working directory).
    # Point it into our private folder so nothing is written next to the user's weights or in the cwd.
    model.model.pt_path = str(workdir.resolve() / (stem + ".pt"))
    # ultralytics logs its own summary with the temporary paths ("Predict: yolo predict model=..."): keep
    # only its warnings; our phase log says what was written where.
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    head = {"nms": False, "max_det": max_det} if end2end else {}
    try:
        out = model.export(
            format="onnx", imgsz=imgsz, batch=batch, dynamic=dynamic, opset=opset, simplify=False, device="cpu", **head
        )
    finally:
        LOGGER.setLevel(level)
    return Path(out)


def simplify_and_check(path: Path):
    """onnxsim, then onnx.checker and strict shape inference; returns the ModelProto."""
    onnx = lazy_import("onnx")
    onnxsim = lazy_import("onnxsim")
    model = onnx.load(str(path))
    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise EdgekitError("onnxsim could not validate the simplified model of %s" % path.name)
    # onnxsim records its own bookkeeping in metadata_props; keep only the model's own (ultralytics') props
    kept = [(p.key, p.value) for p in simplified.metadata_props if not p.key.startswith("onnxsim.")]
    del simplified.metadata_props[:]
    for key, value in kept:
        simplified.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(simplified, full_check=True)
    onnx.shape_inference.infer_shapes(simplified, check_type=True, strict_mode=True)
    return simplified


def onnx_name(stem: str, imgsz: int, batch: int, dynamic: bool, graph: Optional[GraphOptions] = None,
              end2end: bool = False) -> str:
    """``yolov8m.onnx`` for the defaults (640, batch 1, static), otherwise the differences are in the name."""
    parts = [stem]
    if imgsz != 640:
        parts.append(str(imgsz))
    if dynamic:
        parts.append("dynamic")
    elif batch != 1:
        parts.append("b%d" % batch)
    return "-".join(parts) + (graph.suffix() if graph else "") + ("-e2e" if end2end else "") + ".onnx"


def output_name(name: Optional[str], stem: str, imgsz: int, batch: int, dynamic: bool,
                graph: Optional[GraphOptions], end2end: bool = False) -> str:
    """``--name`` is a file name inside ``--out`` (never a path out of it); ``.onnx`` is added when missing."""
    if not name:
        return onnx_name(stem, imgsz, batch, dynamic, graph, end2end)
    if "/" in name or "\\" in name or name in (".", ".."):
        raise EdgekitError("--name %s: give a file name; the folder is --out" % name)
    return name if name.lower().endswith(".onnx") else name + ".onnx"


def export(
    weights: str = "yolov8m.pt",
    imgsz: int = 640,
    batch: int = 1,
    dynamic: bool = False,
    opset: int = DEFAULT_OPSET,
    out: str = "engines",
    name: Optional[str] = None,
    download: bool = False,
    extra: Optional[Dict[str, Any]] = None,
    graph: Optional[GraphOptions] = None,
    trust_weights: bool = False,
    end2end: bool = False,
    max_det: int = 300,
) -> Path:
    """Export YOLO ``weights`` to ``out/NAME.onnx`` with a manifest; returns the ONNX path. ``end2end``: YOLO26's
    one-to-one head, ``[B, K, 6]`` detections with no NMS, K = ``max_det`` (at most the anchors)."""
    if imgsz <= 0 or imgsz % 32:
        raise EdgekitError("--imgsz %d: must be a positive multiple of 32 (YOLOv8's largest stride)" % imgsz)
    if batch < 1:
        raise EdgekitError("--batch %d: must be at least 1" % batch)
    if not 11 <= opset <= MAX_OPSET:
        raise EdgekitError("--opset %d: use 11..%d (TensorRT 8.5 on JetPack 5 parses up to 17)" % (opset, MAX_OPSET))
    graph = graph or GraphOptions()
    if dynamic and (graph.letterbox or graph.nms):
        given = " and ".join(o for o, on in (("--graph-letterbox", graph.letterbox), ("--trt-nms", graph.nms)) if on)
        raise EdgekitError("%s need%s static shapes: drop --dynamic" % (given, "" if " and " in given else "s"))
    if end2end:
        e2e.check_request(max_det, dynamic, graph.nms)
    if graph.in_graph_preprocess or graph.nms:
        lazy_import("onnx_graphsurgeon")  # before the slow part
    spec = resolve_weights(weights, download, trust_weights)
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise EdgekitError("--out %s is a file: give a folder for the ONNX and its manifest" % out)
    target = out_dir / output_name(name, spec.stem, imgsz, batch, dynamic, graph, end2end)

    with phase("loading %s" % weights):
        model = load_model(spec)
        e2e.check_head(model, weights, end2end)
        trained = is_trained(model, spec)
        stats = model_stats(model, imgsz, end2end)
    if not trained:
        info("%s has untrained (random init) weights: speed numbers are real, accuracy is not" % weights,
             style="yellow")

    out_dir.mkdir(parents=True, exist_ok=True)
    with disk_errors(target), tempfile.TemporaryDirectory(prefix=".edgekit-export-", dir=str(out_dir)) as work:
        with phase("exporting ONNX (opset %d)" % opset):
            raw = export_raw_onnx(model, Path(work), spec.stem, imgsz, batch, dynamic, opset, end2end, max_det)
        with phase("simplifying with onnxsim and checking"):
            proto = simplify_and_check(raw)
        if graph.in_graph_preprocess or graph.nms:
            with phase("moving %s into the graph" % " and ".join(
                    ([("letterbox + " if graph.letterbox else "") + "preprocessing"] if graph.in_graph_preprocess
                     else []) + (["EfficientNMS_TRT"] if graph.nms else []))):
                proto = apply_graph_options(proto, graph)
        onnx = lazy_import("onnx")
        with atomic_path(target) as tmp:
            onnx.save(proto, str(tmp))
            manifest = build_manifest(spec, trained, stats, proto, tmp, target, imgsz, batch, dynamic, opset)
            manifest.update(graph_manifest(graph, imgsz))
            manifest.update(e2e.head_manifest(model, end2end, manifest["outputs"], max_det))
            manifest.update(extra or {})  # e.g. {"pruned": true} from prune/tradeoff
            write_json_atomic(str(target) + ".json", manifest)
    info("wrote %s (%.1f MB) and %s.json" % (target, target.stat().st_size / 1e6, target.name))
    if not end2end and e2e.has_one2one(model):
        info("%s also has an end-to-end head (no NMS): edgekit export --end2end exports that one" % weights)
    return target


def build_manifest(spec, trained, stats, proto, onnx_file, target, imgsz, batch, dynamic, opset) -> Dict[str, Any]:
    weights_file = spec.path if spec.path else Path(spec.arg)
    label = "trained" if trained else "untrained (random init from %s)" % Path(spec.arg).name
    inputs, outputs = onnx_io(proto)
    return {
        "kind": "onnx",
        "file": target.name,
        "sha256": sha256_file(onnx_file),
        "created_at": utc_now(),
        "edgekit_version": __version__,
        "model": spec.stem,
        "task": stats["task"],
        "precision": "fp32",
        "pruned": False,
        "trained": trained,
        "weights_label": label,
        "source": {
            "weights": spec.arg,
            "sha256": sha256_file(weights_file) if weights_file.exists() else None,
        },
        "params": stats["params"],
        "gflops": stats["gflops"],
        "imgsz": [imgsz, imgsz],
        "batch": "dynamic" if dynamic else batch,
        "dynamic": dynamic,
        "opset": opset,
        "stride": stats["stride"],
        "inputs": inputs,
        "outputs": outputs,
        "names": stats["names"],
        "versions": package_versions(["ultralytics", "torch", "onnx", "onnxsim", "onnxruntime"]),
    }

