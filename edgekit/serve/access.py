"""Who may reach ``edgekit serve``: the token rule and the listening address, checked before the model loads.

A server that answers the network needs a token unless the user says otherwise with ``--no-token``; an empty
token (a failed ``$(...)``, an empty env file) is an error, never "token off". Loopback without a token is fine:
only this machine can reach it. A request's ``api_key`` query parameter (where Roboflow's clients put the key)
is taken out of its query string before anything else sees it.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import List, Mapping, Optional
from urllib.parse import unquote_plus, unquote_to_bytes

from edgekit.errors import EdgekitError

NEW_TOKEN = "EDGEKIT_TOKEN=$(openssl rand -hex 16)"


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is this machine's loopback (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        pass
    try:
        addresses = {a[4][0] for a in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def resolve_token(token: Optional[str], no_token: bool, host: str,
                  environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The token to require (``--token``, else ``$EDGEKIT_TOKEN``), or None when the server may run without one.

    Refused, each with one line: an empty ``--token`` or ``EDGEKIT_TOKEN``; ``--no-token`` together with a token;
    a non-loopback ``--host`` with no token and no ``--no-token``."""
    env = os.environ if environ is None else environ
    from_env = env.get("EDGEKIT_TOKEN")
    if token is not None and not token.strip():
        raise EdgekitError("--token is empty (a failed $(...)?): give the token clients must send (e.g. --token "
                           "$(openssl rand -hex 16)), or --no-token to serve without one")
    if no_token:
        if token is not None:
            raise EdgekitError("--token and --no-token contradict each other: give one")
        if from_env and from_env.strip():
            raise EdgekitError("--no-token contradicts EDGEKIT_TOKEN set in the environment: unset EDGEKIT_TOKEN "
                               "or drop --no-token")
        return None
    if token is None and from_env is not None:
        if not from_env.strip():
            raise EdgekitError("EDGEKIT_TOKEN is set but empty (a failed $(...) or an empty env file?): set it to "
                               "a token (e.g. %s), or unset it and pass --no-token to serve without one" % NEW_TOKEN)
        token = from_env
    if token is None and not is_loopback(host):
        raise EdgekitError("--host %s serves the network without a token: set one (--token or %s), or pass "
                           "--no-token to let anyone who reaches it use it" % (host, NEW_TOKEN))
    return token


def bind_error(host: str, port: int, exc: OSError) -> str:
    """One line for a failed bind whose hint fits the cause: a bad address points at --host, a taken port at
    --port, a refused low port at root."""
    where = "cannot listen on %s:%d" % (host, port)
    hosts = "(0.0.0.0: every interface, 127.0.0.1: this machine only)"
    if isinstance(exc, socket.gaierror):
        return "%s: %s is not an address or a host name this machine resolves: check --host %s" % (
            where, host, hosts)
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return "%s: %s (another server there? pick another --port)" % (where, reason)
    if exc.errno == errno.EADDRNOTAVAIL:
        return "%s: %s (%s is not an address of this machine): check --host %s" % (where, reason, host, hosts)
    if exc.errno in (errno.EACCES, errno.EPERM) and port < 1024:
        return "%s: %s (ports below 1024 need root): pick --port 1024 or above, e.g. 8080" % (where, reason)
    return "%s: %s (check --host and --port)" % (where, reason)


def check_bind(host: str, port: int) -> None:
    """A bad address or a taken port is one line before the model loads, not uvicorn's log."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0,
                                                             socket.AI_PASSIVE)[0]
    except (OSError, UnicodeError) as exc:
        raise EdgekitError(bind_error(host, port, exc if isinstance(exc, OSError)
                                      else socket.gaierror(str(exc)))) from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            raise EdgekitError(bind_error(host, port, exc)) from None


def take_query_keys(scope) -> List[bytes]:
    """Take every ``api_key`` out of the request's query string and return their values: the key then reaches no
    handler and no log line (uvicorn's access log prints ``scope["query_string"]``)."""
    query = scope.get("query_string") or b""
    if b"api" not in query.lower() and b"%" not in query:
        return []
    kept, keys = [], []
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if unquote_plus(name.decode("latin-1")).strip() == "api_key":
            keys.append(unquote_to_bytes(value.replace(b"+", b" ")))
        else:
            kept.append(part)
    if keys:
        scope["query_string"] = b"&".join(kept)
    return keys
