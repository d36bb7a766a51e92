"""edgekit serve (the model behind HTTP on the box) and the remote bench (``edgekit bench http://box:8080``)."""

from __future__ import annotations

import os

import click

from edgekit.options import backend_options, output_options, png_path, save_results


@click.command()
@click.argument("model")
@backend_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 serves the network (set --token then).")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--token", default=None, help="Require Authorization: Bearer TOKEN on every route but /healthz and "
                                           "/readyz  [default: $EDGEKIT_TOKEN, else off]")
@click.option("--max-batch", type=click.IntRange(min=1), default=None,
              help="Dynamic batching: requests per inference call  [default: the model's batch]")
@click.option("--max-queue-delay-ms", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Wait this long for a batch to fill (0: batch only what is already waiting).")
@click.option("--max-queue", type=click.IntRange(min=1), default=64, show_default=True,
              help="Requests admitted at once; more are answered 503 with Retry-After.")
@click.option("--timeout", type=click.FloatRange(min=0.01), default=10.0, show_default=True,
              help="Seconds until a request is answered 504.")
@click.option("--max-body-mb", type=click.FloatRange(min=0.001), default=20.0, show_default=True,
              help="Largest request body (413 above).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=40_000_000, show_default=True,
              help="Largest decoded image, width x height, read from its header (413 above).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Decode/letterbox/NMS threads  [default: CPU cores, at most 4]")
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True,
              help="Inference runs before /readyz turns 200.")
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="On SIGTERM, seconds to finish the requests in flight.")
@click.option("--cuda-graph", is_flag=True, help="TensorRT: replay inference as a CUDA graph (static shapes).")
@click.option("--access-log", is_flag=True, help="Log one line per request (uvicorn's access log).")
def serve(model, backend, threads, host, port, token, max_batch, max_queue_delay_ms, max_queue, timeout,
          max_body_mb, max_pixels, workers, warmup, drain_timeout, cuda_graph, access_log):
    """Serve MODEL over HTTP: POST /v1/detect, /healthz, /readyz, /v1/info, /metrics (device)."""
    from edgekit.serve.app import ServeConfig
    from edgekit.serve.server import serve as run_server
    from edgekit.serve.server import token_from_env

    run_server(ServeConfig(
        model=model, backend=backend, threads=threads, host=host, port=port, token=token_from_env(token),
        max_batch=max_batch, max_queue_delay_ms=max_queue_delay_ms, max_queue=max_queue, timeout=timeout,
        max_body_mb=max_body_mb, max_pixels=max_pixels, workers=workers or min(4, os.cpu_count() or 1),
        warmup=warmup, drain_timeout=drain_timeout, cuda_graph=cuda_graph, access_log=access_log))


@click.command("bench")
@click.argument("url")
@click.option("--concurrency", default="1,4,16,64", show_default=True,
              help="Closed loop: frames in flight per step, comma-separated (e.g. 1,4,16,64,100).")
@click.option("--rate", type=click.FloatRange(min=0.001, min_open=False), default=None,
              help="Open loop instead: send this many requests per second (latency from the scheduled send).")
@click.option("--arrivals", type=click.Choice(["constant", "poisson"]), default="constant", show_default=True,
              help="Open loop: evenly spaced or Poisson arrivals.")
@click.option("--requests", "n_requests", type=click.IntRange(min=1), default=200, show_default=True,
              help="Timed requests per step.")
@click.option("--duration", type=click.FloatRange(min=0.1), default=None,
              help="Seconds per step instead of --requests.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed requests first.")
@click.option("--source", default=None, help="Image, folder or video to send  [default: synthetic 1280x720 frames]")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=90, show_default=True)
@click.option("--token", default=None, help="Bearer token  [default: $EDGEKIT_TOKEN]")
@click.option("--conf", type=click.FloatRange(0, 1), default=0.25, show_default=True)
@click.option("--iou", type=click.FloatRange(0, 1), default=0.7, show_default=True)
@click.option("--timeout", "request_timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Client timeout per request, seconds.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, callback=png_path,
              help="Write throughput and p99 against frames in flight (PNG) here.")
@output_options
def remote_bench(url, concurrency, rate, arrivals, n_requests, duration, warmup, source, jpeg_quality, token, conf,
                 iou, request_timeout, plot_path, json_path, csv_path, no_save):
    """Bench a running edgekit serve as an application sees it: edgekit bench http://BOX:8080 (closed or open loop)."""
    from edgekit.bench.report import default_result_path
    from edgekit.errors import EdgekitError
    from edgekit.log import out
    from edgekit.serve import client, remote_report

    source_of = click.get_current_context().get_parameter_source
    if rate is not None and source_of("concurrency") != click.core.ParameterSource.DEFAULT:
        raise EdgekitError("--rate (open loop) and --concurrency (closed loop) are two different benches: give one")
    steps = parse_concurrency(concurrency) if rate is None else []
    plan = client.BenchPlan(url=url, concurrency=steps, rate=rate, arrivals=arrivals, requests=n_requests,
                            duration=duration, warmup=warmup, source=source, jpeg_quality=jpeg_quality,
                            token=token or os.environ.get("EDGEKIT_TOKEN"), conf=conf, iou=iou,
                            timeout=request_timeout)
    document = client.run_remote_bench(plan)
    out.print(remote_report.steps_table(document))
    save_results(document, json_path, remote_report.to_csv(document), csv_path, no_save,
                 default_result_path("remote-bench"))
    if plot_path:
        click.echo("wrote %s" % remote_report.plot(document, plot_path), err=True)
    failed = remote_report.failure_line(document)
    if failed:
        raise EdgekitError(failed)


def parse_concurrency(text: str):
    from edgekit.errors import EdgekitError

    try:
        steps = [int(v) for v in text.replace(" ", "").split(",")]  # an empty item ("1,,4") is an error too
    except ValueError:
        steps = []
    if not steps or any(s < 1 or s > 10000 for s in steps):
        raise EdgekitError("--concurrency %r: give frames in flight as integers 1..10000, e.g. 1,4,16,64" % text)
    return steps


def is_url(args) -> bool:
    """A server URL among the arguments (not the value of --source, which names local frames)."""
    args = [str(a) for a in args]
    return any(a.startswith(("http://", "https://")) and (i == 0 or args[i - 1] != "--source")
               for i, a in enumerate(args))


class BenchCommand(click.Command):
    """``edgekit bench``: models are benched here; a URL (http://box:8080) hands the arguments to the remote bench."""

    def make_context(self, info_name, args, parent=None, **extra):
        if is_url(args):
            return remote_bench.make_context(info_name, args, parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)


COMMANDS = [serve]
