"""The remote bench: an asyncio HTTP client (httpx) that measures a running ``edgekit serve`` as an
application sees it, in closed loop (N frames in flight) or open loop (a fixed arrival rate).

Per request, on the client: connect, upload, wait (time to first byte), download, JSON decode and the whole
latency; from the server's ``timings_ms``: decode, queue, preprocess, inference, postprocess, total; and
**overhead = wait - server total** (network, HTTP and the server's event loop). Open loop measures latency from
the *scheduled* send time, so a server that falls behind shows its queueing (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import socket
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional
from urllib.parse import urlparse

from edgekit.bench.stats import summarize
from edgekit.lazy import lazy_import
from edgekit.log import info, progress_bar
from edgekit.serve.remote_target import check_server_url, fetch_server_info

CLIENT_STAGES = ("connect", "upload", "wait", "download", "json")
SERVER_STAGES = ("decode", "queue", "preprocess", "inference", "h2d", "compute", "d2h", "postprocess", "total")


@dataclass
class BenchPlan:
    url: str
    concurrency: List[int] = field(default_factory=lambda: [1, 4, 16, 64])
    rate: Optional[float] = None  # open loop: requests per second
    arrivals: str = "constant"  # or "poisson"
    requests: int = 200
    duration: Optional[float] = None
    warmup: int = 10
    source: Optional[str] = None
    jpeg_quality: int = 90
    token: Optional[str] = None
    conf: float = 0.25
    iou: float = 0.7
    timeout: float = 30.0
    seed: int = 0
    max_error_rate: float = 0.05  # a step with more failed requests (non-200 or no answer) fails the run


def destination(url: str) -> str:
    """"served over loopback" when the host is this machine's loopback, else "served over the network"."""
    host = urlparse(url).hostname or ""
    try:
        addresses = {info_[4][0] for info_ in socket.getaddrinfo(host, None)}
    except OSError:
        return "served over the network"
    loop = addresses and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
    return "served over loopback" if loop else "served over the network"


class Sample:
    __slots__ = ("status", "latency", "client", "server", "error")

    def __init__(self) -> None:
        self.status = "?"
        self.latency = 0.0
        self.client: Dict[str, float] = {}
        self.server: Dict[str, float] = {}
        self.error = ""


async def one_request(client, url: str, body: bytes, headers, scheduled: float) -> Sample:
    """POST one frame; times from ``scheduled`` (closed loop: now) until the JSON is decoded."""
    httpx = lazy_import("httpx")
    sample = Sample()
    marks: Dict[str, float] = {}

    async def trace(name: str, _info) -> None:
        now = time.perf_counter()
        if name.endswith(".started"):
            marks.setdefault(name, now)
        else:
            marks[name] = now

    try:
        response = await client.post(url, content=body, headers=headers, extensions={"trace": trace})
        t_body = time.perf_counter()
        doc = json.loads(response.content) if response.content else {}
        done = time.perf_counter()
    except httpx.TimeoutException:
        sample.status, sample.error = "timeout", "client timeout"
        return sample
    except (httpx.TransportError, OSError) as exc:
        sample.status, sample.error = "connection error", "%s" % type(exc).__name__
        return sample
    sample.status = str(response.status_code)
    sample.latency = (done - scheduled) * 1e3
    c = sample.client
    m = marks.get
    if m("connection.connect_tcp.complete") and m("connection.connect_tcp.started"):
        c["connect"] = (marks["connection.connect_tcp.complete"] - marks["connection.connect_tcp.started"]) * 1e3
    else:
        c["connect"] = 0.0
    sent = m("http11.send_request_body.complete")
    if sent and m("http11.send_request_headers.started"):
        c["upload"] = (sent - marks["http11.send_request_headers.started"]) * 1e3
    first = m("http11.receive_response_headers.complete")
    if sent and first:
        c["wait"] = (first - sent) * 1e3
        c["download"] = (t_body - first) * 1e3
    c["json"] = (done - t_body) * 1e3
    if response.status_code == 200:
        sample.server = {k: float(v) for k, v in (doc.get("timings_ms") or {}).items()}
        if "wait" in c and "total" in sample.server:
            c["overhead"] = c["wait"] - sample.server["total"]
    else:
        sample.error = str(doc.get("error", ""))[:200] if isinstance(doc, dict) else ""
    return sample


