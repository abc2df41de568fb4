"""The openai SDK against real web and worker processes answering with the real SmolLM2 model."""

from __future__ import annotations

import json
import time

import openai
import pytest

from batchserver.models import ApiKey
from models_registry import builtin
from models_registry.services import register_model
from tests.cluster import running_cluster
from tests.engine.conftest import SMOLLM2, chat_line

pytestmark = [pytest.mark.engine, pytest.mark.cluster]

PERSON = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        },
    },
}


@pytest.fixture(scope="module")
def vllm_cluster(django_db_setup, django_db_blocker, smollm2_folder, tmp_path_factory):
    with running_cluster(
        tmp_path_factory.mktemp("vllm-cluster"), BATCHSERVER_ENGINE="vllm", BATCH_CHUNK_SIZE="32"
    ) as cluster:
        yield cluster


@pytest.fixture
def client(vllm_cluster, transactional_db):
    register_model(SMOLLM2, builtin.BUILTIN_PATH, **builtin.ENGINE_SETTINGS)
    raw = ApiKey.issue("engine-e2e")[1]
    return openai.OpenAI(base_url=f"{vllm_cluster.url}/v1", api_key=raw, max_retries=0, timeout=60)


def varied_lines() -> list[dict]:
    """About twenty chat requests exercising the sampling parameters."""
    lines = [chat_line(i, f"What is {i} plus {i}? Answer briefly.", seed=7) for i in range(8)]
    lines += [
        chat_line(20, "Tell me a long story about a dragon.", max_tokens=5),
        chat_line(21, "Tell me a long story about a ship.", max_completion_tokens=6),
        chat_line(22, "List three fruits, separated by commas.", stop=[","], max_tokens=32),
        chat_line(23, "Describe a person as JSON.", response_format=PERSON, max_tokens=64),
        chat_line(24, "Name a color.", n=2, temperature=0.8, seed=3),
        chat_line(25, "Say hello.", logprobs=True, top_logprobs=2),
        chat_line(26, "Name an animal.", temperature=0.7, top_p=0.9, seed=11),
        chat_line(27, "Name a city.", presence_penalty=0.5, frequency_penalty=0.5),
        chat_line(28, "Write one word.", temperature=1.0, seed=5, max_tokens=8),
        chat_line(29, "What is the capital of France?"),
        chat_line(30, "Count to five.", max_tokens=24),
        chat_line(31, "Name a planet.", seed=1),
    ]
    return lines


def run(client, lines: list[dict], endpoint: str = "/v1/chat/completions"):
    content = "".join(json.dumps(x) + "\n" for x in lines).encode()
    file = client.files.create(file=("in.jsonl", content), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint=endpoint, completion_window="24h")
    deadline = time.monotonic() + 600
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.5)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed", batch
    outputs = [json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()]
    return batch, {line["custom_id"]: line["response"]["body"] for line in outputs}


def test_varied_chat_requests_on_the_real_model(client):
    # given about twenty chat requests with varied sampling parameters
    lines = varied_lines()

    # when they run as a batch, twice
    batch, bodies = run(client, lines)
    again, bodies_again = run(client, lines)

    # then every line is answered, with usage, summed into the batch's usage
    assert batch.request_counts.completed == len(lines) and batch.request_counts.failed == 0
    assert set(bodies) == {line["custom_id"] for line in lines}
    for body in bodies.values():
        assert body["object"] == "chat.completion" and body["model"] == SMOLLM2
        assert all(choice["message"]["content"].strip() for choice in body["choices"])
        assert body["usage"]["completion_tokens"] > 0
    assert batch.usage.input_tokens == sum(b["usage"]["prompt_tokens"] for b in bodies.values())
    assert batch.usage.output_tokens == sum(
        b["usage"]["completion_tokens"] for b in bodies.values()
    )
    # max_tokens and max_completion_tokens are respected
    assert bodies["c20"]["usage"]["completion_tokens"] <= 5
    assert bodies["c20"]["choices"][0]["finish_reason"] == "length"
    assert bodies["c21"]["usage"]["completion_tokens"] <= 6
    # stop is respected: generation ends at the stop string, which is not returned
    assert "," not in bodies["c22"]["choices"][0]["message"]["content"]
    assert bodies["c22"]["choices"][0]["finish_reason"] == "stop"
    # a JSON-schema response_format yields parseable JSON of that shape
    person = json.loads(bodies["c23"]["choices"][0]["message"]["content"])
    assert isinstance(person["name"], str) and isinstance(person["age"], int)
    # n and logprobs
    assert len(bodies["c24"]["choices"]) == 2
    assert bodies["c25"]["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    # temperature 0 with a seed gives identical text across the two batches
    for i in range(8):
        first = bodies[f"c{i}"]["choices"][0]["message"]["content"]
        assert first == bodies_again[f"c{i}"]["choices"][0]["message"]["content"]
    assert again.usage.total_tokens > 0


def test_completions_endpoint_on_the_real_model(client):
    lines = [
        {
            "custom_id": f"p{i}",
            "method": "POST",
            "url": "/v1/completions",
            "body": {
                "model": SMOLLM2,
                "prompt": f"The number {i} is",
                "max_tokens": 6,
                "temperature": 0,
            },
        }
        for i in range(3)
    ]
    batch, bodies = run(client, lines, endpoint="/v1/completions")
    assert batch.request_counts.completed == 3
    assert all(
        b["object"] == "text_completion" and b["choices"][0]["text"] for b in bodies.values()
    )
    assert all(b["usage"]["completion_tokens"] <= 6 for b in bodies.values())
