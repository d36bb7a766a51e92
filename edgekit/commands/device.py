"""Device commands (Jetson or any PC, no torch): bench, camera, info, eval, compare, report."""

from __future__ import annotations

import click

from edgekit.commands.serve import BenchCommand
from edgekit.errors import EdgekitError
from edgekit.options import (
    FRAME_RATE,
    FRAME_SIZE,
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    PORT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    UNIT_INTERVAL,
    backend_options,
    class_names,
    count_lines,
    count_zones,
    output_options,
    png_path,
    power_options,
    save_results,
    source_options,
)
from edgekit.outputs import Writes, writable_file, writable_recording


@click.command(cls=BenchCommand)
@click.argument("models", nargs=-1, required=True)
@backend_options
@click.option("--warmup", type=NON_NEGATIVE_INT, default=10, show_default=True, help="Untimed iterations first.")
@click.option("--iterations", type=POSITIVE_INT, default=100, show_default=True, help="Timed iterations.")
@click.option("--duration", type=POSITIVE_FLOAT, default=None,
              help="Run for this many seconds instead of --iterations.")
@click.option("--batch", type=POSITIVE_INT, default=None, help="Frames per inference  [default: the model's batch]")
@click.option("--source", default=None, help="Image, image folder, video or synthetic://?width=W&height=H to feed  "
              "[default: synthetic 1280x720 frames; a --graph-letterbox model: its frame size]")
@click.option("--cuda-graph", is_flag=True, help="TensorRT: replay inference as a CUDA graph (static shapes).")
@power_options
@output_options
def bench(models, backend, threads, warmup, iterations, duration, batch, source, cuda_graph, power, power_interval,
          idle, json_path, csv_path, no_save):
    """Measure models end to end: preprocess, inference, postprocess/NMS; ONNX and engines side by side (device).

    edgekit bench http://BOX:8080 [--concurrency 1,4,16,64] benches a running edgekit serve instead
    (edgekit bench http://BOX:8080 --help for its options).
    """
    run_bench(models, backend, threads, warmup, iterations, duration, batch, source, json_path, csv_path, no_save,
              cuda_graph=cuda_graph, power=power, power_interval=power_interval, idle=idle)


def run_bench(models, backend="auto", threads=None, warmup=10, iterations=100, duration=None, batch=None,
              source=None, json_path=None, csv_path=None, no_save=False, cuda_graph=False, power=True,
              power_interval=100, idle=0.0):
    from edgekit.bench import BenchConfig, bench_models, report
    from edgekit.bench.interrupt import BenchStopped, signal_of, sigterm_interrupts, stopped_line
    from edgekit.log import out
    from edgekit.runtime.threads import default_threads

    config = BenchConfig(backend=backend, warmup=warmup, iterations=iterations, duration=duration, batch=batch,
                         source=source, threads=threads or default_threads(), cuda_graph=cuda_graph, power=power,
                         power_interval=power_interval, idle=idle)
    stopped = None
    try:
        with sigterm_interrupts():
            results = bench_models(models, config)
    except BenchStopped as exc:  # Ctrl-C/SIGTERM: show and save what finished, then exit 128 + signal
        stopped, results = exc, exc.results
    except KeyboardInterrupt as exc:  # before the first model opened (loading frames)
        stopped, results = BenchStopped([], signal_of(exc)), []
    if results:
        out.print(report.results_table(results))
        save_results(report.result_document("bench", results), json_path, report.to_csv(results), csv_path,
                     no_save, report.default_result_path("bench"))
    if stopped is not None:
        part = [r for r in results if r.get("interrupted")]
        click.echo(stopped_line(stopped.signum, "%d of %d models measured in full%s" % (
            len(results) - len(part), len(models), "".join(", %s stopped after %d iterations" % (
                r["name"], r["iterations"]) for r in part)), bool(results)), err=True)
        raise SystemExit(stopped.exit_code)
    return results


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--model", required=True, help="TensorRT engine or ONNX model.")
@backend_options
@source_options
@click.option("--conf", type=UNIT_INTERVAL, default=0.25, show_default=True, help="Confidence threshold.")
@click.option("--iou", type=UNIT_INTERVAL, default=0.7, show_default=True, help="NMS IoU threshold.")
@click.option("--display/--headless", default=None,
              help="Show a window  [default: when a display exists]; --headless never opens one.")
