"""Prometheus metrics of the server (``GET /metrics``), on a registry of its own (prometheus_client)."""

from __future__ import annotations

from typing import Any, Dict

from edgekit.lazy import lazy_import
from edgekit.runtime.identity import MODEL_LABELS, info_labels

# seconds: 0.5 ms .. 10 s, dense where a frame's stages live
STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Metrics:
    def __init__(self) -> None:
        prom = lazy_import("prometheus_client")
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.stage = prom.Histogram("edgekit_stage_seconds", "Server-side time per request and stage",
                                    ["stage"], buckets=STAGE_BUCKETS, registry=r)
        self.batch = prom.Histogram("edgekit_batch_size", "Requests per inference call (dynamic batching)",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.requests = prom.Counter("edgekit_requests", "Answered requests by route and status code",
                                     ["route", "code"], registry=r)
        self.rejections = prom.Counter("edgekit_rejections", "Requests refused, by reason", ["reason"], registry=r)
        self.queue_depth = prom.Gauge("edgekit_queue_depth", "Requests admitted and waiting for inference",
                                      registry=r)
        self.in_flight = prom.Gauge("edgekit_in_flight", "Detect requests being handled", registry=r)
        self.model_info = prom.Gauge("edgekit_model_info", "The model this process runs (1): sha256 of its file",
                                     list(MODEL_LABELS), registry=r)

    def set_model(self, identity: Dict[str, Any]) -> None:
        """``edgekit_model_info{sha256,name,version,precision,backend} 1`` for the model now loaded."""
        self.model_info.clear()
        self.model_info.labels(**info_labels(identity)).set(1)

    def observe_stages(self, timings_ms: Dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.stage.labels(stage).observe(ms / 1e3)

    def exposition(self) -> bytes:
        return self._prom.generate_latest(self.registry)

    @property
    def content_type(self) -> str:
        return self._prom.CONTENT_TYPE_LATEST


ROUTE_LABELS = {"/v1/detect": "detect", "/healthz": "healthz", "/readyz": "readyz", "/v1/info": "info",
                "/metrics": "metrics"}


class CountResponses:
    """Pure ASGI middleware, outermost: every answered request counts in ``edgekit_requests_total{route,code}``,
    whoever answered it (the token check's 401, a route's 400/413/415/503/504, the router's 404/405)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = ROUTE_LABELS.get(scope["path"], "other")  # a bounded label set, whatever paths clients try

        async def counted(message) -> None:
            if message["type"] == "http.response.start":
                # a route may name itself (the Roboflow routes: "roboflow"); else the label of its path
                self.metrics.requests.labels(scope.get("edgekit.route", route), str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counted)
