"""The engine's peak memory: a sampler of a process group's summed RSS, and what the worker
reports with it (``engine_loaded``'s peak, ``engine_peak_memory`` after a run that went higher).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from jobs.worker import signals
from jobs.worker.engine.base import EngineRequest, ModelSpec
from jobs.worker.engine.manager import EngineManager
from jobs.worker.engine.memory import GroupPeakSampler, group_pids

MiB = 2**20

# A process that starts a child in its own group, which holds 64 MiB for as long as it lives;
# then writes 192 MiB of its own, says so, frees them when told, says so, and waits to be told
# to end. Every page is written, so all of it is resident.
ALLOCATOR = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c",
    "import sys; held = bytearray(b'\\\\x01') * (64 * 2**20); print('held', flush=True); "
    "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "held"
block = bytearray(b"\\x01") * (192 * 2**20)
print("holding", flush=True)
sys.stdin.readline()
del block
print("freed", flush=True)
sys.stdin.readline()
child.stdin.close()
child.wait()
"""


@pytest.fixture
def allocator():
    """The allocating process, leader of its own process group (as the engine host is)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", ALLOCATOR],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    yield proc
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group we started: the leader and its child
    except ProcessLookupError:
        pass
    proc.wait(10)


def tell(proc: subprocess.Popen, expect: str) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("next\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == expect


def test_the_sampler_finds_the_peak_of_the_whole_group_and_what_was_freed(allocator):
    # given the sampler watching the group from the moment its leader started
    sampler = GroupPeakSampler(allocator.pid, interval=0.05, rescan=0.1)
    sampler.start()

    # when the leader's child holds 64 MiB, the leader 192 MiB more, then frees its part
    assert allocator.stdout is not None and allocator.stdout.readline().strip() == "holding"
    members = group_pids(allocator.pid)
    time.sleep(0.5)  # ten samples while both hold their memory
    tell(allocator, "freed")
    time.sleep(0.5)
    after = sampler.sample()
    peak = sampler.stop()

    # then both processes were members (the child appeared after sampling began), and the peak
    # is the group's sum at its highest: the 192 MiB the leader freed are above what the group
    # holds after, and the child's 64 MiB are counted in both
    assert len(members) == 2 and allocator.pid in members
    assert peak is not None and sampler.samples >= 15
    assert peak - after == pytest.approx(192 * MiB, abs=12 * MiB)
    assert after > 64 * MiB  # the child's block, beside two small interpreters


def test_sampling_stops_between_periods_and_the_peak_spans_them(allocator):
    sampler = GroupPeakSampler(allocator.pid, interval=0.05, rescan=0.1)
    assert allocator.stdout is not None and allocator.stdout.readline().strip() == "holding"

    # one period while the memory is held
    sampler.start()
    time.sleep(0.3)
    first = sampler.stop()
    counted = sampler.samples

    # nothing is sampled while stopped
    tell(allocator, "freed")
    time.sleep(0.3)
    assert sampler.samples == counted

    # a second period, lower: the peak is still the first period's
    sampler.start()
    time.sleep(0.2)
    assert sampler.stop() == first and sampler.samples > counted
    assert first is not None and first > (192 + 64) * MiB


def test_a_group_with_no_process_has_no_peak():
    sampler = GroupPeakSampler(2**22 + 12345, interval=0.01)  # above any pid the kernel gives
    sampler.start()
    time.sleep(0.05)
    assert sampler.stop() is None


def test_the_engine_reports_its_peak_over_the_load_and_each_run_that_went_higher():
    # given a hosted engine (its own process group, like vLLM's) and receivers of both signals
    loaded, peaks = [], []

    def on_loaded(sender, **kwargs):
        loaded.append(kwargs)

    def on_peak(sender, **kwargs):
        peaks.append(kwargs)

    signals.engine_loaded.connect(on_loaded)
    signals.engine_peak_memory.connect(on_peak)
    manager = EngineManager("fake-hosted")
    spec = ModelSpec(name="m")
    try:
        manager.ensure_loaded(spec)

        # when a run holds 128 MiB for a moment, and a later run holds nothing
        request = EngineRequest("a", "/v1/chat/completions", {"messages": []})
        holding = EngineRequest(
            "b", "/v1/chat/completions", {"messages": [{"role": "user", "content": "[[hold:128]]"}]}
        )
        manager.run(spec, [holding])
        manager.run(spec, [request])
    finally:
        manager.shutdown()
        signals.engine_loaded.disconnect(on_loaded)
        signals.engine_peak_memory.disconnect(on_peak)

    # then the load reported its peak beside the memory once ready …
    assert len(loaded) == 1
    ready, load_peak = loaded[0]["memory_bytes"], loaded[0]["peak_memory_bytes"]
    assert load_peak > 10 * MiB and load_peak >= 0.9 * ready
    # … and the run that held 128 MiB raised it once; the quiet run after it said nothing
    assert len(peaks) == 1 and peaks[0]["model"] == "m"
    assert peaks[0]["peak_memory_bytes"] - load_peak == pytest.approx(128 * MiB, abs=24 * MiB)