def summarize_step(samples: List[Sample], wall: float, **what) -> Dict[str, Any]:
    ok = [s for s in samples if s.status == "200"]
    step: Dict[str, Any] = dict(what)
    step.update(requests=len(samples), ok=len(ok), errors=len(samples) - len(ok),
                error_rate=round((len(samples) - len(ok)) / max(len(samples), 1), 4),
                status_counts=dict(Counter(s.status for s in samples)), wall_s=round(wall, 3),
                throughput_fps=round(len(ok) / wall, 2) if wall > 0 else 0.0)
    if ok:
        step["latency"] = summarize([s.latency for s in ok])
        step["client"] = {k: summarize([s.client[k] for s in ok if k in s.client])
                          for k in CLIENT_STAGES + ("overhead",) if any(k in s.client for s in ok)}
        step["server"] = {k: summarize([s.server[k] for s in ok if k in s.server])
                          for k in SERVER_STAGES if any(k in s.server for s in ok)}
    errors = Counter(s.error for s in samples if s.status != "200" and s.error)
    step["error_examples"] = dict(errors.most_common(3))
    return step


def sent_rate(sent: List[float], rate: float) -> float:
    """Requests per second actually sent (arrivals over the span of the sends; ``rate`` before two sends)."""
    span = sent[-1] - sent[0] if len(sent) > 1 else 0.0
    return round((len(sent) - 1) / span, 2) if span > 0 else round(rate, 2)


class Loadgen:
    def __init__(self, plan: BenchPlan, bodies: List[bytes]) -> None:
        self.plan, self.bodies = plan, bodies
        self.url = plan.url.rstrip("/") + "/v1/detect?conf=%g&iou=%g" % (plan.conf, plan.iou)
        self.headers = {"Content-Type": "image/jpeg"}
        if plan.token:
            self.headers["Authorization"] = "Bearer %s" % plan.token
        self.rng = random.Random(plan.seed)
        self.live: Optional[tuple] = None  # (samples, start, step fields) of the step being measured

    def client(self, connections: int):
        httpx = lazy_import("httpx")
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(limits=limits, timeout=self.plan.timeout)

    def partial_step(self) -> Optional[Dict[str, Any]]:
        """The step a signal cut short: the requests answered so far, marked ``interrupted`` (None if none)."""
        if self.live is None or not self.live[0]:
            return None
        samples, start, what = self.live
        step = summarize_step(list(samples), time.perf_counter() - start, **what)
        step["interrupted"] = True
        return step

    async def closed(self, concurrency: int, progress, task) -> Dict[str, Any]:
        async with self.client(concurrency) as client:
            await self._warm(client, concurrency)
            samples: List[Sample] = []
            counter = iter(range(10 ** 9))
            start = time.perf_counter()
            self.live = (samples, start, dict(concurrency=concurrency, mode="closed"))
            unreachable = [0]  # connection errors in a row: the server is gone, end the step

            async def loop() -> None:
                while unreachable[0] < max(20, 2 * concurrency):
                    i = next(counter)
                    if self.plan.duration is None and i >= self.plan.requests:
                        return
                    if self.plan.duration is not None and time.perf_counter() - start >= self.plan.duration:
                        return
                    body = self.bodies[i % len(self.bodies)]
                    sample = await one_request(client, self.url, body, self.headers, time.perf_counter())
                    samples.append(sample)
                    unreachable[0] = unreachable[0] + 1 if sample.status == "connection error" else 0
                    progress.advance(task)

            await asyncio.gather(*(loop() for _ in range(concurrency)))
            wall = time.perf_counter() - start
        return summarize_step(samples, wall, concurrency=concurrency, mode="closed")

    async def open(self, rate: float, progress, task) -> Dict[str, Any]:
        """Arrivals at ``rate`` (evenly spaced or Poisson) for --requests arrivals, or until --duration is up
        (Poisson: the count is random); ``sent_rate`` is the rate realised (arrivals / span of the sends)."""
        async with self.client(max(64, int(rate) * 2)) as client:
            await self._warm(client, 1)
            samples: List[Sample] = []
            sent: List[float] = []
            start = time.perf_counter()
            what: Dict[str, Any] = dict(rate=rate, arrivals=self.plan.arrivals, mode="open", concurrency=None)
            self.live = (samples, start, what)
            tasks = []
            t = start
            for i in range(10 ** 9):
                if i:
                    t += self.rng.expovariate(rate) if self.plan.arrivals == "poisson" else 1.0 / rate
                if (t - start >= self.plan.duration) if self.plan.duration else i >= self.plan.requests:
                    break
                await asyncio.sleep(max(0.0, t - time.perf_counter()))
                body = self.bodies[i % len(self.bodies)]
                sent.append(time.perf_counter())
                what.update(sent=len(sent), sent_rate=sent_rate(sent, rate))

                async def fire(body=body, scheduled=t) -> None:
                    samples.append(await one_request(client, self.url, body, self.headers, scheduled))
                    progress.advance(task)

                tasks.append(asyncio.ensure_future(fire()))
            await asyncio.gather(*tasks)
            wall = time.perf_counter() - start
        return summarize_step(samples, wall, **what)

    async def _warm(self, client, concurrency: int) -> None:
        n = self.plan.warmup
        if n:
            await asyncio.gather(*(one_request(client, self.url, self.bodies[i % len(self.bodies)], self.headers,
                                               time.perf_counter()) for i in range(n)))


