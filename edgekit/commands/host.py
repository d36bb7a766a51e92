"""Host commands (workstation, torch): export, prune, quantize, tradeoff, make-dataset, demo."""

from __future__ import annotations

import os
from pathlib import Path

import click

from edgekit.commands.tensorrt import accuracy_gate_options
from edgekit.errors import EdgekitError
from edgekit.options import (
    DEFAULT_OPSET,
    IMGSZ,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    UNIT_INTERVAL,
    ListOption,
    output_options,
    trust_weights_option,
)
from edgekit.outputs import Writes, writable_folder


@click.command()
@click.option("--weights", default="yolov8m.pt", show_default=True,
              help="YOLO weights (.pt: YOLOv8, YOLO11, YOLO26) or ultralytics model YAML (yolov8m.yaml: untrained).")
@click.option("--imgsz", type=IMGSZ, default=640, show_default=True, help="Square input size (multiple of 32).")
@click.option("--batch", type=POSITIVE_INT, default=1, show_default=True, help="Static batch size.")
@click.option("--dynamic", is_flag=True, help="Dynamic batch and image size instead of static.")
@click.option("--opset", type=click.IntRange(11, 21), default=DEFAULT_OPSET, show_default=True,
              help="ONNX opset (TensorRT 8.5 parses up to 17).")
@click.option("--out", default="engines", show_default=True, callback=writable_folder, help="Output folder.")
@click.option("--name", default=None, help="Output file name  [default: from weights, size and batch]")
@click.option("--download", is_flag=True, help="Let ultralytics download official weights when missing.")
@click.option("--graph-preprocess", is_flag=True,
              help="Input uint8 NHWC BGR pixels; channel swap, /255 and transpose run in the graph.")
@click.option("--graph-letterbox", metavar="WxH", default=None,
              help="Also letterbox frames of this fixed camera size in the graph (implies --graph-preprocess).")
@click.option("--trt-nms", is_flag=True, help="Append TensorRT's EfficientNMS_TRT (TensorRT only, not ONNX Runtime).")
@click.option("--end2end", is_flag=True,
              help="YOLO26's end-to-end head: [B, K, 6] detections, no NMS (ultralytics' nms=False); not YOLOv8/11.")
@click.option("--conf", type=UNIT_INTERVAL, default=None,
              help="--trt-nms score threshold  [default: 0.25]")
@click.option("--iou", type=UNIT_INTERVAL, default=None, help="--trt-nms IoU threshold  [default: 0.7]")
@click.option("--max-det", type=click.IntRange(min=1), default=None,
              help="Boxes kept by --trt-nms, or returned by --end2end's top-k  [default: 300]")
@trust_weights_option
def export(weights, imgsz, batch, dynamic, opset, out, name, download, graph_preprocess, graph_letterbox, trt_nms,
           end2end, conf, iou, max_det, trust_weights):
    """Export YOLO weights (YOLOv8, YOLO11, YOLO26) to a simplified ONNX with a manifest (host, needs torch)."""
    from edgekit.errors import EdgekitError
    from edgekit.host.export import export as do_export
    from edgekit.host.graph import GraphOptions, parse_frame_size

    if dynamic and click.get_current_context().get_parameter_source("batch") != click.core.ParameterSource.DEFAULT:
        raise EdgekitError("--batch %d is a static batch and --dynamic a dynamic one: give one (a dynamic ONNX "
                           "takes any batch; edgekit build --batch N sets its engine's)" % batch)
    if end2end and trt_nms:
        raise EdgekitError("--end2end and --trt-nms: an end-to-end head needs no NMS (its one-to-one branch gives one "
                           "box per object); give one of them")
    nms_values = {"conf": conf, "iou": iou, "max_det": max_det}
    if end2end and (conf is not None or iou is not None):
        raise EdgekitError("--conf/--iou set EfficientNMS_TRT's thresholds; an --end2end graph has none (conf filters "
                           "on the host: camera/eval/compare --conf; no IoU applies): drop them")
    if not trt_nms and not end2end and any(v is not None for v in nms_values.values()):
        raise EdgekitError("--conf/--iou/--max-det set the NMS in the graph: add --trt-nms (--max-det: or --end2end)")
    head = {"end2end": True, "max_det": max_det or 300} if end2end else {}
    if end2end:
        nms_values["max_det"] = None
    graph = GraphOptions(preprocess=graph_preprocess,
                         letterbox=parse_frame_size(graph_letterbox) if graph_letterbox else None, nms=trt_nms,
                         **{k: v for k, v in nms_values.items() if v is not None})
    path = do_export(weights=weights, imgsz=imgsz, batch=batch, dynamic=dynamic, opset=opset, out=out,
                     name=name, download=download, graph=graph, trust_weights=trust_weights, **head)
    click.echo(str(path))