@click.option("--record", type=click.Path(dir_okay=False), default=None, callback=writable_recording,
              help="Record the annotated video (.mp4/.avi).")
@click.option("--serve", type=PORT, default=None,
              help="Serve the live stream and numbers on this port (web page at http://HOST:PORT/).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address for --serve; 0.0.0.0 lets other machines watch (anyone on the network).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), default=None, callback=writable_file,
              help="One JSON line per frame.")
@click.option("--duration", type=POSITIVE_FLOAT, default=None, help="Stop after this many seconds.")
@click.option("--frames", type=click.IntRange(min=1), default=None,
              help="Stop after this many frames (several sources: batches).")
@click.option("--pipeline/--no-pipeline", default=True, show_default=True,
              help="Overlap capture, inference and drawing in threads, or run the stages one after another.")
@click.option("--engine-iters", type=click.IntRange(min=0), default=30, show_default=True,
              help="Inference-only runs before the loop, for loop FPS / engine FPS (0: skip).")
@click.option("--capture-timeout", type=POSITIVE_FLOAT, default=2.0, show_default=True,
              help="Seconds without a frame before a stall is reported.")
@click.option("--max-retries", type=NON_NEGATIVE_INT, default=10, show_default=True,
              help="Reopen a failing source this many times in a row (backoff 0.5 s doubling to 8 s), then give it "
              "up (with several sources the others go on).")
@click.option("--batch-timeout", type=POSITIVE_FLOAT, default=None, metavar="MS",
              help="Several sources: push a batch this many ms after its first frame even without a frame from "
              "every source  [default: one frame period of the fastest source]")
@click.option("--track", is_flag=True, help="Track objects (ByteTrack): ids drawn, logged and served.")
@click.option("--track-classes", default=None, metavar="NAME,NAME", callback=class_names,
              help="Track (and count) only these classes of the model.")
@click.option("--count-line", multiple=True, metavar="X1,Y1,X2,Y2", callback=count_lines,
              help="Count tracked objects crossing this line, per class and direction (pixels of the frame); "
              "once for every source or once per source.")
@click.option("--count-zone", multiple=True, metavar="X1,Y1,X2,Y2,X3,Y3,...", callback=count_zones,
              help="Count tracked objects inside this polygon and those that entered it; once for every source or "
              "once per source.")
