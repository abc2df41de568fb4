"""The real engine in its host process: swaps leave nothing behind, a killed host is survived,
a request vLLM refuses is one error line."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest

from batchserver import logstore
from batchserver.models import LogLine
from jobs.models import Batch
from jobs.worker.engine.host import group_members
from models_registry import builtin
from models_registry.services import register_model
from tests.engine.conftest import SMOLLM2, chat_line

pytestmark = pytest.mark.engine


def file_lines(client, file_id):
    if not file_id:
        return []
    response = client.get(f"/v1/files/{file_id}/content")
    return [json.loads(x) for x in b"".join(response.streaming_content).splitlines()]


def all_lines(client, batch):
    return file_lines(client, batch["output_file_id"]) + file_lines(client, batch["error_file_id"])


def test_the_engines_own_lines_reach_the_log_store_with_the_batch_id(real_engine, create_batch):
    # given no engine loaded (the module's first test pays the load it would pay anyway)
    real_engine.shutdown()
    logstore.discard()

    # when a batch loads the model and runs
    batch = create_batch([chat_line(1, "Say hi.", max_tokens=4)])
    assert batch["status"] == "completed", batch
    logstore.flush()

    # then vLLM's start-up lines and the host's own are stored as the engine's, with the batch's id
    correlation_id = Batch.objects.get(pk=batch["id"]).correlation_id
    lines = LogLine.objects.filter(process="engine", correlation_id=correlation_id)
    assert lines.filter(logger="vllm").exists(), list(LogLine.objects.values_list("message"))
    assert lines.filter(message__startswith="engine host: running").exists()


def test_prompt_over_the_context_length_is_one_error_line(real_engine, create_batch, client_api):
    # given three requests, the middle one far longer than the model's 2048-token context
    lines = [chat_line(1, "Say hi."), chat_line(2, "word " * 3000), chat_line(3, "Say bye.")]

    # when the batch runs on the real engine
    batch = create_batch(lines)

    # then it completes; the long prompt is one 400 error line naming the context length
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    errors = file_lines(client_api, batch["error_file_id"])
    assert [e["custom_id"] for e in errors] == ["c2"]
    assert errors[0]["response"]["status_code"] == 400
    error = errors[0]["response"]["body"]["error"]
    assert "context length" in error["message"] or "maximum" in error["message"]
    outputs = file_lines(client_api, batch["output_file_id"])
    assert all(o["response"]["body"]["choices"][0]["message"]["content"] for o in outputs)


def test_swaps_leave_no_process_of_the_earlier_engine(real_engine, create_batch, client_api):
    # given the same weights registered twice, with different engine settings
    register_model(
        "smollm2-short", builtin.BUILTIN_PATH, **{**builtin.ENGINE_SETTINGS, "max_model_len": 1024}
    )
    seen_groups: list[int] = []

    # when batches run on A, B, A
    for model in (SMOLLM2, "smollm2-short", SMOLLM2):
        batch = create_batch([chat_line(1, "Hello!", model=model, max_tokens=4)])
        assert batch["status"] == "completed", batch
        assert batch["model"] == model
        host = real_engine.backend
        assert real_engine.loaded_model == model
        seen_groups.append(host.pgid)
        # then every earlier engine's process group is gone entirely
        for earlier in seen_groups[:-1]:
            assert group_members(earlier) == []
        assert group_members(host.pgid), "the current engine should be running"
    assert len(set(seen_groups)) == 3


def test_engine_host_killed_mid_batch_the_batch_still_completes(
    real_engine, create_batch, client_api
):
    # given a warm engine and a batch of several chunks
    real_engine.ensure_loaded(real_engine_spec())
    victim = real_engine.backend.pgid
    lines = [chat_line(i, f"Count from 1 to {i + 5}.", max_tokens=32) for i in range(24)]

    # when the engine host is SIGKILLed while the batch runs
    killer = threading.Timer(2.0, lambda: os.kill(victim, signal.SIGKILL))
    killer.start()
    batch = create_batch(lines)
    killer.cancel()

    # then the killed host and its children are gone, a new one finished the batch,
    # and every custom_id is there exactly once, all answered
    assert group_members(victim) == []
    assert real_engine.backend.pgid != victim
    assert batch["status"] == "completed", batch
    ids = [line["custom_id"] for line in all_lines(client_api, batch)]
    assert sorted(ids) == sorted(f"c{i}" for i in range(24))
    assert batch["request_counts"]["completed"] == 24


def real_engine_spec():
    from jobs.runner import model_spec
    from models_registry.models import Model

    return model_spec(Model.objects.get(name=SMOLLM2))
