"""The engine host lives as long as the worker process, not as long as the thread that started
it: the warm start loads the engine from a thread that ends once the model is up, and the first
batch must find that engine still running (it was once killed under the batch and loaded again).
"""

from __future__ import annotations

import threading
import time

from jobs.worker.engine.base import EngineRequest, ModelSpec
from jobs.worker.engine.manager import EngineManager


def test_an_engine_loaded_from_a_thread_that_ended_still_answers():
    # given a hosted engine loaded by a thread that has ended since
    manager = EngineManager("fake-hosted")
    loader = threading.Thread(target=manager.ensure_loaded, args=(ModelSpec(name="m"),))
    loader.start()
    loader.join()
    pid = manager.backend.process.pid  # type: ignore[union-attr]
    try:
        time.sleep(1.5)  # longer than the host's parent watch (0.5 s)

        # when a request runs on it from this thread
        request = EngineRequest(
            custom_id="c0",
            url="/v1/chat/completions",
            body={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
        [result] = manager.run(ModelSpec(name="m"), [request])

        # then the same host answers: it was neither killed nor started again
        assert result.status_code == 200, result
        assert manager.backend.process.pid == pid  # type: ignore[union-attr]
    finally:
        manager.shutdown()