@power_options
@output_options
def camera(sources, model, backend, threads, width, height, fps, flip, codec, latency, loop, realtime, conf, iou,
           display, record, serve, host, log_path, duration, frames, pipeline, engine_iters, capture_timeout,
           max_retries, batch_timeout, track, track_classes, count_line, count_zone, power, power_interval, idle,
           json_path, csv_path, no_save):
    """Live detection on cameras, streams, files or synthetic:// sources, timed per stage (device).

    Several sources run through one engine, one batch of a frame from each (edgekit camera SRC1 SRC2 ...).
    """
    from edgekit.camera.analytics import AnalyticsConfig
    from edgekit.camera.session import CameraRequest, camera_session
    from edgekit.runtime.loader import model_argument

    model = model_argument(model)  # HOME/store/current: the run it names now
    if len(sources) > 1:
        from edgekit.camera.multi_session import check_sources

        check_sources(list(sources))  # the same source twice: refused before anything opens
    analytics = AnalyticsConfig(track=track or bool(count_line or count_zone), track_classes=track_classes,
                                lines=count_line, zones=count_zone)
    problem = analytics.check(len(sources))
    if problem:
        raise EdgekitError(problem)
    request = CameraRequest(
        source=sources[0], sources=list(sources), analytics=analytics,
        mux_timeout=batch_timeout / 1e3 if batch_timeout else None, model=model, backend=backend, threads=threads,
        options=dict(width=width, height=height, fps=fps, flip=flip, codec=codec, latency=latency, loop=loop,
                     realtime=realtime),
        conf=conf, iou=iou, display=display, record=record, serve=serve, host=host, log=log_path,
        duration=duration, frames=frames, pipeline=pipeline, engine_iters=engine_iters,
        capture_timeout=capture_timeout, max_retries=max_retries, power=power, power_interval=power_interval,
        idle=idle)
    from edgekit.bench.report import default_result_path, result_document
    from edgekit.camera import report
    from edgekit.log import out

    summary = camera_session(request)
    out.print(report.summary_table(summary))
    if summary.get("streams"):
        out.print(report.streams_table(summary))
    out.print(report.summary_lines(summary))
    writes = Writes()
    save_results(result_document("camera", [summary]), json_path, report.to_csv(summary), csv_path, no_save,
                 default_result_path("camera"), writes=writes)
    records = summary.get("record") or []
    for record in records if isinstance(records, list) else [records]:
        if record["written"] or not record["failed"]:  # a failure was warned about as it happened
            click.echo(("%s" if record["written"] else "warning: %s") % record["line"], err=True)
    writes.failed.extend(summary.get("output_failures") or [])  # a frame log or recording cut short
    writes.finish()
    if summary.get("source_failed"):
        raise EdgekitError(summary["source_failed"])
    if not summary.get("frames") and summary.get("stopped_by") == "end of source":
        raise EdgekitError("%s gave no usable frame (%d bad): nothing was measured"
                           % (summary.get("source"), summary.get("bad_frames", 0)))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table (with --watch: one line each).")
