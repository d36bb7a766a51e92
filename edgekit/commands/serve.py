"""edgekit serve (the model behind HTTP on the box) and the remote bench (``edgekit bench http://box:8080``)."""

from __future__ import annotations

import os

import click

from edgekit.options import FloatRange, backend_options, output_options, png_path, save_results
from edgekit.outputs import Writes


@click.command()
@click.argument("model")
@backend_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 serves the network (needs --token, or --no-token).")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--token", default=None, help="Require Authorization: Bearer TOKEN on every route but /healthz and "
                                           "/readyz  [default: $EDGEKIT_TOKEN; none on loopback only]")
@click.option("--no-token", is_flag=True,
              help="Serve a non-loopback --host without a token, on purpose (anyone who reaches it can use it).")
@click.option("--max-batch", type=click.IntRange(min=1), default=None,
              help="Dynamic batching: requests per inference call  [default: the model's batch]")
@click.option("--max-queue-delay-ms", type=FloatRange(min=0), default=0.0, show_default=True,
              help="Wait this long for a batch to fill (0: batch only what is already waiting).")
@click.option("--max-queue", type=click.IntRange(min=1), default=64, show_default=True,
              help="Requests admitted at once; more are answered 503 with Retry-After.")
@click.option("--timeout", type=FloatRange(min=0.01), default=10.0, show_default=True,
              help="Seconds until a request is answered 504.")
@click.option("--max-body-mb", type=FloatRange(min=0.001), default=20.0, show_default=True,
              help="Largest request body (413 above).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=40_000_000, show_default=True,
              help="Largest decoded image, width x height, read from its header (413 above).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Decode/letterbox/NMS threads  [default: CPU cores, at most 4]")
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True,
              help="Inference runs before /readyz turns 200.")
@click.option("--drain-timeout", type=FloatRange(min=0), default=30.0, show_default=True,
              help="On SIGTERM, seconds to finish the requests in flight.")
@click.option("--cuda-graph", is_flag=True, help="TensorRT: replay inference as a CUDA graph (static shapes).")
@click.option("--access-log", is_flag=True, help="Log one line per request (uvicorn's access log).")
@click.option("--model-id", default=None, callback=lambda ctx, p, v: _model_id(v), metavar="ID",
              help="Roboflow clients' model_id this model answers to, besides its name (e.g. shapes/3: the hosted "
                   "API's project/version).")
def serve(model, backend, threads, host, port, token, no_token, max_batch, max_queue_delay_ms, max_queue, timeout,
          max_body_mb, max_pixels, workers, warmup, drain_timeout, cuda_graph, access_log, model_id):
    """Serve MODEL over HTTP: POST /v1/detect, /healthz, /readyz, /v1/info, /metrics (device)."""
    from edgekit.runtime.loader import model_argument
    from edgekit.serve.app import ServeConfig
    from edgekit.serve.server import serve as run_server

    run_server(ServeConfig(
        model=model_argument(model), backend=backend, threads=threads, host=host, port=port, token=token,
        no_token=no_token,
        max_batch=max_batch, max_queue_delay_ms=max_queue_delay_ms, max_queue=max_queue, timeout=timeout,
        max_body_mb=max_body_mb, max_pixels=max_pixels, workers=workers or min(4, os.cpu_count() or 1),
        warmup=warmup, drain_timeout=drain_timeout, cuda_graph=cuda_graph, access_log=access_log, model_id=model_id))


def _model_id(value):
    import re

    if value is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)?$", value):
        raise click.BadParameter("%r: give a name or project/version of letters, digits, '.', '_' or '-' (e.g. "
                                 "shapes/3)" % value)
    if value is not None and "/" in value and value.split("/")[0].lower() in RESERVED_PREFIXES:
        raise click.BadParameter("%r: %s/... is a route of this server; give another project name (e.g. shapes/3)"
                                 % (value, value.split("/")[0]))
    return value


# first path segments of the server's fixed routes: a project/version id there would be shadowed by them
RESERVED_PREFIXES = ("v1", "model", "infer", "workflows", "healthz", "readyz", "metrics", "info")


def error_rate(ctx, param, value):
    from edgekit.serve.remote_target import parse_error_rate

    try:
        return parse_error_rate(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("bench")
@click.argument("url")
@click.option("--concurrency", default="1,4,16,64", show_default=True, callback=lambda ctx, p, v: _steps(v),
              help="Closed loop: frames in flight per step, comma-separated (e.g. 1,4,16,64,100).")
@click.option("--rate", type=FloatRange(min=0.001, min_open=False), default=None,
              help="Open loop instead: send this many requests per second (latency from the scheduled send).")
@click.option("--arrivals", type=click.Choice(["constant", "poisson"]), default="constant", show_default=True,
              help="Open loop: evenly spaced or Poisson arrivals.")
@click.option("--requests", "n_requests", type=click.IntRange(min=1), default=200, show_default=True,
              help="Timed requests per step.")
@click.option("--duration", type=FloatRange(min=0.1), default=None,
              help="Seconds per step instead of --requests.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed requests first.")
@click.option("--source", default=None, help="Image, folder or video to send  [default: synthetic 1280x720 frames]")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=90, show_default=True)
@click.option("--token", default=None, help="Bearer token  [default: $EDGEKIT_TOKEN]")
@click.option("--conf", type=FloatRange(0, 1), default=0.25, show_default=True)
@click.option("--iou", type=FloatRange(0, 1), default=0.7, show_default=True)
@click.option("--timeout", "request_timeout", type=FloatRange(min=0.1), default=30.0, show_default=True,
              help="Client timeout per request, seconds.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, callback=png_path,
              help="Write throughput and p99 against frames in flight (PNG) here.")
