"""A swap waits until the GPU memory of the stopped engine is back (NVML figures simulated)."""

from __future__ import annotations

import pytest

from jobs.worker.engine import host
from jobs.worker.engine.base import EngineError, ModelSpec

MiB = 2**20


@pytest.fixture
def gpu_readings(monkeypatch):
    """Feed ``gpu_memory_used`` a scripted series of readings (the last one repeats)."""
    readings: list[list[int] | None] = []

    def read():
        return readings.pop(0) if len(readings) > 1 else readings[0]

    monkeypatch.setattr(host, "gpu_memory_used", read)
    return readings


def test_stop_waits_until_the_gpu_memory_is_back(gpu_readings):
    # given a GPU at 1 GiB before the load, still full just after the stop, then released
    gpu_readings[:] = [[1024 * MiB], [5000 * MiB], [3000 * MiB], [1100 * MiB]]
    backend = host.HostedBackend("fake")
    backend.load(ModelSpec(name="m"))

    # when the engine is stopped, then it returns once memory is near the baseline
    backend.shutdown()
    assert gpu_readings == [[1100 * MiB]]


def test_stop_fails_loudly_when_the_gpu_memory_stays_held(gpu_readings, monkeypatch):
    # given a GPU whose memory is never given back
    monkeypatch.setattr(host, "GPU_RELEASE_TIMEOUT", 0.5)
    gpu_readings[:] = [[1024 * MiB], [6000 * MiB]]
    backend = host.HostedBackend("fake")
    backend.load(ModelSpec(name="m"))

    # then the swap refuses to go on, naming the GPU and what it still holds
    with pytest.raises(EngineError, match="GPU 0: 4976 MiB"):
        backend.shutdown()


def test_without_a_gpu_nothing_is_waited_for(gpu_readings):
    gpu_readings[:] = [None]
    backend = host.HostedBackend("fake")
    backend.load(ModelSpec(name="m"))
    backend.shutdown()
    assert backend.gpu_baseline is None
