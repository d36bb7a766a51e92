"""edgekit's command line: thin Click commands that parse options, call the library and print.

Heavy modules (torch, ultralytics, onnxruntime) are imported inside the commands that need them, so
``edgekit --help`` and every device command work without torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from edgekit import __version__
from edgekit.errors import EdgekitError

DEFAULT_OPSET = 17  # kept equal to edgekit.host.export.DEFAULT_OPSET without importing the host package


class EdgekitGroup(click.Group):
    """Turns :class:`EdgekitError` into one line on stderr and exit code 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgekitError as exc:
            click.echo("error: %s" % exc, err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=EdgekitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
def cli():
    """YOLOv8 from the workstation to NVIDIA Jetson, with honest numbers.

    Host: export, prune, quantize, tradeoff.
    Device: info, build, inspect, bench, camera, eval, compare, report (TensorRT, or ONNX Runtime anywhere).
    """


class ListOption(click.Option):
    """An option that takes every value up to the next option: ``--models a.pt b.pt c.pt`` (also repeatable,
    and comma-separated values work too)."""

    def __init__(self, *args, **kwargs):
        kwargs.update(multiple=True, type=click.UNPROCESSED)
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser, ctx):
        result = super().add_to_parser(parser, ctx)
        for name in self.opts:
            opt = parser._long_opt.get(name) or parser._short_opt.get(name)
            if opt is not None:
                original = opt.process

                def process(value, state, original=original):
                    values = [value]
                    while state.rargs and not state.rargs[0].startswith("-"):
                        values.append(state.rargs.pop(0))
                    original(tuple(values), state)

                opt.process = process
        return result

    @staticmethod
    def flatten(value) -> list:
        items = []
        for group in value or ():
            for item in group if isinstance(group, (tuple, list)) else [group]:
                items += [v for v in str(item).replace(",", " ").split() if v]
        return items


# --- option bundles, spelled once for every command -------------------------------------------------
def bundle(*options):
    """A decorator that adds ``options`` (click.option decorators) in the order given: one spelling per option
    for every command that takes it."""

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


backend_options = bundle(
    click.option("--backend", type=click.Choice(["auto", "onnxruntime", "tensorrt"]), default="auto",
                 show_default=True, help="Inference backend; auto: TensorRT for engines, ONNX Runtime for ONNX."),
    click.option("--threads", type=click.IntRange(min=1), default=None,
                 help="ONNX Runtime intra-op threads  [default: all CPU cores]"),
)

output_options = bundle(
    click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Write results as JSON here  [default: benchmarks/results/COMMAND-TIME.json]"),
    click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Also write results as CSV here."),
    click.option("--no-save", is_flag=True, help="Print the table only; write no files."),
)

source_options = bundle(
    click.option("--width", type=int, default=1280, show_default=True, help="Capture width (cameras, synthetic)."),
    click.option("--height", type=int, default=720, show_default=True, help="Capture height."),
    click.option("--fps", type=float, default=30.0, show_default=True, help="Capture frame rate."),
    click.option("--flip", type=click.IntRange(0, 7), default=0, help="CSI camera flip-method (nvvidconv)."),
    click.option("--codec", type=click.Choice(["MJPG", "YUYV"]), default="MJPG", show_default=True,
                 help="USB (V4L2) camera pixel format."),
    click.option("--latency", type=int, default=200, show_default=True, help="RTSP jitter buffer (ms)."),
    click.option("--loop", is_flag=True, help="Restart files and image folders at their end."),
    click.option("--realtime", is_flag=True,
                 help="Play files at their frame rate, dropping late frames like a camera (default: every frame)."),
)


def save_results(document, json_path, csv_text, csv_path, no_save, default_path):
    """Write a result document (JSON) and optional CSV atomically; say where."""
    from edgekit.manifest import write_json_atomic, write_text_atomic

    if no_save:
        return
    click.echo("wrote %s" % write_json_atomic(json_path or default_path, document), err=True)
    if csv_path and csv_text is not None:
        click.echo("wrote %s" % write_text_atomic(csv_path, csv_text), err=True)


