"""Enable and disable reach a running worker (a real ``manage.py qcluster``) without a restart."""

from __future__ import annotations

import time

import pytest
from django_q.tasks import async_task, result

from plugins import services
from tests.cluster import cluster_env, start_worker

pytestmark = pytest.mark.cluster

PROBE = """
from plugins.sdk import hookimpl, Score

manifest = {"id": "probe", "name": "Probe", "version": "1.0", "hooks": ["rating"]}

@hookimpl
def batchserver_rate(answer):
    return [Score("probe", 1.0)]
"""


def ask_worker() -> dict:
    task_id = async_task("tests.plugins.worker_probe.rating_plugins", sync=False)
    answer = result(task_id, wait=20_000)
    assert answer is not None, "the worker did not run the probe task"
    return answer


def wait_for(expected: list[str], timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        answer = ask_worker()
        if answer["plugins"] == expected or time.monotonic() > deadline:
            return answer
        time.sleep(0.3)


def test_enable_and_disable_reach_a_running_worker(transactional_db, settings, tmp_path):
    # given a local plugin, found by this process and by a worker started with the same folder
    folder = tmp_path / "shared-plugins"
    folder.mkdir()
    (folder / "probe.py").write_text(PROBE)
    settings.PLUGINS_DIR = folder
    env = {
        **cluster_env(),
        "BATCHSERVER_PLUGINS_DIR": str(folder),
        "PLUGINS_CHECK_SECONDS": "0.5",
    }
    worker = start_worker(env, tmp_path, "plugins-worker")
    try:
        first = ask_worker()
        assert first["plugins"] == []  # found, not enabled

        # when an operator enables it here, the running worker calls it within seconds
        services.enable("probe")
        enabled = wait_for(["probe"])
        assert enabled["plugins"] == ["probe"], worker.log_tail()

        # and when it is disabled again, the worker stops calling it
        services.disable("probe")
        disabled = wait_for([])
        assert disabled["plugins"] == [], worker.log_tail()

        # all in the same worker process: nothing was restarted
        assert first["pid"] == enabled["pid"] == disabled["pid"]
        worker.assert_running()
    finally:
        graceful = worker.stop()
    assert not worker.members() and graceful
