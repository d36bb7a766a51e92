"""A real ``edgekit serve`` process on 127.0.0.1 for the serve and remote bench tests."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m edgekit serve MODEL ARGS`` on a free loopback port; waits for /readyz."""

    def __init__(self, model, *args, token=None, ready_timeout=90.0, launcher=None, env=None, port=None):
        """``launcher``: what runs instead of ``-m edgekit`` (e.g. tests/nms_standin.py); ``env``: added variables;
        ``port``: this one instead of a free one."""
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.token = token
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {}))
        cmd = [sys.executable] + [str(a) for a in (launcher or ["-m", "edgekit"])]
        cmd += ["serve", str(model), "--port", str(self.port), "--threads", "1",
                "--workers", "2", "--warmup", "1"] + [str(a) for a in args]
        if token:
            cmd += ["--token", token]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("edgekit serve exited %s:\n%s" % (self.proc.returncode, self.proc.stdout.read()))
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("edgekit serve not ready after %.0f s" % ready_timeout)
            time.sleep(0.2)

    @property
    def headers(self):
        return {"Authorization": "Bearer %s" % self.token} if self.token else {}

    def get(self, route, **kwargs):
        return httpx.get(self.url + route, headers=self.headers, timeout=60, **kwargs)

    def post(self, body, content_type="image/jpeg", params="", headers=None, **kwargs):
        h = dict(self.headers, **{"Content-Type": content_type})
        h.update(headers or {})
        return httpx.post(self.url + "/v1/detect" + params, content=body, headers=h, timeout=60, **kwargs)

    def metrics(self):
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(self.url + "/metrics", headers=self.headers, timeout=10).text
        return {s.name + repr(sorted(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def rss_kb(self) -> int:
        for line in Path("/proc/%d/status" % self.proc.pid).read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self, sig=signal.SIGTERM, timeout=60.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return self.proc.returncode, out