# --- host --------------------------------------------------------------------------------------------
@cli.command()
@click.option("--weights", default="yolov8m.pt", show_default=True,
              help="YOLOv8 weights (.pt) or ultralytics model YAML (e.g. yolov8m.yaml: untrained).")
@click.option("--imgsz", type=int, default=640, show_default=True, help="Square input size (multiple of 32).")
@click.option("--batch", type=int, default=1, show_default=True, help="Static batch size.")
@click.option("--dynamic", is_flag=True, help="Dynamic batch and image size instead of static.")
@click.option("--opset", type=int, default=DEFAULT_OPSET, show_default=True,
              help="ONNX opset (TensorRT 8.5 parses up to 17).")
@click.option("--out", default="engines", show_default=True, help="Output folder.")
@click.option("--name", default=None, help="Output file name  [default: from weights, size and batch]")
@click.option("--download", is_flag=True, help="Let ultralytics download official weights when missing.")
def export(weights, imgsz, batch, dynamic, opset, out, name, download):
    """Export YOLOv8 weights to a simplified ONNX with a manifest (host, needs torch)."""
    from edgekit.host.export import export as do_export

    path = do_export(weights=weights, imgsz=imgsz, batch=batch, dynamic=dynamic, opset=opset, out=out,
                     name=name, download=download)
    click.echo(str(path))


@cli.command("prune")
@click.option("--weights", default="yolov8m.pt", show_default=True, help="Baseline YOLOv8 weights (.pt) or YAML.")
@click.option("--data", required=True, help="ultralytics data.yaml: search scores on val, fine-tunes on train.")
@click.option("--flops", default=None, help="FLOPs budget, percent of the baseline or absolute  [default: 66%]")
@click.option("--params", default=None, help="Or a parameter budget, e.g. 60%.")
@click.option("--imgsz", type=int, default=640, show_default=True)
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=50, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--calib-batches", type=int, default=50, show_default=True,
              help="Batches for BatchNorm recalibration of each candidate (>= 50).")
@click.option("--score-images", type=click.IntRange(min=1), default=64, show_default=True,
              help="Validation images for the search score (minus the detection loss).")