@click.option("--max-error-rate", default="0.05", show_default=True, callback=error_rate,
              help="A step with more failed requests (non-200 answers, no answer) fails the run (exit 2, after the "
                   "table and results): a fraction (0.05) or a percent (5%).")
@output_options
def remote_bench(url, concurrency, rate, arrivals, n_requests, duration, warmup, source, jpeg_quality, token, conf,
                 iou, request_timeout, plot_path, max_error_rate, json_path, csv_path, no_save):
    """Bench a running edgekit serve as an application sees it: edgekit bench http://BOX:8080 (closed or open loop)."""
    from edgekit.bench import interrupt
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
                            timeout=request_timeout, max_error_rate=max_error_rate)
    try:
        document = client.run_remote_bench(plan)
    except KeyboardInterrupt as exc:  # before the first step (waiting for the server, encoding frames)
        signum = interrupt.signal_of(exc)
        click.echo(interrupt.stopped_line(signum, "no step started", False), err=True)
        raise SystemExit(interrupt.exit_code(signum)) from None
    signum = document.get("stopped_by_signal")
    writes = Writes()
    if document["steps"] or signum is None:
        out.print(remote_report.steps_table(document))
        save_results(document, json_path, remote_report.to_csv(document), csv_path, no_save,
                     default_result_path("remote-bench"), writes=writes)
        if plot_path:
            writes.attempt(plot_path, lambda: remote_report.plot(document, plot_path))
    if signum is None:
        writes.finish()  # a file the disk refused is named before the steps' own verdict
    else:  # Ctrl-C/SIGTERM: the finished steps and the partial one are shown and saved
        done = sum(not s.get("interrupted") for s in document["steps"])
        click.echo(interrupt.stopped_line(signum, "%d of %d steps finished" % (
            done, len(steps) or 1), bool(document["steps"])), err=True)
        raise SystemExit(interrupt.exit_code(signum))
    failed = remote_report.failure_line(document)
    if failed:
        raise EdgekitError(failed)


def _steps(text: str) -> str:
    """--concurrency checked when the command line is parsed (the command parses it again into its steps)."""
    from edgekit.errors import EdgekitError

    try:
        parse_concurrency(text)
    except EdgekitError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1].replace("give", "%r: give" % text, 1)) from None
    return text


def parse_concurrency(text: str):
    from edgekit.errors import EdgekitError

    try:
        steps = [int(v) for v in text.replace(" ", "").split(",")]  # an empty item ("1,,4") is an error too
    except ValueError:
        steps = []
    if not steps or any(s < 1 or s > 10000 for s in steps):
        raise EdgekitError("--concurrency %r: give frames in flight as integers 1..10000, e.g. 1,4,16,64" % text)
    return steps


def is_url(args, value_options=("--source",)) -> bool:
    """A server URL among the arguments (not an option's value, e.g. --source naming local frames). Any other
    ``scheme://`` argument is one line naming what bench takes."""
    import re

    from edgekit.errors import EdgekitError

    args = [str(a) for a in args]
    for i, a in enumerate(args):
        if i and args[i - 1] in value_options:
            continue
        if re.match(r"(?i)https?:/?[^/]", a):  # http:/box:8080 or http:box:8080: a URL with a slash lost
            raise EdgekitError("%s: give the server as http://HOST:PORT (two slashes)" % a)
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", a)
        if scheme is None:
            if re.match(r"^[\w.-]+:\d+/?$", a) and not os.path.exists(a):  # box:8080 without http://
                raise EdgekitError("%s: to bench a running edgekit serve, give it as http://%s" % (a, a.rstrip("/")))
            continue
        if scheme.group(1).lower() in ("http", "https"):
            return True
        raise EdgekitError("%s: bench takes model files (.onnx, .engine) or a running edgekit serve as "
                           "http://HOST:PORT or https://HOST:PORT, not %s://" % (a, scheme.group(1)))
    return False


def value_options(*commands) -> set:
    """Option names that take a value, in any of ``commands`` (their values are not models or URLs)."""
    return {name for command in commands for p in command.params if isinstance(p, click.Option) and not p.is_flag
            and not p.count for name in p.opts + p.secondary_opts}


class BenchCommand(click.Command):
    """``edgekit bench``: models are benched here; a URL (http://box:8080) hands the arguments to the remote bench."""

    def make_context(self, info_name, args, parent=None, **extra):
        if is_url(args, value_options(self, remote_bench)):
            return remote_bench.make_context(info_name, args, parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)


COMMANDS = [serve]
