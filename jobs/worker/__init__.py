"""The GPU worker runtime: engine, engine host, heartbeat, GPU figures, the run loop, and the
interface through which any app registers a kind of GPU work (``kinds``).

It knows nothing of batches, benchmarks or training: ``jobs.runner`` (batch chunks) and other
apps plug into it through ``jobs.worker.kinds``. See docs/architecture.md.
"""