@click.option("--out", default="engines", show_default=True)
@click.option("--cache", default=".edgekit-cache", show_default=True, help="Search checkpoints and ModelOpt state.")
@click.option("--device", default=None, help="Training device, e.g. 0 or cpu  [default: cpu]")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="ONNX Runtime threads for the measurement.")
@click.option("--iterations", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--download", is_flag=True, help="Let ultralytics download official weights when missing.")
@output_options
def prune_cmd(weights, data, flops, params, imgsz, finetune_epochs, batch, calib_batches, score_images, out, cache,
              device, threads, iterations, download, json_path, csv_path, no_save):
    """Prune with ModelOpt FastNAS under a budget, fine-tune, export, and measure against the baseline (host)."""
    from edgekit.host.prune import prune
    from edgekit.host.prune_report import measure, table
    from edgekit.log import out as console_out

    result = prune(weights, data, flops=flops, params=params, imgsz=imgsz, finetune_epochs=finetune_epochs,
                   batch=batch, calib_batches=calib_batches, score_images=score_images, out=out, cache=cache,
                   device=device, download=download)
    m = measure(result["baseline"], result["pruned"], data, threads or os.cpu_count(), iterations=iterations)
    console_out.print(table(m, "edgekit prune: %s under %s" % (weights, result["constraints"])))
    from edgekit.bench.report import default_result_path, result_document

    doc = {"kind": "prune", "prune": result, "measured": {k: v for k, v in m.items() if k not in ("bench", "eval")}}
    name = "prune-" + Path(weights).stem
    save_results(doc, json_path, None, None, no_save, default_result_path("prune", Path(weights).stem))
    if not no_save:  # the same rows join edgekit report; beside --json when given
        folder = Path(json_path).parent if json_path else None
        save_results(result_document("bench", m["bench"]), None, None, None, False,
                     default_result_path("bench", name, folder))
        save_results(result_document("eval", m["eval"]), None, None, None, False,
                     default_result_path("eval", name, folder))
    click.echo(result["pruned"])


@cli.command("quantize")
@click.argument("onnx_path", metavar="MODEL.onnx")
@click.option("--calib", default=None, help="Folder of calibration images (frames like the camera's).")
@click.option("--images", type=click.IntRange(min=1), default=256, show_default=True,
              help="Calibration images to use.")
@click.option("--method", type=click.Choice(["entropy", "max"]), default="entropy", show_default=True)
@click.option("--high-precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="Type of the unquantized layers: fp32 builds on TensorRT 8.5+; fp16 for TensorRT 11 --best.")
@click.option("--fp16", "fp16_only", is_flag=True, help="Convert to FP16 only (no INT8), for TensorRT 11.")
@click.option("--opset", type=int, default=17, show_default=True,
              help="Opset to write (TensorRT 8.5 parses up to 17); 0 keeps ModelOpt's.")
@click.option("--out", default=None, help="Output folder  [default: beside the ONNX]")
@click.option("--name", default=None, help="Output file name.")
def quantize_cmd(onnx_path, calib, images, method, high_precision, fp16_only, opset, out, name):
    """Insert INT8 Q/DQ nodes with NVIDIA ModelOpt (host), so devices build INT8 without calibration images."""
    from edgekit.host.quantize import quantize

    click.echo(str(quantize(onnx_path, calib, out=out, name=name, images=images, method=method,
                            high_precision=high_precision, target_opset=opset, fp16_only=fp16_only)))


# --- device ------------------------------------------------------------------------------------------
@cli.command("build")
@click.argument("onnx_path", metavar="MODEL.onnx")
@click.option("--fp32", "precision", flag_value="fp32", help="FP32 only.")
@click.option("--fp16", "precision", flag_value="fp16", help="FP16 (the default where the GPU has fast FP16).")
@click.option("--int8", "precision", flag_value="int8", help="INT8: calibrated with --calib, or a Q/DQ model.")
@click.option("--best", "precision", flag_value="best", help="INT8 + FP16: TensorRT picks the faster per layer.")
@click.option("--calib", default=None, help="Folder of calibration images for INT8 (classic calibration).")
@click.option("--calib-batches", type=int, default=None, help="Calibration batches  [default: all images]")
@click.option("--calib-cache", default=None, help="Calibration table file  [default: OUT/calib/NAME-KEY.calib]")
@click.option("--workspace", type=int, default=None, help="Builder workspace limit in MiB.")
@click.option("--timing-cache", default=None, help="Timing cache file, reused and merged across builds.")
@click.option("--dla", "dla_core", type=int, default=None, help="Build for DLA core N (Xavier/Orin).")
@click.option("--allow-gpu-fallback", is_flag=True, help="With --dla: run layers DLA cannot on the GPU.")
@click.option("--batch", type=int, default=None, help="Batch for a dynamic-batch ONNX (profile opt = max).")
@click.option("--tactic-sources", default=None,
              help="trtexec syntax, e.g. -CUBLAS,+CUDNN  [default: EDGE_MASK_CONVOLUTIONS,JIT_CONVOLUTIONS]")
@click.option("--out", default="engines", show_default=True, help="Output folder.")
@click.option("--name", default=None, help="Engine file name  [default: MODEL-PRECISION-smXX-trtX.Y.Z.engine]")
@click.option("--gpu", type=int, default=0, show_default=True, help="CUDA device index.")
@click.option("--verbose", is_flag=True, help="Show TensorRT's own log.")
@click.option("--if-changed", is_flag=True,
              help="Skip the build when OUT has an intact engine of this ONNX (sha256), precision, DLA core, "
                   "TensorRT version and GPU; print its path ('up to date').")
def build_cmd(onnx_path, precision, calib, calib_batches, calib_cache, workspace, timing_cache, dla_core,
              allow_gpu_fallback, batch, tactic_sources, out, name, gpu, verbose, if_changed):
    """Build a TensorRT engine from an ONNX on this device: FP16, INT8 (calibrated or Q/DQ), DLA (device)."""
    from edgekit.build.plan import BuildRequest
    from edgekit.build.prepare import prepare
    from edgekit.lazy import lazy_import

    request = BuildRequest(precision=precision, calib=calib, dla_core=dla_core, gpu_fallback=allow_gpu_fallback,
                           batch=batch)
    prepared = prepare(onnx_path, request, workspace=workspace, tactic_sources=tactic_sources,
                       calib_batches=calib_batches)  # bad files and folders fail here, before TensorRT
    lazy_import("tensorrt")
    lazy_import("pycuda.driver")
    from edgekit.build.engine import build_engine

    if if_changed:
        from edgekit.build.engine import device_facts
        from edgekit.runtime.engine_file import find_current_engine

        current = find_current_engine(out, prepared.onnx_manifest["sha256"], precision, device_facts(gpu), dla_core)
        if current is not None:
            click.echo("up to date: %s" % current, err=True)
            click.echo(str(current))
            return
    command = rebuild_command(onnx_path, precision, calib, calib_batches, dla_core, allow_gpu_fallback, batch,
                              workspace, tactic_sources)
    click.echo(str(build_engine(prepared, request, out=out, name=name, timing_cache=timing_cache,
                                calib_cache=calib_cache, gpu=gpu, verbose=verbose, command=command)))


def rebuild_command(onnx_path, precision, calib, calib_batches, dla_core, gpu_fallback, batch, workspace,
                    tactic_sources) -> str:
    """The build command as a user would type it again (kept in the manifest for compat errors)."""
    import shlex

    parts = ["edgekit", "build", str(onnx_path)] + (["--" + precision] if precision else [])
    for option, value in [("--calib", calib), ("--calib-batches", calib_batches), ("--dla", dla_core),
                          ("--allow-gpu-fallback", gpu_fallback or None), ("--batch", batch),
                          ("--workspace", workspace), ("--tactic-sources", tactic_sources)]:
        if value is True:
            parts.append(option)
        elif value is not None:
            parts += [option, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


@cli.command("inspect")
@click.argument("path", metavar="ENGINE|ONNX")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--layers/--no-layers", default=True, help="Per-layer precisions (engines, needs TensorRT + GPU).")
def inspect_cmd(path, as_json, layers):
    """Show a model's manifest, I/O tensors, Q/DQ nodes, and an engine's layer precisions."""
    import json as json_mod

    from edgekit.log import out
    from edgekit.runtime.inspect import inspect_model, inspect_rows

    doc = inspect_model(path, layers=layers)
    if as_json:
        click.echo(json_mod.dumps(doc, indent=2, default=str))
        return
    out.print(inspect_rows(doc))


@cli.command()
@click.argument("models", nargs=-1, required=True)
@backend_options
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed iterations first.")
@click.option("--iterations", type=int, default=100, show_default=True, help="Timed iterations.")
@click.option("--duration", type=float, default=None, help="Run for this many seconds instead of --iterations.")
@click.option("--batch", type=int, default=None, help="Frames per inference  [default: the model's batch]")
@click.option("--source", default=None, help="Image, image folder or video to feed  [default: synthetic frames]")
@click.option("--cuda-graph", is_flag=True, help="TensorRT: replay inference as a CUDA graph (static shapes).")
@output_options
def bench(models, backend, threads, warmup, iterations, duration, batch, source, cuda_graph, json_path, csv_path,
          no_save):
    """Measure models end to end: preprocess, inference, postprocess/NMS; ONNX and engines side by side (device)."""
    run_bench(models, backend, threads, warmup, iterations, duration, batch, source, json_path, csv_path, no_save,
              cuda_graph=cuda_graph)


def run_bench(models, backend="auto", threads=None, warmup=10, iterations=100, duration=None, batch=None,
              source=None, json_path=None, csv_path=None, no_save=False, cuda_graph=False):
    from edgekit.bench import BenchConfig, bench_models, report
    from edgekit.log import out

    config = BenchConfig(backend=backend, warmup=warmup, iterations=iterations, duration=duration, batch=batch,
                         source=source, threads=threads or os.cpu_count(), cuda_graph=cuda_graph)
    results = bench_models(models, config)
    out.print(report.results_table(results))
    save_results(report.result_document("bench", results), json_path, report.to_csv(results), csv_path, no_save,
                 report.default_result_path("bench"))
    return results


@cli.command()
@click.argument("source")
@click.option("--model", required=True, help="TensorRT engine or ONNX model.")
@backend_options
@source_options
@click.option("--conf", type=float, default=0.25, show_default=True, help="Confidence threshold.")
@click.option("--iou", type=float, default=0.7, show_default=True, help="NMS IoU threshold.")
@click.option("--display/--headless", default=None,
              help="Show a window  [default: when a display exists]; --headless never opens one.")
@click.option("--record", type=click.Path(dir_okay=False), default=None, help="Record the annotated video (.mp4/.avi).")
@click.option("--serve", type=click.IntRange(0, 65535), default=None,
              help="Serve the live stream and numbers on this port (web page at http://HOST:PORT/).")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address for --serve.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), default=None, help="One JSON line per frame.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--frames", type=click.IntRange(min=1), default=None, help="Stop after this many frames.")
@click.option("--no-pipeline", is_flag=True, help="Run stages one after another (no overlap), for comparison.")
@click.option("--engine-iters", type=click.IntRange(min=0), default=30, show_default=True,
              help="Inference-only runs before the loop, for loop FPS / engine FPS (0: skip).")
@click.option("--capture-timeout", type=float, default=2.0, show_default=True,
              help="Seconds without a frame before a stall is reported.")
@output_options
def camera(source, model, backend, threads, width, height, fps, flip, codec, latency, loop, realtime, conf, iou,
           display, record, serve, host, log_path, duration, frames, no_pipeline, engine_iters, capture_timeout,
           json_path, csv_path, no_save):
    """Live detection on a camera, stream, file or synthetic:// source, timed per stage (device)."""
    from edgekit.camera.session import CameraRequest, camera_session

    request = CameraRequest(
        source=source, model=model, backend=backend, threads=threads,
        options=dict(width=width, height=height, fps=fps, flip=flip, codec=codec, latency=latency, loop=loop,
                     realtime=realtime),
        conf=conf, iou=iou, display=display, record=record, serve=serve, host=host, log=log_path,
        duration=duration, frames=frames, pipeline=not no_pipeline, engine_iters=engine_iters,
        capture_timeout=capture_timeout)
    from edgekit.bench.report import default_result_path, result_document
    from edgekit.camera import report
    from edgekit.log import out

    summary = camera_session(request)
    out.print(report.summary_table(summary))
    out.print(report.summary_lines(summary))
    save_results(result_document("camera", [summary]), json_path, report.to_csv(summary), csv_path, no_save,
                 default_result_path("camera"))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(as_json):
    """What this box is: Jetson model, L4T/JetPack, TensorRT, CUDA, cuDNN, OpenCV, power mode, clocks, DLA."""
    import json as json_mod

    from rich.table import Table

    from edgekit.boxinfo import box_info, info_rows
    from edgekit.log import out

    data = box_info()
    if as_json:
        click.echo(json_mod.dumps(data, indent=2))
        return
    table = Table(title="edgekit info", show_header=False)
    table.add_column("what")
    table.add_column("value")
    for row in info_rows(data):
        table.add_row(*row)
    out.print(table)


@cli.group()
def service():
    """The field demo (edgekit camera) as a systemd service: starts at boot, restarts, logs to the journal."""


@service.command("install")
@click.option("--source", required=True, help="Camera or stream URI, e.g. csi://0, /dev/video0, rtsp://...")
@click.option("--model", required=True, help="Engine (or ONNX) to run.")
@click.option("--port", type=int, default=8080, show_default=True, help="Web stream port (edgekit camera --serve).")
@click.option("--name", default="edgekit-camera", show_default=True, help="Unit name.")
@click.option("--user", default=None, help="User the demo runs as  [default: you]")
@click.option("--unit-dir", default=None, help="Write the unit here instead of /etc/systemd/system (no start).")
@click.option("--no-start", is_flag=True, help="Write the unit only; do not enable or start it.")
@click.option("--print", "print_only", is_flag=True, help="Print the unit and write nothing.")
@click.argument("camera_args", nargs=-1, type=click.UNPROCESSED)
def service_install(source, model, port, name, user, unit_dir, no_start, print_only, camera_args):
    """Write, enable and start the unit; extra args after -- go to edgekit camera (e.g. -- --conf 0.4)."""
    from edgekit import service as svc

    if print_only:
        click.echo(svc.render(source, str(Path(model).expanduser().resolve()), port, name, user,
                              extra=list(camera_args)), nl=False)
        return
    click.echo(str(svc.install(source, model, port, name, user, unit_dir, start=not no_start,
                               extra=list(camera_args))))


@service.command("uninstall")
@click.option("--name", default="edgekit-camera", show_default=True)
@click.option("--unit-dir", default=None, help="Where the unit was written (default /etc/systemd/system).")
def service_uninstall(name, unit_dir):
    """Stop, disable and remove the unit."""
    from edgekit import service as svc

    click.echo(str(svc.uninstall(name, unit_dir)))


@cli.command("eval")
@click.argument("model")
@click.option("--data", required=True, help="data.yaml (YOLO format) or a COCO annotations json.")
@click.option("--images", default=None, help="Image folder, for a COCO json.")
@click.option("--split", default="val", show_default=True, help="data.yaml split to evaluate.")
@backend_options
@click.option("--conf", type=float, default=0.001, show_default=True)
@click.option("--iou", type=float, default=0.7, show_default=True)
@click.option("--max-det", type=click.IntRange(min=1), default=300, show_default=True)
@output_options
def eval_cmd(model, data, images, split, backend, threads, conf, iou, max_det, json_path, csv_path, no_save):
    """mAP50-95, mAP50, precision, recall of a model on a dataset, as ultralytics val computes them (device)."""
    from edgekit.bench.report import default_result_path, result_document
    from edgekit.eval import report as eval_report
    from edgekit.eval.dataset import load_dataset
    from edgekit.eval.evaluate import evaluate
    from edgekit.log import out
    from edgekit.runtime import open_runner

    dataset = load_dataset(data, split=split, images=images)
    with open_runner(model, backend, threads=threads) as runner:
        result = evaluate(runner, dataset, conf=conf, iou=iou, max_det=max_det)
    out.print(eval_report.metrics_table(result))
    save_results(result_document("eval", [result]), json_path, eval_report.to_csv(result), csv_path,
                 no_save, default_result_path("eval", result["name"]))


@cli.command()
@click.argument("model_a")
@click.argument("model_b")
@click.option("--data", default=None, help="Compare on this dataset's images (data.yaml or COCO json + --images).")
@click.option("--images", default=None, help="Image folder, for a COCO json.")
@click.option("--source", default=None, help="Or: an image, image folder or video  [default: synthetic frames]")
@click.option("--frames", "max_frames", type=click.IntRange(min=1), default=50, show_default=True)
@backend_options
@click.option("--conf", type=float, default=0.25, show_default=True)
@click.option("--iou", type=float, default=0.7, show_default=True)
@click.option("--match-iou", type=float, default=0.5, show_default=True, help="IoU for two boxes to match.")
@output_options
def compare(model_a, model_b, data, images, source, max_frames, backend, threads, conf, iou, match_iou, json_path,
            csv_path, no_save):
    """Output agreement of two models on the same frames: ONNX vs engine, FP16 vs INT8, baseline vs pruned."""
    from edgekit.bench.report import default_result_path, result_document
    from edgekit.eval import report as eval_report
    from edgekit.eval.compare import compare as do_compare
    from edgekit.eval.report import load_frames_for
    from edgekit.log import out
    from edgekit.runtime import open_runner

    frames = load_frames_for(data, images, source, max_frames)
    with open_runner(model_a, backend, threads=threads) as a, open_runner(model_b, backend, threads=threads) as b:
        result = do_compare(a, b, frames, conf=conf, iou=iou, match_iou=match_iou)
    out.print(eval_report.compare_table(result))
    save_results(result_document("compare", [result]), json_path, None, None, no_save,
                 default_result_path("compare", "%s-vs-%s" % (a.path.stem, b.path.stem)))


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), default=None, help="Write Markdown here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write the accuracy vs latency plot (PNG) here.")
def report(paths, md_path, plot_path):
    """Join bench and eval results (default: benchmarks/) into one table per device, Markdown and a plot."""
    from edgekit.log import out
    from edgekit.manifest import write_text_atomic
    from edgekit.report import join_results, load_documents
    from edgekit.report.render import markdown, plot, tables

    joined = join_results(load_documents(paths or ["benchmarks"]))
    if not joined:
        raise EdgekitError("no bench or eval results in %s: run edgekit bench / edgekit eval first"
                           % ", ".join(paths or ["benchmarks"]))
    for table in tables(joined):
        out.print(table)
    if md_path:
        click.echo("wrote %s" % write_text_atomic(md_path, markdown(joined)), err=True)
    if plot_path:
        click.echo("wrote %s" % plot(joined, plot_path), err=True)


