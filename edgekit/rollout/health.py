"""After a switch and a restart: is the service healthy, and does it run exactly the store's current run?

``edgekit models health --url URL`` polls the service until it proves both, or the time is up:

- serve: ``GET /readyz`` answers 200 and its ``model.sha256`` is the current run's ``model_sha256``;
- camera (``edgekit camera --serve PORT``): ``GET /stats.json`` carries that ``model.sha256`` and its ``frames``
  count grows between two polls (frames flow, not a stalled source).

A service reports the sha256 of the very file it opened when it started (:mod:`edgekit.runtime.identity`), so an
old process that was never restarted, and still answers ``/readyz`` with the old model, is not healthy. Plain
``urllib`` (no extra package on the box) and no proxy: the service is on this box or its network.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from typing import Any, Callable, Dict, Optional, Tuple

from edgekit.errors import EdgekitError

KINDS = ("serve", "camera")
ROUTES = {"serve": "/readyz", "camera": "/stats.json"}
DEFAULT_TIMEOUT = 60.0
POLL_S = 0.5
REQUEST_TIMEOUT = 5.0


class Unhealthy(EdgekitError):
    """The service did not prove it runs the current run in time: a failed check, exit code 1 (as a failed gate,
    :class:`edgekit.eval.gate.GateRefused`); 2 stays a bad command line."""

    exit_code = 1


def check_url(url: str) -> str:
    """``http://HOST:PORT`` (a bare ``HOST:PORT`` gets http://), without a trailing slash."""
    text = str(url or "").strip()
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.path.strip("/"):
        raise EdgekitError("--url %s: give the service's address, e.g. http://127.0.0.1:8080" % url)
    return text.rstrip("/")


def get_json(url: str, timeout: float = REQUEST_TIMEOUT) -> Tuple[Optional[int], Optional[Any], str]:
    """(HTTP status or None, the JSON body or None, what went wrong or "")."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError, socket.timeout) as exc:
        reason = getattr(exc, "reason", exc)
        return None, None, "no answer (%s)" % (reason.strerror if getattr(reason, "strerror", None) else reason)
    try:
        return status, json.loads(body.decode("utf-8", "replace")), ""
    except ValueError:
        return status, None, "not JSON"


def _model_text(model: Dict[str, Any]) -> str:
    bits = [str(model.get(k)) for k in ("name", "version", "path") if model.get(k)]
    return "%s (%s)" % (str(model.get("sha256"))[:12], ", ".join(bits)) if bits else str(model.get("sha256"))[:12]


class _Poll:
    """One health check's state across polls: the camera's frame count when the right model was first seen."""

    def __init__(self, kind: str, expected: str) -> None:
        self.kind, self.expected = kind, expected
        self.frames: Optional[int] = None
        self.model: Optional[Dict[str, Any]] = None

    def judge(self, status: Optional[int], doc: Any, problem: str) -> Tuple[bool, str]:
        """(healthy, what was seen)."""
        if status is None:
            return False, problem
        model = doc.get("model") if isinstance(doc, dict) else None
        if status == 404:
            other = "camera" if self.kind == "serve" else "serve"
            return False, "HTTP 404: no %s here (an edgekit %s at this address? then --kind %s)" % (
                ROUTES[self.kind], other, other)
        if status != 200:
            state = doc.get("status") if isinstance(doc, dict) else None
            state = state if isinstance(state, str) else doc.get("error") if isinstance(doc, dict) else None
            return False, "HTTP %d%s" % (status, " (%s)" % state if state else "")
        if not isinstance(model, dict) or not model.get("sha256"):
            return False, "HTTP 200 %swithout model.sha256 (an edgekit older than the store?)" % (
                "(%s) " % problem if problem else "")
        self.model = model
        if model["sha256"] != self.expected:
            self.frames = None
            return False, ("it runs %s, not the current run's model %s: a process started before the switch "
                           "(restart the service; does it run HOME/store/current?)"
                           % (_model_text(model), self.expected[:12]))
        if self.kind == "serve":
            return True, "ready, running %s" % _model_text(model)
        frames = doc.get("frames")
        if not isinstance(frames, int):
            return False, "the current model, but no frame count yet"
        if self.frames is None or frames < self.frames:  # first sight, or the camera restarted
            self.frames = frames
            return False, "the current model, %d frames so far (waiting for more)" % frames
        if frames == self.frames:
            return False, "the current model, but frames stay at %d (no frames flowing)" % frames
        return True, "running %s, frames %d -> %d" % (_model_text(model), self.frames, frames)


def wait_healthy(url: str, expected_sha: str, kind: str = "serve", timeout: float = DEFAULT_TIMEOUT,
                 interval: float = POLL_S, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    """Poll ``url`` until it runs the model file with sha256 ``expected_sha`` and is healthy, or ``timeout`` s pass.
    The record: url, kind, healthy, seconds, seen (the last answer in words), model (as the service reports it)."""
    if kind not in KINDS:
        raise EdgekitError("--kind %s: choose %s" % (kind, " or ".join(KINDS)))
    if not timeout > 0:
        raise EdgekitError("--timeout %s: give seconds > 0" % timeout)
    base = check_url(url)
    poll = _Poll(kind, expected_sha)
    start = clock()
    polls = 0
    while True:
        left = timeout - (clock() - start)
        status, doc, problem = get_json(base + ROUTES[kind], max(0.1, min(REQUEST_TIMEOUT, left)))
        polls += 1
        healthy, seen = poll.judge(status, doc, problem)
        elapsed = clock() - start
        if healthy or elapsed >= timeout:
            return {"url": base, "kind": kind, "route": ROUTES[kind], "healthy": healthy,
                    "seconds": round(elapsed, 2), "timeout": timeout, "polls": polls, "seen": seen,
                    "expected_sha256": expected_sha, "model": poll.model}
        sleep(max(0.0, min(interval, timeout - elapsed)))


def result_line(record: Dict[str, Any]) -> str:
    where = record["url"] + record["route"]
    if record["healthy"]:
        return "healthy after %.1f s: %s %s" % (record["seconds"], where, record["seen"])
    return "not healthy after %.1f s (--timeout %g): %s %s" % (record["seconds"], record["timeout"], where,
                                                               record["seen"])
