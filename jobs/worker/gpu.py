"""GPU figures for the worker's heartbeat, through NVML (``nvidia-ml-py``) when it works.

On a machine without an NVIDIA driver (or without the package) there is nothing to report:
``gpu_stats()`` returns None and the heartbeat leaves ``Worker.gpu`` empty. NVML is probed
once per process; a failed probe is not retried every beat.
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)

_nvml: Any = None  # the pynvml module once initialised, False once known unavailable


def _init() -> Any:
    global _nvml
    if _nvml is None:
        try:
            import pynvml

            pynvml.nvmlInit()
            _nvml = pynvml
        except Exception as exc:  # no package, no driver, no device: a CPU machine
            logger.debug("no GPU figures: %s", exc)
            _nvml = False
    return _nvml


def visible_indexes(count: int) -> list[int]:
    """The devices this worker may use: CUDA_VISIBLE_DEVICES when it lists indexes, else all."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if value and all(part.strip().isdigit() for part in value.split(",")):
        return [int(part) for part in value.split(",") if int(part) < count]
    return list(range(count))


def _device(nvml: Any, index: int) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    figures: dict[str, Any] = {
        "index": index,
        "memory_used_bytes": int(memory.used),
        "memory_total_bytes": int(memory.total),
    }
    readers = {
        "name": lambda: nvml.nvmlDeviceGetName(handle),
        "utilization_percent": lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
        "temperature_celsius": lambda: nvml.nvmlDeviceGetTemperature(
            handle, nvml.NVML_TEMPERATURE_GPU
        ),
    }
    for key, read in readers.items():
        try:  # some devices (MIG slices, some vGPUs) do not report every figure
            value = read()
            figures[key] = value.decode() if isinstance(value, bytes) else value
        except Exception:
            continue
    return figures


def gpu_stats() -> dict[str, Any] | None:
    """``{"devices": [{index, name, memory_used_bytes, memory_total_bytes,
    utilization_percent, temperature_celsius}, ...]}``, or None without a usable GPU."""
    nvml = _init()
    if not nvml:
        return None
    try:
        count = nvml.nvmlDeviceGetCount()
        devices = [_device(nvml, i) for i in visible_indexes(count)]
    except Exception as exc:  # a driver hiccup must never stop the heartbeat
        logger.warning("reading GPU figures failed: %s", exc)
        return None
    return {"devices": devices} if devices else None