@cli.command()
@click.option("--models", cls=ListOption, help="Baseline weights or model YAMLs: --models yolov8n.pt yolov8m.pt")
@click.option("--pruned", cls=ListOption, help="Pruned weights to set beside them.")
@click.option("--precisions", cls=ListOption, help="fp32 (ONNX Runtime, the default), fp16, int8, best (TensorRT "
              "engines built here: needs TensorRT and a GPU).")
@click.option("--calib", default=None, help="Calibration images for --precisions int8/best.")
@click.option("--data", required=True, help="data.yaml or COCO json to evaluate on.")
@click.option("--imgsz", type=int, default=640, show_default=True)
@click.option("--iterations", type=int, default=50, show_default=True)
@click.option("--warmup", type=int, default=5, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None)
@click.option("--out", default=None, help="Results folder  [default: benchmarks/tradeoff-TIME]")
@click.option("--download", is_flag=True, help="Let ultralytics download official weights when missing.")
def tradeoff(models, pruned, precisions, calib, data, imgsz, iterations, warmup, threads, out, download):
    """Export, bench and eval each model and precision, then report: the one command to choose a model (host)."""
    from edgekit.host.tradeoff import tradeoff as run
    from edgekit.log import out as console_out
    from edgekit.report.render import tables

    flat = ListOption.flatten
    result = run(flat(models), data, pruned=flat(pruned), precisions=flat(precisions) or ["fp32"], imgsz=imgsz, out=out,
                 warmup=warmup, iterations=iterations, threads=threads or os.cpu_count(), download=download,
                 calib=calib)
    for table in tables(result["report"]):
        console_out.print(table)
    click.echo(str(result["dir"]))