def run_remote_bench(plan: BenchPlan, show_progress: bool = True) -> Dict[str, Any]:
    """Every step of the plan against the server; a result document ``edgekit report`` joins (kind remote-bench)."""
    lazy_import("httpx")
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from edgekit.bench.frames import load_frames, synthetic_frames
    from edgekit.bench.interrupt import signal_of, sigterm_interrupts
    from edgekit.manifest import utc_now
    from edgekit.serve.images import encode_jpeg
    from edgekit.serve.remote_report import report_rows
    from edgekit.sysinfo import system_info

    check_server_url(plan.url)
    server = fetch_server_info(plan.url, plan.token)
    frame_size = (server.get("input") or {}).get("frame_size")  # a --graph-letterbox model takes one size only
    if plan.source:
        frames = load_frames(plan.source)
    elif frame_size:
        frames = synthetic_frames(shape=(int(frame_size[1]), int(frame_size[0])))
        info("synthetic %dx%d frames: the served model letterboxes that size in its graph" % tuple(frame_size))
    else:
        frames = synthetic_frames()
    bodies, encode_ms = [], []
    for frame in frames:
        t0 = time.perf_counter()
        bodies.append(encode_jpeg(frame, plan.jpeg_quality))
        encode_ms.append((time.perf_counter() - t0) * 1e3)
    where = destination(plan.url)
    info("benching %s (%s) at %s, %s" % (server["model"]["name"], server["model"].get("backend"), plan.url, where))
    gen = Loadgen(plan, bodies)
    steps: List[Dict[str, Any]] = []
    stopped = None
    progress = progress_bar(TextColumn("{task.description}"), BarColumn(),
                            TextColumn("{task.completed:.0f}/{task.total}"), TimeElapsedColumn(), show=show_progress)
    total = plan.requests if not plan.duration else None
    try:
        with progress, sigterm_interrupts():
            for c in plan.concurrency or []:
                task = progress.add_task("%d in flight" % c, total=total)
                steps.append(asyncio.run(gen.closed(c, progress, task)))
                gen.live = None
            if plan.rate:
                task = progress.add_task("%g/s %s" % (plan.rate, plan.arrivals), total=total)
                steps.append(asyncio.run(gen.open(plan.rate, progress, task)))
                gen.live = None
    except KeyboardInterrupt as exc:  # Ctrl-C/SIGTERM: the finished steps and the one cut short
        stopped = signal_of(exc)
        partial = gen.partial_step()
        steps += [partial] if partial else []
    for step in steps:
        step["failed"] = step["error_rate"] > plan.max_error_rate
    return {"kind": "remote-bench", "created_at": utc_now(), "system": server.get("system") or {},
            "client_system": system_info(), "url": plan.url, "destination": where, "model": server["model"],
            "server": {k: server.get(k) for k in ("max_batch", "max_queue", "max_queue_delay_ms", "input_hw")},
            "plan": asdict(plan, dict_factory=lambda items: {k: v for k, v in items if k != "token"}),
            "image": {"width": int(frames[0].shape[1]), "height": int(frames[0].shape[0]),
                      "jpeg_bytes_mean": int(sum(map(len, bodies)) / len(bodies))},
            "encode_ms": summarize(encode_ms), "steps": steps,
            "results": report_rows(steps, server, where, plan.max_error_rate), "stopped_by_signal": stopped}
