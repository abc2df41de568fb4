"""The real engine: vLLM's own OpenAI serving layer, driven in-process without HTTP.

Every response body must be byte-for-byte what ``vllm serve`` would have answered, so nothing here
re-implements the API. Like ``vllm run-batch`` (vllm/entrypoints/launchers/run_batch.py), the
backend builds the engine with ``build_async_engine_client`` and the serving objects with
``init_app_state``, then hands each validated request body to the same handler the HTTP route
calls (``OpenAIServingChat.create_chat_completion``, ``OpenAIServingCompletion.create_completion``,
``ServingEmbedding.__call__``). Where ``vllm serve`` turns exceptions into HTTP answers in FastAPI
exception handlers, the same vLLM functions are called here (``create_error_response``,
``validation_exception_handler``), so error bodies match too.

Unlike ``run_batch``, a body that fails validation is a 400 for that request only (run_batch
aborts the whole file), and ``/v1/completions`` is served (0.32.0's run_batch lacks it).

vLLM is imported lazily in ``load``, so this module imports cheaply without vLLM. Entry points
that load it need an ``if __name__ == "__main__":`` guard: vLLM spawns its engine processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from .base import (
    Backend,
    EngineError,
    EngineRequest,
    EngineResult,
    ModelLoadError,
    ModelSpec,
    error_result,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Registry settings that map one-to-one onto vLLM engine arguments of the same name.
ENGINE_SETTING_KEYS = tuple(
    "dtype max_model_len gpu_memory_utilization tensor_parallel_size quantization"
    " enforce_eager seed".split()
)
# Measured on CPU (docs: cpu-engine notes): fp32 beats bf16 for small models, and torch.compile
# costs 70-110 s per start for a ~9% decode gain. Only applied when vLLM runs on the CPU.
CPU_ENGINE_DEFAULTS: dict[str, Any] = {"dtype": "float32", "enforce_eager": True}
# vLLM's default shutdown_timeout of 0 SIGKILLs the engine at once, which leaves its shared
# memory segments (~400 MB in /dev/shm for this model) and /tmp/vllm_dist_* files behind until
# this whole process exits; a graceful stop frees them (measured: 4 s instead of 2 s).
BACKEND_ENGINE_DEFAULTS: dict[str, Any] = {"shutdown_timeout": 10}
# Without an explicit KV-cache size the CPU backend reserves gpu_memory_utilization (0.9) of RAM.
DEFAULT_CPU_KVCACHE_SPACE_GIB = 2
# Seconds to wait for engine child processes to exit after a clean shutdown before killing them.
CHILD_EXIT_GRACE_S = 20.0
MP_HELPERS = ("resource_tracker", "forkserver")
NO_STREAMING = "Streaming and binary responses are not supported in batch requests"
# An operator's own VLLM_CPU_KVCACHE_SPACE, captured before any load overwrites the variable.
_OPERATOR_KVCACHE_SPACE = os.environ.get("VLLM_CPU_KVCACHE_SPACE")


@dataclass(frozen=True)
class _Route:
    """One served endpoint: how to validate its body and which vLLM handler answers it."""

    adapter: Any  # pydantic TypeAdapter of the request model, exactly as FastAPI builds it
    handler: Callable[[Any], Awaitable[Any]]


class VLLMBackend(Backend):
    """Runs batches through vLLM's OpenAI serving layer, in this process's own event loop.

    ``load`` starts the engine (an ``AsyncLLM`` whose engine core and workers are child
    processes) on a private asyncio loop running in a daemon thread; ``run`` submits all requests
    of a chunk to that loop at once (``asyncio.gather``) and blocks until all have answered, so it
    can be called from any thread; ``shutdown`` stops the engine and makes sure its child
    processes are gone. One backend serves one model at a time.
    """

    def __init__(self) -> None:
        self._spec: ModelSpec | None = None
        self._args: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stack: Any = None  # contextlib.AsyncExitStack owning the engine client
        self._engine: Any = None
        self._routes: dict[str, _Route] = {}
        self._children: list[Any] = []  # psutil.Process objects of the engine's processes

    @property
    def loaded(self) -> bool:
        """True between a successful ``load`` and ``shutdown``."""
        return self._engine is not None

    def load(self, spec: ModelSpec) -> None:
        """Start the engine for ``spec`` and build the serving objects ``vllm serve`` would.

        Takes about 20 s for a small model on CPU plus 6-7 s for the first ``import vllm``.
        Raises ``ModelLoadError`` if the model or its settings are unusable; on failure nothing
        is left running.
        """
        if self.loaded:
            raise EngineError(f"a model is already loaded ({self._spec and self._spec.name})")
        if not spec.path or not Path(spec.path).exists():
            raise ModelLoadError(f"model folder {spec.path!r} does not exist")
        settings = dict(spec.settings)
        prepare_environment(settings)
        self._spec = spec
        self._start_loop()
        try:
            self._args = build_serve_args(spec)
            before = {proc.pid for proc in _children()}
            self._call(self._start_engine())
            self._children = [proc for proc in _children() if proc.pid not in before]
        except BaseException as exc:
            self.shutdown()
            if isinstance(exc, Exception) and not isinstance(exc, EngineError):
                raise ModelLoadError(f"could not load {spec.name}: {exc}") from exc
            raise
        logger.info(
            "vLLM engine for %s ready (routes %s, child pids %s)",
            spec.name,
            sorted(self._routes),
            [proc.pid for proc in self._children],
        )

    def run(self, requests: list[EngineRequest]) -> list[EngineResult]:
        """Answer every request; exactly one result per request, in input order.

        Per-request problems (invalid body, unknown endpoint, prompt too long, a failure inside
        one request) become error results. Raises ``EngineError`` only when the engine as a whole
        is gone, so the caller retries the chunk elsewhere.
        """
        if not self.loaded:
            raise EngineError("no model loaded")
        if self._engine.errored:
            raise EngineError(f"vLLM engine is dead: {self._engine.dead_error}")
        results = self._call(self._run_all(requests))
        if self._engine.errored:
            # Results produced while the engine died are 500s for a global reason: retry them.
            raise EngineError(f"vLLM engine died during the batch: {self._engine.dead_error}")
        return results

    def shutdown(self) -> None:
        """Stop the engine, end its child processes and the event loop. Safe to call twice."""
        if self._loop is not None and self._stack is not None:
            try:
                self._call(self._stack.aclose())
            except Exception:
                logger.exception("vLLM engine shutdown failed; killing its processes")
        self._stack = self._engine = None
        self._routes = {}
        _reap(self._children, CHILD_EXIT_GRACE_S)
        self._children = []
        self._stop_loop()
        self._spec = self._args = None

    # --- event loop ---------------------------------------------------------------------

    def _start_loop(self) -> None:
        """Create the backend's own loop once per load, running forever in a daemon thread.

        A loop that keeps running between batches lets vLLM's output handler keep draining the
        engine core's socket and notice a dead engine, and lets ``run`` be called from any
        thread (including one that already has its own loop).
        """
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="vllm-backend-loop", daemon=True
        )
        self._thread.start()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the backend loop and wait for its result in the calling thread."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt while waiting: do not leave it running
            raise

    def _stop_loop(self) -> None:
        """Stop and close the loop thread (after the engine is shut down)."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        if not loop.is_running():
            loop.close()

    # --- engine start-up ----------------------------------------------------------------

    async def _start_engine(self) -> None:
        """Build the engine client and serving objects exactly as ``vllm serve`` does."""
        from contextlib import AsyncExitStack

        from starlette.datastructures import State
        from vllm.entrypoints.launchers.api_server.app_state import init_app_state
        from vllm.entrypoints.launchers.api_server.entry import build_async_engine_client
        from vllm.usage.usage_lib import UsageContext

        stack = AsyncExitStack()
        self._stack = stack
        # Closing the stack runs vLLM's own clean-up: AsyncLLM.shutdown(shutdown_timeout).
        engine = await stack.enter_async_context(
            build_async_engine_client(self._args, usage_context=UsageContext.OPENAI_BATCH_RUNNER)
        )
        supported_tasks = await engine.get_supported_tasks()
        state = State()
        await init_app_state(engine, state, self._args, supported_tasks)
        self._routes = _build_routes(state)
        self._engine = engine

    # --- running requests ---------------------------------------------------------------

    async def _run_all(self, requests: list[EngineRequest]) -> list[EngineResult]:
        """Submit all requests concurrently so the engine batches them, keep input order."""
        return list(await asyncio.gather(*(self._run_one(req) for req in requests)))

    async def _run_one(self, req: EngineRequest) -> EngineResult:
        """Answer one request; never raises, a bug in this code becomes a 500 for it alone."""
        started = time.perf_counter()
        try:
            route = self._routes.get(req.url)
            if route is None:
                result = _to_result(self._unknown_endpoint(req.url))
            else:
                result = await self._serve(route, req.body)
        except Exception as exc:
            logger.exception("request %s failed unexpectedly", req.custom_id)
            result = error_result(
                500,
                f"Internal error: {type(exc).__name__}: {exc}",
                code="internal_error",
                type_="InternalServerError",
            )
        result.latency_ms = round((time.perf_counter() - started) * 1000)
        return result

    async def _serve(self, route: _Route, body: dict[str, Any]) -> EngineResult:
        """Validate like FastAPI does, then call the vLLM handler like the HTTP route does."""
        import pydantic
        from vllm.entrypoints.serve import create_error_response

        try:
            request = route.adapter.validate_python(body, from_attributes=True)
        except pydantic.ValidationError as exc:
            return await self._validation_error(exc)
        except Exception as exc:  # vLLM validators raise VLLMValidationError directly
            return _to_result(create_error_response(exc))
        if getattr(request, "stream", False):
            # The caller rejects streaming earlier; a stream has no place in a batch result.
            return _to_result(create_error_response(NO_STREAMING, param="stream"))
        try:
            response = await route.handler(request)
        except Exception as exc:
            # What vllm serve's exception handlers do: 400 for bad input, 500 for the rest.
            response = create_error_response(exc)
        return await _finish(response)

    async def _validation_error(self, exc: Any) -> EngineResult:
        """Format a pydantic error exactly as vllm serve's RequestValidationError handler."""
        from fastapi.exceptions import RequestValidationError
        from vllm.entrypoints.serve.exception_handling.handlers.validation import (
            validation_exception_handler,
        )

        # FastAPI prefixes every location with "body" (fastapi/_compat: _regenerate_error_with_loc).
        errors = [
            {**err, "loc": ("body", *err.get("loc", ()))} for err in exc.errors(include_url=False)
        ]
        # The handler only reads request.app.state.args (and request.state when logging stacks).
        fake_request = SimpleNamespace(
            app=SimpleNamespace(state=SimpleNamespace(args=self._args)), state=SimpleNamespace()
        )
        exc = RequestValidationError(errors)
        response = await validation_exception_handler(fake_request, exc)  # type: ignore[arg-type]
        return _to_result(response)

    def _unknown_endpoint(self, url: str) -> Any:
        """404 for an endpoint this model does not serve.

        vllm serve answers an unregistered route with FastAPI's bare ``{"detail": "Not Found"}``;
        the batch result format needs an error envelope, so vLLM's own error shape is used.
        """
        from vllm.entrypoints.serve import create_error_response

        served = ", ".join(sorted(self._routes)) or "none"
        return create_error_response(
            f"Not Found: {url} is not served for this model (served: {served})",
            err_type="NotFoundError",
            status_code=HTTPStatus.NOT_FOUND,
        )


