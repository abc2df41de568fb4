"""The engine interface: load a model, run a list of requests, shut down.

A backend runs inside the engine host process (or in-process for the fake engine in unit tests).
It never touches the database: it gets plain requests and returns one result per request, in
order. Everything here is plain data so that it crosses a process boundary as pickles.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """What a backend needs to load one model.

    ``name`` is the id clients put in ``"model"``; ``path`` a local folder (empty for the fake
    engine); ``kind`` is ``"generate"`` or ``"embed"``; ``settings`` the per-model engine
    arguments from the registry (dtype, max_model_len, enforce_eager, extra vLLM arguments…).
    """

    name: str
    path: str = ""
    kind: str = "generate"
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, model: Any) -> ModelSpec:
        """What the engine loads for a registry entry (its ``name``, ``kind``, ``local_path()``
        and ``engine_settings()``; the worker runtime does not import the registry)."""
        return cls(
            name=model.name,
            path=model.local_path(),
            kind=model.kind,
            settings=model.engine_settings(),
        )


@dataclass(frozen=True)
class EngineRequest:
    """One input line as the engine sees it: the endpoint path and the request body."""

    custom_id: str
    url: str
    body: dict[str, Any]


@dataclass
class EngineResult:
    """One result: the HTTP status ``vllm serve`` would have answered and its JSON body.

    A 2xx result's body is the response object (with ``usage``); any other status carries an
    OpenAI error body ``{"error": {...}}``. Token counts are read off ``usage`` by the backend.
    """

    status_code: int
    body: dict[str, Any]
    input_tokens: int = 0
    output_tokens: int = 0
    # Milliseconds from the chunk's submission to this answer (requests of a chunk are
    # submitted together, so this is what a client of an online server would have waited).
    latency_ms: int | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


class EngineError(Exception):
    """The engine as a whole failed (crash, hang, lost host): the chunk must be retried."""


class ModelLoadError(EngineError):
    """The model could not be loaded: retrying the same load is unlikely to help."""


class Backend(ABC):
    """One engine implementation. ``run`` returns exactly one result per request, in order."""

    @abstractmethod
    def load(self, spec: ModelSpec) -> None: ...

    @abstractmethod
    def run(self, requests: list[EngineRequest]) -> list[EngineResult]: ...

    @abstractmethod
    def shutdown(self) -> None: ...

    def memory_bytes(self) -> int | None:
        """Memory the loaded engine holds now (RAM of its processes + GPU), None when unknown."""
        return None

    def peak_memory_bytes(self) -> int | None:
        """The most memory the engine held while it loaded and ran so far, None when unknown
        (an engine in the worker's own process has no memory of its own to measure)."""
        return None


def error_result(
    status_code: int,
    message: str,
    code: str,
    param: str | None = None,
    type_: str = "invalid_request_error",
) -> EngineResult:
    """An error result in the OpenAI envelope, for failures that belong to one request."""
    return EngineResult(
        status_code=status_code,
        body={"error": {"message": message, "type": type_, "param": param, "code": code}},
    )
