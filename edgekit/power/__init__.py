"""Power, energy per frame, temperatures, clocks and throttling, sampled while bench and camera run.

Sources: INA3221 rails, thermal zones and clocks from sysfs (:mod:`edgekit.box`), ``tegrastats`` when those files
are missing, NVML on desktop/server NVIDIA GPUs. See :mod:`edgekit.power.sampler` and :mod:`edgekit.power.summary`.
"""

from edgekit.power.sampler import PowerMeter, measure, start_run

__all__ = ["PowerMeter", "measure", "start_run"]