def _budget(ctx, param, value):
    """--flops/--params are checked when the command line is parsed, not after the baseline has loaded."""
    if value is not None:
        from edgekit.host.prune import parse_budget

        try:
            parse_budget(value if param.name == "flops" else None, value if param.name == "params" else None)
        except EdgekitError as exc:
            raise click.BadParameter("%s: %s" % (value, str(exc).split(": ", 1)[-1])) from None
    return value


@click.command("prune")
@click.option("--weights", default="yolov8m.pt", show_default=True, help="Baseline YOLOv8 weights (.pt) or YAML.")
@click.option("--data", required=True, help="ultralytics data.yaml: search scores on val, fine-tunes on train.")
@click.option("--flops", default=None, callback=_budget,
              help="FLOPs budget, percent of the baseline or absolute  [default: 66%]")
@click.option("--params", default=None, callback=_budget, help="Or a parameter budget, e.g. 60%.")
@click.option("--imgsz", type=IMGSZ, default=640, show_default=True)
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=50, show_default=True,
              help="Fine-tune the pruned model, and the baseline it is compared with, this many epochs.")
@click.option("--baseline-as-is", is_flag=True,
              help="Compare with the baseline as given, not fine-tuned like the pruned model (faster; the changes "
                   "then mix the pruning with the fine-tuning).")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--calib-batches", type=POSITIVE_INT, default=50, show_default=True,
              help="Batches for BatchNorm recalibration of each candidate (>= 50).")
@click.option("--score-images", type=click.IntRange(min=1), default=64, show_default=True,
              help="Validation images for the search score (minus the detection loss).")
