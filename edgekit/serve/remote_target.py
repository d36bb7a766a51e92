"""The remote bench's server: its URL checked before anything is sent, and its ``/v1/info`` once it is ready;
each way it can be wrong is one line naming what to change."""

from __future__ import annotations

import time
from typing import Any, Dict, Optional
from urllib.parse import urlparse

from edgekit.errors import EdgekitError
from edgekit.lazy import lazy_import

SCHEMES = ("http", "https")


def check_server_url(url: str) -> None:
    """``http(s)://HOST:PORT`` and nothing else: no path or query (the bench posts to /v1/detect itself), a port
    within 1..65535."""
    parsed = urlparse(url)
    if parsed.scheme not in SCHEMES:
        raise EdgekitError("%s: the remote bench takes a server as http://HOST:PORT or https://HOST:PORT" % url)
    try:
        port: Optional[int] = parsed.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        text = parsed.netloc.rpartition(":")[2]
        raise EdgekitError("%s: port %s is %s: give a port within 1..65535 (edgekit serve's --port, 8080 by "
                           "default)" % (url, text, "out of range" if text.isdigit() else "not a number"))
    if not parsed.hostname or parsed.path.strip("/") or parsed.query:
        raise EdgekitError("%s: give the server as http://HOST:PORT (no path: the bench posts to /v1/detect "
                           "itself)" % url)


def fetch_server_info(url: str, token: Optional[str], wait_ready: float = 60.0) -> Dict[str, Any]:
    """The server's /v1/info once /readyz says ready; an unreachable or refusing server is one line."""
    httpx = lazy_import("httpx")
    headers = {"Authorization": "Bearer %s" % token} if token else {}
    base = url.rstrip("/")
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
        if base.startswith("https://") and any(w in str(exc).lower() for w in ("ssl", "tls", "wrong version")):
            raise EdgekitError("%s: the TLS handshake failed (%s): edgekit serve speaks plain HTTP; give "
                               "http://%s, or the address of the TLS proxy in front of it"
                               % (base, str(exc).strip().splitlines()[0][:120] if str(exc).strip() else
                                  type(exc).__name__, base[len("https://"):])) from None
        raise EdgekitError("cannot reach %s (%s): is edgekit serve running there, and bound to an address this "
                           "machine can reach (--host 0.0.0.0 on the box)?" % (base, type(exc).__name__)) from None
    if response.status_code == 401 and token:
        raise EdgekitError("%s rejected the token (401): pass the server's token with --token or EDGEKIT_TOKEN"
                           % base)
    if response.status_code == 401:
        raise EdgekitError("%s wants a token: pass --token or set EDGEKIT_TOKEN" % base)
    if response.status_code != 200:
        raise EdgekitError("%s/v1/info answered %d: is this an edgekit serve?" % (base, response.status_code))
    return response.json()


def parse_error_rate(text: str) -> float:
    """--max-error-rate: a fraction 0..1 (``0.05``) or a percent 0..100 (``5%``), finite; ValueError otherwise."""
    raw = str(text).strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1] if percent else raw)
    except ValueError:
        value = float("nan")
    limit = 100.0 if percent else 1.0
    if not (0.0 <= value <= limit):  # also refuses nan and inf
        raise ValueError("%s: give a fraction 0..1 (0.05) or a percent 0..100 (5%%) of requests that may fail"
                         % text)
    return value / 100.0 if percent else value
