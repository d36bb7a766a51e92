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
from edgekit.errors import EdgekitError
from edgekit.lazy import lazy_import
from edgekit.log import console, info

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


class Loadgen:
    def __init__(self, plan: BenchPlan, bodies: List[bytes]) -> None:
        self.plan, self.bodies = plan, bodies
        self.url = plan.url.rstrip("/") + "/v1/detect?conf=%g&iou=%g" % (plan.conf, plan.iou)
        self.headers = {"Content-Type": "image/jpeg"}
        if plan.token:
            self.headers["Authorization"] = "Bearer %s" % plan.token
        self.rng = random.Random(plan.seed)

    def client(self, connections: int):
        httpx = lazy_import("httpx")
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(limits=limits, timeout=self.plan.timeout)

    def _count(self, rate: Optional[float] = None) -> int:
        if self.plan.duration:
            return max(1, int(round(self.plan.duration * (rate or 0)))) if rate else 0
        return self.plan.requests

    async def closed(self, concurrency: int, progress, task) -> Dict[str, Any]:
        async with self.client(concurrency) as client:
            await self._warm(client, concurrency)
            samples: List[Sample] = []
            counter = iter(range(10 ** 9))
            start = time.perf_counter()
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
        count = self._count(rate)
        async with self.client(max(64, int(rate) * 2)) as client:
            await self._warm(client, 1)
            samples: List[Sample] = []
            start = time.perf_counter()
            tasks = []
            t = start
            for i in range(count):
                delay = self.rng.expovariate(rate) if self.plan.arrivals == "poisson" else 1.0 / rate
                t = t + delay if i else start
                await asyncio.sleep(max(0.0, t - time.perf_counter()))
                body = self.bodies[i % len(self.bodies)]

                async def fire(body=body, scheduled=t) -> None:
                    samples.append(await one_request(client, self.url, body, self.headers, scheduled))
                    progress.advance(task)

                tasks.append(asyncio.ensure_future(fire()))
            await asyncio.gather(*tasks)
            wall = time.perf_counter() - start
        return summarize_step(samples, wall, rate=rate, arrivals=self.plan.arrivals, mode="open",
                              concurrency=None)

    async def _warm(self, client, concurrency: int) -> None:
        n = self.plan.warmup
        if n:
            await asyncio.gather(*(one_request(client, self.url, self.bodies[i % len(self.bodies)], self.headers,
                                               time.perf_counter()) for i in range(n)))


def fetch_server_info(plan: BenchPlan, wait_ready: float = 60.0) -> Dict[str, Any]:
    """The server's /v1/info once /readyz says ready; an unreachable or refusing server is one line."""
    httpx = lazy_import("httpx")
    headers = {"Authorization": "Bearer %s" % plan.token} if plan.token else {}
    base = plan.url.rstrip("/")
    deadline = time.monotonic() + wait_ready
    try:
        while True:
            status = httpx.get(base + "/readyz", timeout=5).status_code
            if status == 200:
                break
            if status != 503:  # 503 is "loading" or "draining"; anything else is not an edgekit serve
                raise EdgekitError("%s/readyz answered %d: is this an edgekit serve (give http://HOST:PORT)?"
                                   % (base, status))
            if time.monotonic() > deadline:
                raise EdgekitError("%s is up but not ready after %.0f s (/readyz 503): is the model loading?"
                                   % (base, wait_ready))
            time.sleep(0.5)
        response = httpx.get(base + "/v1/info", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise EdgekitError("cannot reach %s (%s): is edgekit serve running there, and bound to an address this "
                           "machine can reach (--host 0.0.0.0 on the box)?" % (base, type(exc).__name__)) from None
    if response.status_code == 401:
        raise EdgekitError("%s wants a token: pass --token or set EDGEKIT_TOKEN" % base)
    if response.status_code != 200:
        raise EdgekitError("%s/v1/info answered %d: is this an edgekit serve?" % (base, response.status_code))
    return response.json()


def run_remote_bench(plan: BenchPlan, show_progress: bool = True) -> Dict[str, Any]:
    """Every step of the plan against the server; a result document ``edgekit report`` joins (kind remote-bench)."""
    lazy_import("httpx")
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from edgekit.bench.frames import load_frames, synthetic_frames
    from edgekit.manifest import utc_now
    from edgekit.serve.images import encode_jpeg
    from edgekit.sysinfo import system_info

    parsed = urlparse(plan.url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path.strip("/") or parsed.query:
        raise EdgekitError("%s: give the server as http://HOST:PORT (no path: the bench posts to /v1/detect "
                           "itself)" % plan.url)
    server = fetch_server_info(plan)
    frames = load_frames(plan.source) if plan.source else synthetic_frames()
    bodies, encode_ms = [], []
    for frame in frames:
        t0 = time.perf_counter()
        bodies.append(encode_jpeg(frame, plan.jpeg_quality))
        encode_ms.append((time.perf_counter() - t0) * 1e3)
    where = destination(plan.url)
    info("benching %s (%s) at %s, %s" % (server["model"]["name"], server["model"].get("backend"), plan.url, where))
    gen = Loadgen(plan, bodies)
    steps = []
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total}"),
                        TimeElapsedColumn(), console=console, transient=True, disable=not show_progress)
    with progress:
        for c in plan.concurrency or []:
            task = progress.add_task("%d in flight" % c, total=plan.requests if not plan.duration else None)
            steps.append(asyncio.run(gen.closed(c, progress, task)))
        if plan.rate:
            task = progress.add_task("%g/s %s" % (plan.rate, plan.arrivals), total=gen._count(plan.rate))
            steps.append(asyncio.run(gen.open(plan.rate, progress, task)))
    model = server["model"]
    results = []
    for step in steps:
        if not step["ok"]:
            continue
        server_stages = step["server"]
        stages = {k: server_stages[k] for k in ("decode", "preprocess", "queue", "inference", "postprocess")
                  if k in server_stages}
        stages["e2e"] = step["latency"]
        results.append({
            "name": model["name"], "model": model.get("file"), "sha256": model.get("sha256"),
            "backend": model.get("backend"), "device": model.get("device"), "precision": model.get("precision"),
            "trained": model.get("trained"), "params": model.get("params"), "gflops": model.get("gflops"),
            "pruned": bool(model.get("pruned")), "destination": where, "batch": 1,
            "in_flight": step["concurrency"] if step["mode"] == "closed" else "%g/s" % step["rate"],
            "stages": stages, "fps": step["throughput_fps"]})
    return {"kind": "remote-bench", "created_at": utc_now(), "system": server.get("system") or {},
            "client_system": system_info(), "url": plan.url, "destination": where, "model": model,
            "server": {k: server.get(k) for k in ("max_batch", "max_queue", "max_queue_delay_ms", "input_hw")},
            "plan": asdict(plan, dict_factory=lambda items: {k: v for k, v in items if k != "token"}),
            "image": {"width": int(frames[0].shape[1]), "height": int(frames[0].shape[0]),
                      "jpeg_bytes_mean": int(sum(map(len, bodies)) / len(bodies))},
            "encode_ms": summarize(encode_ms), "steps": steps, "results": results}