@click.option("--out", default="engines", show_default=True, callback=writable_folder)
@click.option("--cache", default=".edgekit-cache", show_default=True, help="Search checkpoints and ModelOpt state.")
@click.option("--device", default=None, help="Training device, e.g. 0 or cpu  [default: cpu]")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="ONNX Runtime threads for the measurement.")
@click.option("--iterations", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--download", is_flag=True, help="Let ultralytics download official weights when missing.")
@trust_weights_option
@output_options
def prune_cmd(weights, data, flops, params, imgsz, finetune_epochs, baseline_as_is, batch, calib_batches,
              score_images, out, cache, device, threads, iterations, download, trust_weights, json_path, csv_path,
              no_save):
    """Prune with ModelOpt FastNAS under a budget, fine-tune (the baseline too), export, and measure against the
    baseline, end to end and by object size (host)."""
    from edgekit.bench.report import default_result_path, result_document
    from edgekit.host.finetune import baseline_note
    from edgekit.host.prune import prune
    from edgekit.host.prune_report import failure_line, measure, table
    from edgekit.log import out as console_out
    from edgekit.manifest import write_json_atomic

    result = prune(weights, data, flops=flops, params=params, imgsz=imgsz, finetune_epochs=finetune_epochs,
                   batch=batch, calib_batches=calib_batches, score_images=score_images, out=out, cache=cache,
                   device=device, download=download, trust_weights=trust_weights, baseline_as_is=baseline_as_is)
    m = measure(result["baseline"], result["pruned"], data, threads or os.cpu_count(), iterations=iterations)
    note = baseline_note(finetune_epochs, baseline_as_is)
    console_out.print(table(m, "edgekit prune: %s under %s" % (weights, result["constraints"]),
                            result["baseline_label"], note))
    measured = {k: v for k, v in m.items() if k not in ("bench", "eval")}
    measured["baseline"] = {"label": result["baseline_label"], "onnx": result["baseline"],
                            "finetuned": result["baseline_finetuned"], "note": note}
    doc = {"kind": "prune", "prune": result, "measured": measured}
    name = "prune-" + Path(weights).stem
    writes, saved = Writes(), []  # each file on its own: one that cannot be written does not stop the others
    if not no_save:  # the bench and eval rows join edgekit report; beside --json when given
        folder = Path(json_path).parent if json_path else None
        for path, document in ((json_path or default_result_path("prune", Path(weights).stem), doc),
                               (default_result_path("bench", name, folder), result_document("bench", m["bench"])),
                               (default_result_path("eval", name, folder), result_document("eval", m["eval"]))):
            if document.get("kind") == "prune" or document["results"]:
                if writes.attempt(path, lambda p=path, d=document: write_json_atomic(p, d)) is not None:
                    saved.append(str(path))
    click.echo(result["pruned"])
    if m["failed"]:
        error = EdgekitError(failure_line(result, m, saved, no_save) + (
            "; could not write %s" % ", ".join(writes.failed) if writes.failed else ""))
        if m["stopped"] is not None:
            from edgekit.bench.interrupt import exit_code

            error.exit_code = exit_code(m["stopped"])
        raise error
    writes.finish()


@click.command("quantize")
@click.argument("onnx_path", metavar="MODEL.onnx")
@click.option("--calib", default=None, help="Folder of calibration images (frames like the camera's).")
@click.option("--images", type=click.IntRange(min=1), default=256, show_default=True,
              help="Calibration images to use, at most (a smaller folder is used whole).")
@click.option("--method", type=click.Choice(["entropy", "max"]), default="entropy", show_default=True)
@click.option("--high-precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="Type of the unquantized layers: fp32 builds on TensorRT 8.5+; fp16 for TensorRT 11 --best.")
@click.option("--fp16", "fp16_only", is_flag=True, help="Convert to FP16 only (no INT8), for TensorRT 11.")
@click.option("--opset", type=click.IntRange(13, 21), default=17, show_default=True,
              help="Opset to write (TensorRT 8.5 parses up to 17); 0 keeps ModelOpt's.")
@click.option("--out", default=None, callback=writable_folder, help="Output folder  [default: beside the ONNX]")
@click.option("--name", default=None, help="Output file name.")
@accuracy_gate_options
def quantize_cmd(onnx_path, calib, images, method, high_precision, fp16_only, opset, out, name, accuracy_data,
                 accuracy_split, accuracy_images, max_map_drop):
    """Insert INT8 Q/DQ nodes with NVIDIA ModelOpt (host), so devices build INT8 without calibration images."""
    from edgekit.eval.gate import gate_request
    from edgekit.host.quantize import quantize

    gate = gate_request(accuracy_data, accuracy_split, accuracy_images, max_map_drop)  # checked before ModelOpt
    click.echo(str(quantize(onnx_path, calib, out=out, name=name, images=images, method=method,
                            high_precision=high_precision, target_opset=opset, fp16_only=fp16_only, gate=gate)))




@click.command()
@click.option("--models", cls=ListOption, help="Baseline weights or model YAMLs: --models yolov8n.pt yolov8m.pt")
@click.option("--pruned", cls=ListOption, help="Pruned weights to set beside them.")
@click.option("--precisions", cls=ListOption, help="fp32 (ONNX Runtime, the default), fp16, int8, best (TensorRT "
              "engines built here: needs TensorRT and a GPU).")
@click.option("--calib", default=None, help="Calibration images for --precisions int8/best.")
@click.option("--data", required=True, help="data.yaml or COCO json to evaluate on.")
@click.option("--imgsz", type=IMGSZ, default=640, show_default=True)
@click.option("--iterations", type=POSITIVE_INT, default=50, show_default=True)
@click.option("--warmup", type=NON_NEGATIVE_INT, default=5, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None)
@click.option("--out", default=None, callback=writable_folder,
              help="Results folder  [default: benchmarks/tradeoff-TIME]")
@click.option("--download", is_flag=True, help="Let ultralytics download official weights when missing.")
@trust_weights_option
def tradeoff(models, pruned, precisions, calib, data, imgsz, iterations, warmup, threads, out, download,
             trust_weights):
    """Export, bench and eval each model and precision, then report: the one command to choose a model (host)."""
    from edgekit.host.tradeoff import tradeoff as run
    from edgekit.log import out as console_out
    from edgekit.report.render import tables

    flat = ListOption.flatten
    result = run(flat(models), data, pruned=flat(pruned), precisions=flat(precisions) or ["fp32"], imgsz=imgsz, out=out,
                 warmup=warmup, iterations=iterations, threads=threads or os.cpu_count(), download=download,
                 calib=calib, trust_weights=trust_weights)
    for table in tables(result["report"]):
        console_out.print(table)
    click.echo(str(result["dir"]))
    if result["failed"]:
        raise EdgekitError("eval failed for %s: the other results above are saved in %s"
                           % ("; ".join(result["failed"]), result["dir"]))


@click.command("make-dataset")
@click.argument("out", type=click.Path(file_okay=False), callback=writable_folder)
@click.option("--train", "n_train", type=click.IntRange(min=1), default=160, show_default=True)
@click.option("--val", "n_val", type=click.IntRange(min=1), default=48, show_default=True)
@click.option("--seed", type=NON_NEGATIVE_INT, default=0, show_default=True)
@click.option("--small-objects", "small_share", type=UNIT_INTERVAL, default=0.0, show_default=True,
              help="Share of images made of four half-size scenes: objects of 17-48 px, COCO small and medium "
                   "(the default scenes hold medium objects only).")
def make_dataset_cmd(out, n_train, n_val, seed, small_share):
    """Write the small synthetic detection dataset (shapes, YOLO labels) used by tests and demos."""
    import shutil

    from edgekit.eval.mosaic import make_dataset_with_small_objects
    from edgekit.manifest import disk_errors

    root = Path(out)
    held = [p.name for p in (root / "images", root / "labels", root / "data.yaml") if p.exists()]
    if held:  # writing over it would mix the old images with the new ones
        raise EdgekitError("%s already holds a dataset (%s): give a new or empty folder" % (out, ", ".join(held)))
    made = [p for p in (root, root / "images", root / "labels", root / "data.yaml") if not p.exists()]
    try:
        with disk_errors(root):
            click.echo(str(make_dataset_with_small_objects(out, n_train, n_val, seed, small_share)))
    except BaseException:  # a full disk or Ctrl-C: no half-written dataset is left for a later run to trust
        for path in made:
            if path.is_dir():
                shutil.rmtree(str(path), ignore_errors=True)
            elif path.exists():
                path.unlink()
        raise


@click.command()
@click.option("--models", default="yolov8n,yolov8m", show_default=True,
              help="Comma-separated YOLOv8 names; NAME.pt is used when present, else NAME.yaml (untrained).")
@click.option("--imgsz", type=IMGSZ, default=640, show_default=True)
@click.option("--iterations", type=POSITIVE_INT, default=20, show_default=True)
@click.option("--warmup", type=NON_NEGATIVE_INT, default=3, show_default=True)
@click.option("--out", default="engines", show_default=True, callback=writable_folder)
@trust_weights_option
def demo(models, imgsz, iterations, warmup, out, trust_weights):
    """Main demo: export each model to ONNX, then bench them side by side on ONNX Runtime."""
    from edgekit.commands.device import run_bench
    from edgekit.host.export import export as do_export
    from edgekit.log import info

    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise EdgekitError("--models is empty: give YOLOv8 names such as yolov8n,yolov8m")
    from edgekit.bench.report import DEFAULT_DIR
    from edgekit.outputs import writable_problem

    problem = writable_problem(DEFAULT_DIR, folder=True)
    if problem:  # the bench at the end saves there: say so before the exports, not after them
        raise EdgekitError("cannot save the demo's results: %s" % problem)
    onnx_paths = []
    for name in names:
        weights = name + ".pt"
        if not Path(weights).exists():
            info("%s not found here: exporting %s.yaml (random init) to show the pipeline and its speed"
                 % (weights, name))
            weights = name + ".yaml"
        onnx_paths.append(str(do_export(weights=weights, imgsz=imgsz, out=out, trust_weights=trust_weights)))
    run_bench(onnx_paths, backend="onnxruntime", warmup=warmup, iterations=iterations)


COMMANDS = [export, prune_cmd, quantize_cmd, tradeoff, make_dataset_cmd, demo]
