"""Signals of the worker runtime, for apps that want to know what the GPU worker did.

``engine_loaded(model, seconds, memory_bytes, peak_memory_bytes, worker_id)`` fires in the
worker process after a model finished loading: ``seconds`` from the start of the load (engine
host start included) to ready, ``memory_bytes`` the resident memory of the engine's whole
process group once ready plus the GPU memory it took, ``peak_memory_bytes`` the group's highest
summed resident memory during the load (sampled every 100 ms, ``engine.memory``) plus that GPU
memory; both None when unknown (e.g. the in-process fake engine).

``engine_peak_memory(model, peak_memory_bytes, worker_id)`` fires after a run that took the
engine's peak since its load higher than last reported (by 4 MiB or more): the peak then covers
the load and every run since.
"""

from django.dispatch import Signal

engine_loaded = Signal()
engine_peak_memory = Signal()
