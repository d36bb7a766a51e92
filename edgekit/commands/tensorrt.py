"""TensorRT commands (device): build an engine on this GPU, inspect engines and ONNX."""

from __future__ import annotations

import click

from edgekit.options import NON_NEGATIVE_FLOAT, ExclusiveFlag, bundle
from edgekit.outputs import writable_folder

# build and quantize spell the gate's options the same (edgekit.eval.gate)
accuracy_gate_options = bundle(
    click.option("--accuracy-data", default=None, metavar="DATA",
                 help="data.yaml or COCO json: evaluate the new model and its float ONNX (ONNX Runtime) on it, print "
                      "both mAPs and record them in the manifest ('accuracy')."),
    click.option("--accuracy-split", default="val", show_default=True, help="data.yaml split for --accuracy-data."),
    click.option("--accuracy-images", default=None, metavar="DIR", help="Image folder, for a COCO json."),
    click.option("--max-map-drop", type=NON_NEGATIVE_FLOAT, default=None, metavar="POINTS",
                 help="Refuse (exit 1, nothing kept) a model that loses more mAP50-95 points than this on "
                      "--accuracy-data (1.0 = 0.01 mAP)  [default: measure and record only]"),
)


@click.command("build")
@click.argument("onnx_path", metavar="MODEL.onnx")
@click.option("--fp32", "precision", flag_value="fp32", cls=ExclusiveFlag, help="FP32 only.")
@click.option("--fp16", "precision", flag_value="fp16", cls=ExclusiveFlag,
              help="FP16 (the default where the GPU has fast FP16).")
@click.option("--int8", "precision", flag_value="int8", cls=ExclusiveFlag,
              help="INT8: calibrated with --calib, or a Q/DQ model.")
@click.option("--best", "precision", flag_value="best", cls=ExclusiveFlag,
              help="INT8 + FP16: TensorRT picks the faster per layer.")
@click.option("--calib", default=None, help="Folder of calibration images for INT8 (classic calibration).")
@click.option("--calib-batches", type=click.IntRange(min=1), default=None,
              help="Calibration batches  [default: all images]")
@click.option("--calib-cache", default=None, help="Calibration table file  [default: OUT/calib/NAME-KEY.calib]")
@click.option("--workspace", type=click.IntRange(min=1), default=None, help="Builder workspace limit in MiB.")
@click.option("--timing-cache", default=None, help="Timing cache file, reused and merged across builds.")
@click.option("--dla", "dla_core", type=click.IntRange(min=0), default=None, help="Build for DLA core N (Xavier/Orin).")
@click.option("--allow-gpu-fallback", is_flag=True, help="With --dla: run layers DLA cannot on the GPU.")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Batch for a dynamic-batch ONNX (profile opt = max).")
@click.option("--tactic-sources", default=None,
              help="trtexec syntax, e.g. -CUBLAS,+CUDNN  [default: EDGE_MASK_CONVOLUTIONS,JIT_CONVOLUTIONS]")
@click.option("--fast-build", is_flag=True,
              help="Shorter builds, same precision: tactic heuristic (TensorRT 8.5/8.6, sm_80+) or optimization "
                   "level 2 (8.6+), and no JIT_CONVOLUTIONS in the default tactic sources.")
@click.option("--tactic-heuristic", is_flag=True,
              help="Heuristic tactic choice instead of timing them all (TensorRT 8.5/8.6, Ampere or newer GPU).")
@click.option("--optimization-level", type=click.IntRange(0, 5), default=None,
              help="TensorRT 8.6+ builder optimization level: lower builds faster  [TensorRT default: 3]")
@click.option("--avg-timing-iterations", type=click.IntRange(min=1), default=None,
              help="Timing runs averaged per tactic  [TensorRT default: 1; trtexec uses 8]")
@click.option("--out", default="engines", show_default=True, callback=writable_folder, help="Output folder.")
@click.option("--name", default=None,
              help="Engine file name  [default: MODEL-PRECISION[-qdq][-dlaN][-bN]-smXY-trtX.Y.Z.engine]")
