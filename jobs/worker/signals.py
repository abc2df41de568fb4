"""Signals of the worker runtime, for apps that want to know what the GPU worker did.

``engine_loaded(model, seconds, memory_bytes, worker_id)`` fires in the worker process after
a model finished loading: ``seconds`` from the start of the load (engine host start included)
to ready, ``memory_bytes`` the resident memory of the engine's whole process group plus the
GPU memory it took (None when unknown, e.g. the in-process fake engine).
"""

from django.dispatch import Signal

engine_loaded = Signal()
