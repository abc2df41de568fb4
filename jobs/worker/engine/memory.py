"""The peak memory of an engine's process group, sampled while it loads and while it runs.

The kernel keeps a high-water mark per process (``VmHWM``) but none per group, and summing the
members' marks is wrong twice over: they peak at different moments (the host while it imports,
vLLM's engine core and workers later), and a member that exited takes its mark with it. So a
thread of the worker sums the resident memory (RSS) of every live member of the group every
``interval`` (100 ms) and keeps the highest sum.

What the figure is: the highest sum of the members' RSS seen at one sampling instant. A page
that several members map (shared libraries, a mapped weight file, shared memory) counts once
per member, as ``ps`` and ``top`` count it, so the sum can exceed what the group takes from the
machine by that shared part; a spike shorter than the interval can fall between two samples.

Cost: the group's members are found by asking the kernel the process group of every pid
(``os.getpgid``, no file read: well under a millisecond for a few hundred processes), at most
every ``rescan`` seconds — the engine starts its children during the load; between two scans
only the known members' ``/proc/<pid>/statm`` is read.
"""

from __future__ import annotations

import os
import threading
import time

import psutil

INTERVAL_SECONDS = 0.1
RESCAN_SECONDS = 0.5


def group_pids(pgid: int) -> list[int]:
    """Pids of the processes of a process group (zombies included: their RSS is 0)."""
    found = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid:
                found.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return found


class GroupPeakSampler:
    """The highest summed RSS of one process group over the periods it was started for.

    ``start()`` begins sampling in a daemon thread (a first sample at once); ``stop()`` ends it
    with one last sample. Periods add up: the peak is over all of them, so an engine's peak
    covers its load and every run since (``HostedBackend`` starts it for each).
    """

    def __init__(
        self, pgid: int, interval: float = INTERVAL_SECONDS, rescan: float = RESCAN_SECONDS
    ) -> None:
        self.pgid = pgid
        self.interval = interval
        self.rescan = rescan
        self.peak_bytes: int | None = None
        self.samples = 0
        self._members: dict[int, psutil.Process] = {}
        self._next_scan = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, args=(self._stop,), name=f"engine-memory:{self.pgid}", daemon=True
        )
        self._thread.start()

    def stop(self) -> int | None:
        """End the period (one last sample) and answer the peak so far."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()
            self.sample()
        return self.peak_bytes

    def _loop(self, stop: threading.Event) -> None:
        self.sample()
        while not stop.wait(self.interval):
            self.sample()

    def sample(self) -> int:
        """Sum the RSS of the group's members now, and keep it if it is the highest yet."""
        now = time.monotonic()
        if now >= self._next_scan or not self._members:  # none yet: the leader is starting
            self._rescan()
            self._next_scan = now + self.rescan
        total = 0
        for pid, proc in list(self._members.items()):
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:  # it ended (or is a zombie): nothing resident
                self._members.pop(pid, None)
            except psutil.Error:
                continue
        self.samples += 1
        if self._members and (self.peak_bytes is None or total > self.peak_bytes):
            self.peak_bytes = total
        return total

    def _rescan(self) -> None:
        members = {}
        for pid in group_pids(self.pgid):
            try:
                members[pid] = self._members.get(pid) or psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue
        self._members = members
