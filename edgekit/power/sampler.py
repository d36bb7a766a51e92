"""A background sampler at a fixed interval, started after warm-up and stopped with the timed run.

``PowerMeter.open(...)`` finds what this box can read once per command (and says "power: not available" once
when it can read no power), measures the optional idle baseline, and ``meter.measure()`` wraps one timed run::

    with measure(meter) as run:       # meter may be None (--no-power): then run.summary() is None
        ...timed loop...
    result["power"] = run.summary(frames)

The sampler takes a reading when it starts, every interval, and when it stops, so its samples span exactly the
timed frames. Its own cost is measured: the time each reading takes and the CPU time of its thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from edgekit.box import Box
from edgekit.log import info
from edgekit.power.summary import idle_summary, summarize

Sample = Tuple[float, Dict[str, Any]]
# Readings kept per run: 10 minutes at 100 ms in full; a longer run (a camera left on) keeps every other reading
# each time the cap is reached, so memory stays bounded and the readings still span the whole run.
MAX_KEPT = 6000


class Sampler:
    def __init__(self, source, interval_s: float) -> None:
        self.source, self.interval = source, interval_s
        self.samples: List[Sample] = []
        self.reads = 0  # readings taken (more than kept on a long run)
        self.read_s = 0.0  # wall time spent inside source.read()
        self.cpu_s = 0.0  # CPU time of the sampler thread
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _sample(self) -> None:
        t0 = time.perf_counter()
        try:
            reading = self.source.read()
        except Exception as exc:  # a sensor that vanished mid-run must not end the benchmark
            reading = {"error": str(exc)}
        t1 = time.perf_counter()
        self.read_s += t1 - t0
        self.reads += 1
        self.samples.append((t0, reading))
        if len(self.samples) > MAX_KEPT:
            last = self.samples[-1]
            self.samples = self.samples[::2] + ([last] if len(self.samples) % 2 == 0 else [])

    def _run(self) -> None:
        cpu0 = time.thread_time()
        due = time.perf_counter()
        while True:
            self._sample()
            due += self.interval
            if self._stop.wait(max(0.0, due - time.perf_counter())):
                break
        self._sample()  # the closing reading, at the end of the timed run
        self.cpu_s = time.thread_time() - cpu0

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="edgekit-power", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> List[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.samples

    def cost(self) -> Dict[str, float]:
        n = max(self.reads, 1)
        span = self.samples[-1][0] - self.samples[0][0] if len(self.samples) > 1 else 0.0
        return {"ms_per_sample": round(self.read_s * 1e3 / n, 3),  # wall time, waiting for the GIL included
                "cpu_ms_per_sample": round(self.cpu_s * 1e3 / n, 3),
                "cpu_percent": round(100.0 * self.cpu_s / span, 3) if span > 0 else 0.0}


class PowerMeter:
    def __init__(self, source, missing: List[str], interval_ms: int) -> None:
        self.source, self.missing, self.interval_ms = source, missing, interval_ms
        self.idle: Optional[Dict[str, Any]] = None
        self.samplers: List[Sampler] = []  # stopped by close(), should a run end with an error

    @classmethod
    def open(cls, interval_ms: int = 100, idle_s: float = 0.0, box: Optional[Box] = None,
             say=info, **kwargs) -> PowerMeter:
        from edgekit.power.sources import open_sources

        source, missing = open_sources(box or Box(), interval_ms, **kwargs)
        meter = cls(source, missing, interval_ms)
        if source is None or not source.has_power():
            why = "; ".join(m for m in missing if "power" in m.lower()) or "no sensors"
            say("power: not available (%s)%s" % (why, "; recording temperatures and clocks" if source else ""))
        if idle_s > 0:
            meter.measure_idle(idle_s, say)
        return meter

    @property
    def has_power(self) -> bool:
        return self.source is not None and self.source.has_power()

    def measure_idle(self, seconds: float, say=info) -> None:
        if not self.has_power:
            say("--idle %g: no power readings on this box, so no idle baseline" % seconds)
            return
        say("measuring the idle baseline for %g s (keep the box otherwise idle)" % seconds)
        sampler = self.sampler()
        time.sleep(seconds)
        self.idle = idle_summary(sampler.stop())

    def sampler(self) -> Sampler:
        sampler = Sampler(self.source, self.interval_ms / 1e3)
        self.samplers.append(sampler)
        return sampler.start()

    def close(self) -> None:
        for sampler in self.samplers:
            sampler.stop()
        if self.source is not None:
            self.source.close()


class Run:
    def __init__(self, meter: Optional[PowerMeter]) -> None:
        self.meter = meter
        self.sampler: Optional[Sampler] = None

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()

    def summary(self, frames: int) -> Optional[Dict[str, Any]]:
        meter = self.meter
        if meter is None:
            return None
        if meter.source is None or self.sampler is None:
            return {"available": False, "power_available": False, "missing": meter.missing}
        out = summarize(self.sampler.samples, frames, source=meter.source.name, scope=meter.source.scope,
                        interval_ms=meter.interval_ms, cost=self.sampler.cost(), idle=meter.idle,
                        missing=meter.missing)
        out["samples"] = self.sampler.reads  # taken; len(kept) <= MAX_KEPT
        return out


def start_run(meter: Optional[PowerMeter]) -> Run:
    """Start sampling now (the timed run starts); ``run.stop()`` when it ends. ``None`` samples nothing."""
    run = Run(meter)
    if meter is not None and meter.source is not None:
        run.sampler = meter.sampler()
    return run


@contextlib.contextmanager
def measure(meter: Optional[PowerMeter]) -> Iterator[Run]:
    """Sample while the block runs (the timed run)."""
    run = start_run(meter)
    try:
        yield run
    finally:
        run.stop()