@click.option("--watch", is_flag=True, help="Live power rails, temperatures, clocks and throttling, like a small jtop.")
@click.option("--interval", type=click.IntRange(10, 60000), default=1000, show_default=True,
              help="--watch refresh interval in ms.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="--watch: stop after this many refreshes.")
def info(as_json, watch, interval, count):
    """What this box is: Jetson model, L4T/JetPack, TensorRT, CUDA, cuDNN, OpenCV, power mode, clocks, DLA."""
    import json as json_mod

    from rich.table import Table

    from edgekit.boxinfo import box_info, info_rows
    from edgekit.log import out

    if watch:
        from edgekit.power.live import watch as watch_box

        watch_box(interval_ms=interval, count=count, as_json=as_json)
        return
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




@click.command("eval")
@click.argument("model")
@click.option("--data", required=True, help="data.yaml (YOLO format) or a COCO annotations json.")
@click.option("--images", default=None, help="Image folder, for a COCO json.")
@click.option("--split", default="val", show_default=True, help="data.yaml split to evaluate.")
@backend_options
@click.option("--conf", type=UNIT_INTERVAL, default=0.001, show_default=True)
@click.option("--iou", type=UNIT_INTERVAL, default=0.7, show_default=True)
@click.option("--max-det", type=click.IntRange(min=1), default=None,
              help="Detections per image  [default: 300, or an end-to-end model's K when it returns fewer]")
@output_options
def eval_cmd(model, data, images, split, backend, threads, conf, iou, max_det, json_path, csv_path, no_save):
    """mAP50-95, mAP50, precision, recall of a model on a dataset, as ultralytics val computes them, overall, per
    class and by object size (COCO's small/medium/large) (device)."""
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


@click.command()
@click.argument("model_a")
@click.argument("model_b")
@click.option("--data", default=None, help="Compare on this dataset's images (data.yaml or COCO json + --images).")
@click.option("--images", default=None, help="Image folder, for a COCO json.")
@click.option("--source", default=None,
              help="Or: an image, image folder, video or synthetic://?width=W&height=H  [default: synthetic frames]")
@click.option("--frames", "max_frames", type=click.IntRange(min=1), default=None,
              help="Frames to compare  [default: 50; 8 synthetic frames]")
@backend_options
@click.option("--conf", type=UNIT_INTERVAL, default=0.25, show_default=True)
@click.option("--iou", type=UNIT_INTERVAL, default=0.7, show_default=True)
@click.option("--match-iou", type=UNIT_INTERVAL, default=0.5, show_default=True, help="IoU for two boxes to match.")
@click.option("--accuracy/--no-accuracy", default=True, show_default=True,
              help="With --data: also evaluate both models on its whole val split (mAP, recall, by object size).")
@output_options
def compare(model_a, model_b, data, images, source, max_frames, backend, threads, conf, iou, match_iou, accuracy,
            json_path, csv_path, no_save):
    """Output agreement of two models on the same frames: ONNX vs engine, FP16 vs INT8, baseline vs pruned;
    with --data, also both models' accuracy on the dataset and B's change."""
    from edgekit.bench.report import default_result_path, result_document
    from edgekit.eval import report as eval_report
    from edgekit.eval.compare import accuracy as compare_accuracy
    from edgekit.eval.compare import compare as do_compare
    from edgekit.eval.dataset import load_dataset
    from edgekit.eval.report import load_frames_for
    from edgekit.log import out
    from edgekit.runtime import open_runner

    if data and source:
        raise EdgekitError("--data and --source are two different sets of frames: give one")
    frames = load_frames_for(data, images, source, max_frames)
    with open_runner(model_a, backend, threads=threads) as a, open_runner(model_b, backend, threads=threads) as b:
        result = do_compare(a, b, frames, conf=conf, iou=iou, match_iou=match_iou)
        # null in the JSON when not measured (no --data, or --no-accuracy)
        result["accuracy"] = compare_accuracy(a, b, load_dataset(data, images=images)) if data and accuracy else None
    out.print(eval_report.compare_table(result))
    if result.get("accuracy"):
        out.print(eval_report.accuracy_table(result))
    save_results(result_document("compare", [result]), json_path, eval_report.compare_csv(result), csv_path, no_save,
                 default_result_path("compare", "%s-vs-%s" % (a.path.stem, b.path.stem)))


@click.command()
@click.argument("paths", nargs=-1)
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), default=None, callback=writable_file,
              help="Write Markdown here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, callback=png_path,
              help="Write the accuracy vs latency plot (PNG) here.")
@click.option("--baseline", default=None, metavar="NAME",
              help="Compare every row's mAP with this model (a name or file as the report shows it)  [default: each "
              "row with the model it was made from]")
def report(paths, md_path, plot_path, baseline):
    """Join bench and eval results (default: benchmarks/) into one table per device, Markdown and a plot."""
    from edgekit.log import out
    from edgekit.manifest import write_text_atomic
    from edgekit.report import join_results, load_documents
    from edgekit.report.render import markdown, plot, plot_problem, tables

    joined = join_results(load_documents(paths or ["benchmarks"]), baseline=baseline)
    if not joined:
        raise EdgekitError("no bench or eval results in %s: run edgekit bench / edgekit eval first"
                           % ", ".join(paths or ["benchmarks"]))
    if plot_path and plot_problem(joined):  # refused before anything is printed or written
        raise EdgekitError("--plot %s: %s" % (plot_path, plot_problem(joined)))
    for table in tables(joined):
        out.print(table)
    writes = Writes()
    if md_path:
        writes.attempt(md_path, lambda: write_text_atomic(md_path, markdown(joined)))
    if plot_path:
        writes.attempt(plot_path, lambda: plot(joined, plot_path))
    writes.finish()