@cli.command("make-dataset")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--train", "n_train", type=click.IntRange(min=1), default=160, show_default=True)
@click.option("--val", "n_val", type=click.IntRange(min=1), default=48, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def make_dataset_cmd(out, n_train, n_val, seed):
    """Write the small synthetic detection dataset (shapes, YOLO labels) used by tests and demos."""
    from edgekit.eval.synthetic import make_dataset

    click.echo(str(make_dataset(out, n_train=n_train, n_val=n_val, seed=seed)))


@cli.command()
@click.option("--models", default="yolov8n,yolov8m", show_default=True,
              help="Comma-separated YOLOv8 names; NAME.pt is used when present, else NAME.yaml (untrained).")
@click.option("--imgsz", type=int, default=640, show_default=True)
@click.option("--iterations", type=int, default=20, show_default=True)
@click.option("--warmup", type=int, default=3, show_default=True)
@click.option("--out", default="engines", show_default=True)
def demo(models, imgsz, iterations, warmup, out):
    """Main demo: export each model to ONNX, then bench them side by side on ONNX Runtime."""
    from edgekit.host.export import export as do_export
    from edgekit.log import info

    onnx_paths = []
    for name in [m.strip() for m in models.split(",") if m.strip()]:
        weights = name + ".pt"
        if not Path(weights).exists():
            info("%s not found here: exporting %s.yaml (random init) to show the pipeline and its speed"
                 % (weights, name))
            weights = name + ".yaml"
        onnx_paths.append(str(do_export(weights=weights, imgsz=imgsz, out=out)))
    run_bench(onnx_paths, backend="onnxruntime", warmup=warmup, iterations=iterations)


def main():
    cli(prog_name="edgekit")


if __name__ == "__main__":
    main()