@click.option("--gpu", type=click.IntRange(min=0), default=0, show_default=True, help="CUDA device index.")
@click.option("--verbose", is_flag=True, help="Show TensorRT's own log.")
@click.option("--if-changed", is_flag=True,
              help="Skip the build when OUT has an intact engine of this ONNX (sha256), precision, DLA core, "
                   "TensorRT version and GPU (and, with --accuracy-data, measured on that data within "
                   "--max-map-drop); print its path ('up to date').")
@accuracy_gate_options
def build_cmd(onnx_path, precision, calib, calib_batches, calib_cache, workspace, timing_cache, dla_core,
              allow_gpu_fallback, batch, tactic_sources, fast_build, tactic_heuristic, optimization_level,
              avg_timing_iterations, out, name, gpu, verbose, if_changed, accuracy_data, accuracy_split,
              accuracy_images, max_map_drop):
    """Build a TensorRT engine from an ONNX on this device: FP16, INT8 (calibrated or Q/DQ), DLA (device)."""
    from edgekit.eval.gate import gate_request
    from edgekit.eval.gated_build import build_gated, check_gate, why_rebuild
    from edgekit.lazy import require_tensorrt
    from edgekit.runtime.tensorrt.plan import BuildRequest
    from edgekit.runtime.tensorrt.prepare import prepare, rebuild_command
    from edgekit.runtime.tensorrt.speed import SpeedRequest

    request = BuildRequest(precision=precision, calib=calib, dla_core=dla_core, gpu_fallback=allow_gpu_fallback,
                           batch=batch)
    speed = SpeedRequest(fast_build=fast_build, tactic_heuristic=tactic_heuristic,
                         optimization_level=optimization_level, avg_timing_iterations=avg_timing_iterations)
    gate = gate_request(accuracy_data, accuracy_split, accuracy_images, max_map_drop)
    prepared = prepare(onnx_path, request, workspace=workspace, tactic_sources=tactic_sources,
                       calib_batches=calib_batches, fast_build=fast_build)  # bad input fails here, before TensorRT
    check_gate(prepared, gate)
    require_tensorrt(building=True)
    from edgekit.runtime.tensorrt.builder import build_engine

    if if_changed:
        from edgekit.runtime.tensorrt.builder import device_facts
        from edgekit.runtime.tensorrt.engine_file import find_current_engine

        current = find_current_engine(out, prepared.onnx_manifest["sha256"], precision, device_facts(gpu), dla_core)
        reason = why_rebuild(current, gate) if current is not None else None
        if current is not None and reason is None:
            click.echo("up to date: %s" % current, err=True)
            click.echo(str(current))
            return
        if reason:
            click.echo("%s is current but %s: building it again with the gate" % (current, reason), err=True)
    command = rebuild_command(onnx_path, precision, calib, calib_batches, dla_core, allow_gpu_fallback, batch,
                              workspace, tactic_sources, speed, gate)
    options = dict(out=out, name=name, timing_cache=timing_cache, calib_cache=calib_cache, gpu=gpu, verbose=verbose,
                   command=command, speed=speed)
    if gate is None:
        click.echo(str(build_engine(prepared, request, **options)))
    else:
        click.echo(str(build_gated(prepared, request, gate, build=build_engine, **options)))


@click.command("inspect")
@click.argument("path", metavar="ENGINE|ONNX")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--layers/--no-layers", default=True, help="Per-layer precisions (engines, needs TensorRT + GPU).")
def inspect_cmd(path, as_json, layers):
    """Show a model's manifest, I/O tensors, Q/DQ nodes, and an engine's layer precisions."""
    import json as json_mod

    from edgekit.log import out
    from edgekit.runtime.tensorrt.inspect import inspect_model, inspect_rows

    doc = inspect_model(path, layers=layers)
    if as_json:
        click.echo(json_mod.dumps(doc, indent=2, default=str))
        return
    out.print(inspect_rows(doc))


COMMANDS = [build_cmd, inspect_cmd]
