"""ONNX Runtime's thread budget: how many intra-op threads a session gets and whether its idle threads spin.

ONNX Runtime splits each operator over its intra-op threads; between the pieces the threads spin (busy-wait)
instead of sleeping, so the next piece starts at once. That is what makes a session fast when it has the
cores to itself, and slow when other busy work needs them: a spinning thread holds a core another thread
waits for, and a preempted pool thread holds up all the others at the end of each piece. Sleeping costs a
wake-up per piece instead. Measured on 2 cores, YOLOv8n 640, 2 intra-op threads (``benchmarks/thread_budget.py``;
docs/results/speed.md, "ONNX Runtime's thread budget"): spinning gives the camera loop 1.04x the FPS of sleeping
when nothing else is busy,
about the same beside a thread busy 30% of a core, 0.88x at 60%, 0.69x beside a fully busy one.

So the choice follows what runs beside inference:

- ``bench``: inference alone, one stage after another: spin (ONNX Runtime's own default).
- ``camera``/``serve``: spin while the intra-op threads plus the other busy work fit the cores. Busy work is
  what runs at its own pace: other processes (looked at when the plan is made) and, passed by the caller as
  ``extra_threads``, e.g. live sources whose capture threads decode every frame (:func:`capture_load`). The
  loop's own preprocess/NMS/drawing threads and serve's decode workers wait for inference and do a few ms per
  frame: they do not count (on 2 cores the single-source loop is faster spinning).

The intra-op thread count is never lowered to make room: on 2 cores one spinning thread gave the camera loop
0.62x the FPS of two sleeping ones, and 0.77x beside the thread busy 60%. A spinning session stops spinning
when a run returns (``session.force_spinning_stop``), so pre/postprocessing between runs and an idle server
keep their cores. ``EDGEKIT_ORT_SPINNING=1`` (spin) or ``0`` (sleep) overrides the choice for every command.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional

from edgekit.errors import EdgekitError

SPIN_ENV = "EDGEKIT_ORT_SPINNING"
PURPOSES = ("bench", "camera", "serve")
# busy work (in cores) that may share the cores with spinning threads: at 0.3 of a core, spinning and sleeping
# measured about the same (0.99-1.07x), at 0.6 spinning gave 0.88x of sleeping's FPS
SPIN_SLACK = 0.3
# other processes' runnable threads below this, over the short look, are the look's own noise
BACKGROUND_FLOOR = 0.25


@dataclass(frozen=True)
class ThreadPlan:
    threads: int  # ONNX Runtime intra-op threads
    spinning: bool  # idle pool threads spin during a run (True) or sleep (False)
    reason: str  # why, for summaries: "bench: inference alone"

    def line(self) -> str:
        """One line for summaries: ``ORT: 2 threads, spinning (bench: inference alone)``."""
        return "ORT: %d thread%s, %s (%s)" % (self.threads, "" if self.threads == 1 else "s",
                                             "spinning" if self.spinning else "sleeping when idle", self.reason)

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def ort_threading(purpose: str, extra_threads: float = 0.0, intra_threads: Optional[int] = None,
                  cores: Optional[int] = None, background: Optional[float] = None,
                  env: Optional[Mapping[str, str]] = None) -> ThreadPlan:
    """The thread plan for an ONNX Runtime session opened by ``purpose`` ("bench", "camera" or "serve").

    ``extra_threads``: cores' worth of work the caller runs beside inference at its own pace (e.g. the sum of
    :func:`capture_load` over live sources); not the pipeline stages that wait for inference. ``intra_threads``:
    the user's ``--threads`` (None: one per core). ``cores``/``background``: this machine's cores and the
    other processes' runnable threads, looked up when None (tests pass them). ``env``: for tests.
    """
    if purpose not in PURPOSES:
        raise ValueError("purpose %r: one of %s" % (purpose, ", ".join(PURPOSES)))
    if extra_threads < 0:
        raise ValueError("extra_threads %s: must be 0 or more" % extra_threads)
    cores = cores or cpu_cores()
    threads = int(intra_threads) if intra_threads else default_threads(cores)
    override = spinning_override(env)
    if override is not None:
        return ThreadPlan(threads, override, "%s=%d" % (SPIN_ENV, int(override)))
    if purpose == "bench":  # inference alone, on a machine left to it (others' load is noise there): no lookups
        if threads <= cores:
            return ThreadPlan(threads, True, "bench: inference alone")
        return ThreadPlan(threads, False, "bench: %d threads on %d cores" % (threads, cores))
    if background is None:
        background = background_load()
    background = background if background >= BACKGROUND_FLOOR else 0.0
    busy = float(extra_threads) + background
    spinning = threads + busy <= cores + SPIN_SLACK
    if busy < 0.05:
        return ThreadPlan(threads, True, "%s: nothing else busy on %d cores" % (purpose, cores))
    parts = [text % value for text, value in (("%.1f of its own", extra_threads), ("%.1f of other processes",
                                              background)) if value >= 0.05]
    return ThreadPlan(threads, spinning, "%s: %d thread%s + %.1f cores busy (%s) %s %d cores" % (
        purpose, threads, "" if threads == 1 else "s", busy, ", ".join(parts), "fit" if spinning else "exceed",
        cores))


def capture_load(fps: float, read_ms: float) -> float:
    """Cores' worth a live source's capture thread keeps busy: it reads (decodes) every frame at the source's
    rate, whether inference takes it or not. Sources read on demand (files, folders, ``synthetic://?fps=0``)
    wait for the loop: 0."""
    return max(0.0, fps) * max(0.0, read_ms) / 1e3


def spinning_override(env: Optional[Mapping[str, str]] = None) -> Optional[bool]:
    """``EDGEKIT_ORT_SPINNING``: True (1), False (0), or None when unset (edgekit chooses)."""
    value = (os.environ if env is None else env).get(SPIN_ENV, "").strip()
    if value == "":
        return None
    if value not in ("0", "1"):
        raise EdgekitError("%s=%s: set it to 1 (ONNX Runtime's threads spin) or 0 (they sleep when idle), or "
                           "unset it to let edgekit choose per command" % (SPIN_ENV, value))
    return value == "1"


def spin_entries(spinning: bool) -> Dict[str, str]:
    """The session config entries that carry the choice. A spinning session stops spinning when its run
    returns (force_spinning_stop, ONNX Runtime >= 1.11; older versions ignore the key)."""
    flag = "1" if spinning else "0"
    entries = {"session.intra_op.allow_spinning": flag, "session.inter_op.allow_spinning": flag}
    if spinning:
        entries["session.force_spinning_stop"] = "1"
    return entries


def cpu_cores() -> int:
    """Physical cores this process may run on: its CPU affinity (a container's cpuset), SMT siblings counted
    once, as ONNX Runtime's own default thread count does. At least 1."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        try:
            with open("/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list" % cpu) as f:
                cores.add(f.read().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def default_threads(cores: Optional[int] = None) -> int:
    """Intra-op threads when the user gives none: one per core."""
    return cores or cpu_cores()


def background_load(samples: int = 10, interval_s: float = 0.02) -> float:
    """Runnable threads of other work on this process's CPUs, averaged over a short look (0.2 s) at Linux's
    /proc/loadavg; 0.0 where it cannot be read. The looking thread itself is not counted."""
    try:
        online = os.cpu_count() or 1
        share = min(1.0, len(os.sched_getaffinity(0)) / online)  # a cpuset sees its share of the machine's load
        total = 0
        for i in range(samples):
            if i:
                time.sleep(interval_s)
            with open("/proc/loadavg") as f:
                total += max(0, int(f.read().split()[3].split("/")[0]) - 1)
        return round(share * total / samples, 2)
    except (AttributeError, OSError, ValueError, IndexError):
        return 0.0