@click.command()
@click.argument("model")
@backend_options
@click.option("--width", type=FRAME_SIZE, default=1920, show_default=True, help="Frame width of each stream.")
@click.option("--height", type=FRAME_SIZE, default=1080, show_default=True, help="Frame height of each stream.")
@click.option("--fps", type=FRAME_RATE, default=30.0, show_default=True, help="Frame rate of each stream.")
@click.option("--source", "sources", multiple=True, metavar="URI",
              help="A file played at its own rate K times over, or (repeated) the cameras to use, K up to their "
              "number  [default: synthetic streams of --width x --height at --fps, each its own scene]")
@click.option("--max-streams", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Stop raising K here (a static batch-B model stops at B).")
@click.option("--seconds", type=POSITIVE_FLOAT, default=10.0, show_default=True, help="Measured seconds per K.")
@click.option("--warmup", type=NON_NEGATIVE_FLOAT, default=2.0, show_default=True,
              help="Seconds per K before measuring (not counted).")
@click.option("--max-latency", type=POSITIVE_FLOAT, default=200.0, show_default=True, metavar="MS",
              help="A stream whose p99 end-to-end latency passes this is not held.")
@click.option("--batch-timeout", type=POSITIVE_FLOAT, default=None, metavar="MS",
              help="Push a batch this many ms after its first frame  [default: one frame period]")
@click.option("--conf", type=UNIT_INTERVAL, default=0.25, show_default=True, help="Confidence threshold.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, callback=png_path,
              help="Write per-stream FPS and p99 latency against K (PNG) here.")
@output_options
def streams(model, backend, threads, width, height, fps, sources, max_streams, seconds, warmup, max_latency,
            batch_timeout, conf, plot_path, json_path, csv_path, no_save):
    """How many streams this box holds: K sources through the camera's multi-source loop, K raised until a stream
    falls below 95% of its rate or its p99 end-to-end latency passes --max-latency (device)."""
    from edgekit.bench.report import default_result_path, result_document
    from edgekit.camera import capacity, capacity_report
    from edgekit.log import out
    from edgekit.runtime import open_runner

    config = capacity.CapacityConfig(width=width, height=height, fps=fps, sources=list(sources),
                                     max_streams=max_streams, seconds=seconds, warmup=warmup, max_p99_ms=max_latency,
                                     conf=conf, mux_timeout=batch_timeout / 1e3 if batch_timeout else None)
    capacity.check_config(config)
    if plot_path:
        from edgekit.lazy import lazy_import

        lazy_import("matplotlib")  # before the slow part
    with open_runner(model, backend, threads=threads) as runner:  # what the model is; each step opens its own
        about = dict(model=str(runner.path), model_name=runner.path.stem, backend=runner.backend,
                     device=runner.device, precision=(runner.info.get("precision") if runner.info else None) or "fp32",
                     batch=runner.static_batch or "dynamic")
        static = runner.static_batch
    result = capacity.find_capacity(capacity.RunnerRequest(model, backend, threads), static, config)
    result.update(about, width=width, height=height, fps=fps, max_p99_ms=max_latency, seconds=seconds,
                  warmup=warmup, sources=list(sources) or "synthetic")
    result["headline"] = capacity.headline(result)
    out.print(capacity_report.steps_table(result))
    click.echo(result["headline"])
    writes = Writes()
    save_results(result_document("streams", [result]), json_path, capacity_report.to_csv(result), csv_path, no_save,
                 default_result_path("streams", result["model_name"]), writes=writes)
    if plot_path and result["steps"]:
        writes.attempt(plot_path, lambda: capacity_report.plot(result, plot_path))
    writes.finish()
    if result.get("signal"):  # Ctrl-C/SIGTERM: what finished was shown and saved
        from edgekit.bench.interrupt import exit_code

        raise SystemExit(exit_code(result["signal"]))
    if result.get("error"):
        raise EdgekitError("%s (the steps before it were shown and saved)" % result["error"])


COMMANDS = [bench, camera, streams, info, eval_cmd, compare, report]
