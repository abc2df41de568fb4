"""A deterministic, instant engine for orchestration tests and overhead benchmarks (never default).

Its answer is derived from the request alone. Fault hooks are markers inside a request's text:
``[[fail]]`` answers that request with a 400 error, ``[[crash]]`` fails the whole run like an
engine crash, ``[[hang]]`` sleeps ``FAKE_HANG_SECONDS`` (default 3600) before answering,
``[[hold:N]]`` makes the run hold N MiB of memory for half a second (a peak for the memory
sampler to find); ``FAKE_DELAY_PER_REQUEST_MS`` slows every run by that much per request. A
registry entry with ``{"fake_fail_load": true}`` in its extra arguments fails to load.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import Any

from jobs.worker.engine.base import (
    Backend,
    EngineError,
    EngineRequest,
    EngineResult,
    ModelLoadError,
    ModelSpec,
    error_result,
)

HOLD = re.compile(r"\[\[hold:(\d{1,5})\]\]")
HOLD_SECONDS = 0.5


def _hold(mib: int) -> None:
    """Hold ``mib`` MiB, every page written (resident), for ``HOLD_SECONDS``; then free it."""
    block = bytearray(b"\x01") * (mib * 2**20)
    time.sleep(HOLD_SECONDS)
    del block


def _text_of(body: dict[str, Any]) -> str:
    if "messages" in body:
        parts = [m.get("content") for m in body["messages"] if isinstance(m, dict)]
        return " ".join(p if isinstance(p, str) else json.dumps(p) for p in parts if p)
    value = body.get("prompt", body.get("input", ""))
    return value if isinstance(value, str) else json.dumps(value)


class FakeBackend(Backend):
    """Answers every request instantly with text derived from its prompt."""

    def __init__(self) -> None:
        self.spec: ModelSpec | None = None

    def load(self, spec: ModelSpec) -> None:
        if spec.settings.get("extra", {}).get("fake_fail_load"):
            raise ModelLoadError(f"fake engine: model {spec.name!r} is set to fail loading")
        self.spec = spec

    def shutdown(self) -> None:
        self.spec = None

    def run(self, requests: list[EngineRequest]) -> list[EngineResult]:
        if self.spec is None:
            raise EngineError("fake engine: no model loaded")
        blob = [json.dumps(r.body) for r in requests]
        if any("[[crash]]" in b for b in blob):
            raise EngineError("fake engine: crash requested by a [[crash]] marker")
        if any("[[hang]]" in b for b in blob):
            time.sleep(float(os.environ.get("FAKE_HANG_SECONDS", "3600")))
        held = sum(int(m) for b in blob for m in HOLD.findall(b))
        if held:
            _hold(held)
        # A measurable pace for scale-out and throughput tests (milliseconds per request).
        delay_ms = float(os.environ.get("FAKE_DELAY_PER_REQUEST_MS", "0") or 0)
        if delay_ms > 0:
            time.sleep(delay_ms * len(requests) / 1000)
        results = [self._answer(r, b) for r, b in zip(requests, blob, strict=True)]
        for result in results:
            result.latency_ms = round(delay_ms * len(requests))
        return results

    def _answer(self, request: EngineRequest, blob: str) -> EngineResult:
        if "[[fail]]" in blob:
            return error_result(
                400, "fake engine: request failed by a [[fail]] marker", "fake_failure"
            )
        digest = hashlib.sha256(blob.encode()).hexdigest()
        text = _text_of(request.body)
        prompt_tokens = max(1, len(text.split()))
        answer = f"echo: {text[:200]}"
        max_tokens = request.body.get("max_completion_tokens") or request.body.get("max_tokens")
        words = answer.split()
        if isinstance(max_tokens, int) and max_tokens > 0:
            words = words[:max_tokens]
        answer, completion_tokens = " ".join(words), len(words)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        model = self.spec.name if self.spec else ""
        body = self._body(request.url, digest, model, answer, usage)
        return EngineResult(
            200,
            body,
            prompt_tokens,
            completion_tokens if "usage" in body and request.url != "/v1/embeddings" else 0,
        )

    @staticmethod
    def _body(
        url: str, digest: str, model: str, answer: str, usage: dict[str, int]
    ) -> dict[str, Any]:
        created = int(digest[:8], 16)
        if url == "/v1/embeddings":
            vector = [int(digest[i : i + 4], 16) / 65535 for i in range(0, 32, 4)]
            return {
                "id": f"embd-{digest[:24]}",
                "object": "list",
                "created": created,
                "model": model,
                "data": [{"index": 0, "object": "embedding", "embedding": vector}],
                "usage": {
                    "prompt_tokens": usage["prompt_tokens"],
                    "completion_tokens": 0,
                    "total_tokens": usage["prompt_tokens"],
                },
            }
        if url == "/v1/completions":
            return {
                "id": f"cmpl-{digest[:24]}",
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "text": answer, "logprobs": None, "finish_reason": "stop"}
                ],
                "usage": usage,
            }
        return {
            "id": f"chatcmpl-{digest[:24]}",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
