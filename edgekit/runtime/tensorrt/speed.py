"""Build-time options: trade build minutes (not precision) for a little tactic search, before TensorRT runs.

TensorRT times many kernels ("tactics") per layer; on TensorRT 8.5 a YOLOv8n build at 640 px took 7-9 minutes
on an H100, and Jetson users wait 10-20 minutes per YOLOv8m. What shortens it, by TensorRT version:

* ``ENABLE_TACTIC_HEURISTIC`` (TensorRT 8.5 and 8.6; Ampere and newer GPUs only, sm_80+): heuristics pick the
  tactics instead of timing them all (``--tactic-heuristic``);
* ``builder_optimization_level`` (TensorRT 8.6+, 0-5, default 3): lower levels try fewer tactics
  (``--optimization-level``);
* dropping ``JIT_CONVOLUTIONS`` from the tactic sources (NVIDIA documents it as lengthening builds);
* ``avg_timing_iterations`` (TensorRT's default is already 1, the fastest; trtexec uses 8).

``--fast-build`` takes each of these where this TensorRT and GPU have it (and says which it could not); an
option asked for by name that cannot be had is an error. None of them touches the precision flags, so the
engine computes in the precision asked for; the manifest records what was used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from edgekit.errors import EdgekitError
from edgekit.runtime.tensorrt.plan import Caps

FAST_OPTIMIZATION_LEVEL = 2  # TensorRT 8.6+: tactics sorted by heuristics, only the fastest timed
HEURISTIC_FLAG = "ENABLE_TACTIC_HEURISTIC"  # a trt.BuilderFlag in TensorRT 8.5 and 8.6, gone in 10
HEURISTIC_MIN_SM = (8, 0)  # ENABLE_TACTIC_HEURISTIC: Ampere and newer


@dataclass
class SpeedRequest:
    fast_build: bool = False
    tactic_heuristic: bool = False
    optimization_level: Optional[int] = None
    avg_timing_iterations: Optional[int] = None


@dataclass
class SpeedPlan:
    tactic_heuristic: bool = False
    optimization_level: Optional[int] = None
    avg_timing_iterations: Optional[int] = None
    notes: List[str] = field(default_factory=list)

    def record(self, request: SpeedRequest) -> Dict[str, Any]:
        """What the engine manifest keeps (``build_speed``)."""
        return {"fast_build": request.fast_build, "tactic_heuristic": self.tactic_heuristic,
                "optimization_level": self.optimization_level,
                "avg_timing_iterations": self.avg_timing_iterations}


def sm_tuple(sm: str) -> tuple:
    try:
        major, minor = sm.split(".")
        return int(major), int(minor)
    except ValueError:
        return (0, 0)


def plan_speed(request: SpeedRequest, caps: Caps) -> SpeedPlan:
    plan = SpeedPlan(avg_timing_iterations=request.avg_timing_iterations)
    version = "TensorRT %s" % caps.short_version
    heuristic_gpu = sm_tuple(caps.sm) >= HEURISTIC_MIN_SM
    if request.optimization_level is not None:
        if not caps.optimization_levels:
            raise EdgekitError("--optimization-level needs TensorRT 8.6 or newer (this is %s): use --tactic-heuristic "
                               "or --fast-build instead" % version)
        plan.optimization_level = request.optimization_level
    if request.tactic_heuristic:
        if not caps.tactic_heuristic:
            raise EdgekitError("%s has no tactic heuristic (ENABLE_TACTIC_HEURISTIC is in TensorRT 8.5 and 8.6): use "
                               "--optimization-level or --fast-build instead" % version)
        if not heuristic_gpu:
            raise EdgekitError("--tactic-heuristic needs an Ampere or newer GPU (sm_80+); %s is %s: build without it"
                               % (caps.gpu, caps.sm_tag))
        plan.tactic_heuristic = True
    if not request.fast_build:
        return plan
    if caps.optimization_levels:
        if plan.optimization_level is None:
            plan.optimization_level = FAST_OPTIMIZATION_LEVEL
    elif caps.tactic_heuristic and heuristic_gpu:
        plan.tactic_heuristic = True
    elif caps.tactic_heuristic:
        plan.notes.append("--fast-build: no tactic heuristic on %s (%s; it needs sm_80+)" % (caps.gpu, caps.sm_tag))
    else:
        plan.notes.append("--fast-build: %s has neither a tactic heuristic nor optimization levels" % version)
    return plan