# --- module helpers -------------------------------------------------------------------------


def prepare_environment(settings: dict[str, Any]) -> None:
    """Set the process environment vLLM reads; must run before vLLM starts its processes.

    Child processes are spawned and inherit ``os.environ`` at that moment, and some values are
    read when vLLM is first imported, so this runs before the lazy import in ``load``.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be fetched from a hub
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")  # vLLM otherwise phones home
    os.environ.setdefault("DO_NOT_TRACK", "1")
    cache = Path(os.environ.get("BATCHSERVER_DATA_DIR") or PROJECT_ROOT / "data") / "cache"
    os.environ.setdefault("VLLM_CACHE_ROOT", str(cache / "vllm"))
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache / "torchinductor"))
    # vLLM's default "auto" binding reserves one core for the frontend: 162 vs 284 tok/s on 2.
    ranks = int(settings.get("tensor_parallel_size") or 1)
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", cpu_bind_mask(_usable_cpus(), ranks))
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = _kvcache_space(settings.get("cpu_kvcache_space_gib"))


def _kvcache_space(setting: Any) -> str:
    """The VLLM_CPU_KVCACHE_SPACE value: the model's setting, else the operator's, else 2 GiB.

    Resolved per load (not ``setdefault``) so one model's value never leaks into the next load.
    """
    if setting is None:
        return _OPERATOR_KVCACHE_SPACE or str(DEFAULT_CPU_KVCACHE_SPACE_GIB)
    try:
        gib = float(setting)
    except (TypeError, ValueError):
        gib = -1.0
    if gib < 1 or gib != int(gib):
        # vLLM parses the variable with int(); a fractional size can be given as the engine
        # argument kv_cache_memory_bytes in settings["extra"] instead.
        raise ModelLoadError(f"cpu_kvcache_space_gib must be a whole number >= 1, got {setting!r}")
    return str(int(gib))


def build_serve_args(spec: ModelSpec) -> Any:
    """The argparse namespace ``vllm serve <path>`` would have, plus the registry settings.

    Parsing vLLM's own serve parser gives every frontend and engine option its serve default;
    settings and ``settings["extra"]`` then override attributes by name (engine or frontend
    argument names, python values). Unknown names are a load error rather than silently ignored.
    """
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.platforms import current_platform
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    args = make_arg_parser(FlexibleArgumentParser()).parse_args(["--model", spec.path])
    overrides: dict[str, Any] = dict(BACKEND_ENGINE_DEFAULTS)
    if current_platform.is_cpu():
        overrides.update(CPU_ENGINE_DEFAULTS)
    overrides.update(
        {k: spec.settings[k] for k in ENGINE_SETTING_KEYS if spec.settings.get(k) is not None}
    )
    overrides["served_model_name"] = [spec.name]
    overrides["runner"] = "pooling" if spec.kind == "embed" else "generate"
    overrides.update(spec.settings.get("extra") or {})
    unknown = sorted(set(overrides) - set(vars(args)))
    if unknown:
        raise ModelLoadError(f"unknown vLLM engine/frontend arguments: {', '.join(unknown)}")
    for name, value in overrides.items():
        setattr(args, name, value)
    validate_parsed_serve_args(args)
    return args


def _build_routes(state: Any) -> dict[str, _Route]:
    """Map endpoint paths to the serving objects ``init_app_state`` created for this model.

    Only endpoints whose serving object exists are routed, mirroring vllm serve, which only
    registers the routers of the model's supported tasks.
    """
    from pydantic import TypeAdapter
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.openai.completion.protocol import CompletionRequest
    from vllm.entrypoints.pooling.embed.protocol import EmbeddingRequest

    chat, completion = "openai_serving_chat", "openai_serving_completion"
    candidates: dict[str, tuple[Any, str, str]] = {
        "/v1/chat/completions": (ChatCompletionRequest, chat, "create_chat_completion"),
        "/v1/completions": (CompletionRequest, completion, "create_completion"),
        "/v1/embeddings": (EmbeddingRequest, "serving_embedding", "__call__"),
    }
    routes: dict[str, _Route] = {}
    for url, (model, attribute, method) in candidates.items():
        serving = getattr(state, attribute, None)
        if serving is not None:
            routes[url] = _Route(TypeAdapter(model), getattr(serving, method))
    return routes


async def _finish(response: Any) -> EngineResult:
    """Turn whatever a vLLM handler returned into a result, as the HTTP route would send it."""
    from vllm.entrypoints.serve import create_error_response

    stream = getattr(response, "body_iterator", response)  # StreamingResponse or generator
    if hasattr(stream, "__aiter__") and not hasattr(response, "body"):
        # A token stream, or embeddings with encoding_format "bytes": the batch result format
        # carries JSON only, so close the stream (frees the engine request) and refuse.
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            await closer()
        response = create_error_response(NO_STREAMING)
    return _to_result(response)


def _to_result(response: Any) -> EngineResult:
    """Build an ``EngineResult`` from a pydantic response/error or a Starlette JSONResponse.

    The body is what goes over the wire: the HTTP route wraps ``model_dump()`` in a
    ``JSONResponse``, so the same rendering is parsed back, which also guarantees plain,
    picklable JSON data (no enums or pydantic objects).
    """
    from starlette.responses import JSONResponse
    from vllm.entrypoints.serve.engine.protocol import ErrorResponse

    if hasattr(response, "model_dump"):
        status = int(response.error.code) if isinstance(response, ErrorResponse) else 200
        response = JSONResponse(content=response.model_dump(), status_code=status)
    if not (hasattr(response, "body") and hasattr(response, "status_code")):
        raise TypeError(f"unexpected response type {type(response).__name__}")
    status, body = int(response.status_code), json.loads(response.body)
    usage = (body.get("usage") or {}) if 200 <= status < 300 else {}
    return EngineResult(
        status_code=status,
        body=body,
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
    )


def cpu_bind_mask(cpus: list[int], ranks: int = 1) -> str:
    """A VLLM_CPU_OMP_THREADS_BIND value giving all ``cpus`` to the engine, split per rank.

    e.g. ``[0, 1, 2, 3]`` → ``"0-3"``; with 2 ranks → ``"0-1|2-3"`` (vLLM's per-rank separator).
    """
    ranks = max(1, min(ranks, len(cpus)))
    size = len(cpus) // ranks
    chunks = [cpus[i * size : (i + 1) * size] for i in range(ranks)]
    return "|".join(_compress_ranges(chunk) for chunk in chunks)


def _compress_ranges(cpus: list[int]) -> str:
    """``[0, 1, 2, 5]`` → ``"0-2,5"``."""
    parts: list[str] = []
    start = prev = cpus[0]
    for cpu in [*cpus[1:], None]:
        if cpu is not None and cpu == prev + 1:
            prev = cpu
            continue
        parts.append(f"{start}-{prev}" if prev != start else str(start))
        if cpu is not None:
            start = prev = cpu
    return ",".join(parts)


def _usable_cpus() -> list[int]:
    """The CPU ids this process may run on (respects cgroup/taskset limits, unlike cpu_count)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def _children() -> list[Any]:
    """Current descendants of this process that belong to an engine, as ``psutil.Process``.

    Python's own multiprocessing helpers (the resource tracker that ``spawn`` starts once per
    process, a forkserver) are left out: they are shared by the whole process, hold no engine
    memory, outlive any one engine by design and exit with this process.
    """
    import psutil

    def is_mp_helper(proc: Any) -> bool:
        try:
            cmdline = " ".join(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False
        return any(f"multiprocessing.{name}" in cmdline for name in MP_HELPERS)

    return [proc for proc in psutil.Process().children(recursive=True) if not is_mp_helper(proc)]


def _reap(procs: list[Any], grace_s: float) -> None:
    """Wait for the engine's child processes to exit; kill any still alive after ``grace_s``.

    A clean ``AsyncLLM.shutdown`` ends them within 5-7 s; this is the safety net so a swap never
    leaves an orphaned engine holding gigabytes of memory. ``psutil.Process`` objects (not bare
    PIDs) are used so that a recycled PID is never killed by mistake.
    """
    import psutil

    if not procs:
        return
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        logger.warning("engine child %s still alive after shutdown; killing it", proc.pid)
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=5)
