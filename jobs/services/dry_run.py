"""A dry run of a batch input file: the same validation as a real batch, token counts, and a
time estimate from the model's measured throughput. Nothing is written and nothing is queued.

Prompt tokens are counted with the model's own tokenizer when its folder is on this machine
(the built-in SmolLM2 once converted, or a registry entry whose path holds a tokenizer), with
the chat template applied to chat bodies as vLLM does. Otherwise they are estimated as one token
per ``CHARS_PER_TOKEN`` characters of prompt text, and the answer says so.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from batchserver import live
from batchserver.errors import NotFound
from batchserver.models import ApiKey
from jobs.models import File
from jobs.services.batches import batch_input_file
from jobs.services.lifecycle import MAX_REPORTED_ERRORS, model_error
from jobs.services.scheduling import DEFAULT_OUTPUT_TOKENS
from jobs.validation import LineError, ParsedLine, check_lines
from models_registry.services import find_active_model, model_throughputs, seconds_for

logger = logging.getLogger(__name__)
CHARS_PER_TOKEN = 4
ESTIMATE_NOTE = (
    f"estimate: no local tokenizer for this model; one token per {CHARS_PER_TOKEN} characters "
    "of prompt text (rounded up, at least 1 per line)"
)
TOKENIZER_NOTE = "tokenizer: the model's own tokenizer, chat template applied to chat bodies"

Counter = Callable[[str, dict[str, Any]], int]


@dataclass
class ModelFigures:
    lines: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    method: str = "estimate"

    def as_dict(self, tokens_per_second: float | None, endpoint: str) -> dict[str, Any]:
        generates = endpoint != "/v1/embeddings"
        return {
            "lines": self.lines,
            "prompt_tokens": self.prompt_tokens,
            "estimated_output_tokens": self.output_tokens,
            "token_count_method": self.method,
            "measured_output_tokens_per_second": tokens_per_second,
            "estimated_seconds": seconds_for(self.output_tokens, tokens_per_second)
            if generates
            else None,
        }


# --- counting ---------------------------------------------------------------------------------


def _tokenizer_folder(name: str) -> Path | None:
    """A local folder with the model's tokenizer files, never converting or downloading."""
    model = find_active_model(name)
    if model is None:
        return None
    folder = model.existing_folder()
    if folder is not None and (folder / "tokenizer_config.json").is_file():
        return folder
    return None


@functools.lru_cache(maxsize=4)
def _load_tokenizer(folder: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def _ids(value: Any) -> list:
    """Token ids out of whatever a tokenizer call returned (a list or a BatchEncoding)."""
    if hasattr(value, "keys") and "input_ids" in value:
        value = value["input_ids"]
    return list(value)


def _prompt_parts(body: dict[str, Any]) -> list[Any]:
    """The prompt of a completions or embeddings body as a list (strings or token arrays)."""
    value = body.get("prompt", body.get("input", ""))
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [value]  # one prompt given as token ids
    return value if isinstance(value, list) else [value]


def _text(body: dict[str, Any]) -> str:
    if isinstance(body.get("messages"), list):
        texts = []
        for message in body["messages"]:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):  # content parts: count the text ones
                texts += [p.get("text", "") for p in content if isinstance(p, dict)]
        return "".join(t for t in texts if isinstance(t, str))
    return "".join(p for p in _prompt_parts(body) if isinstance(p, str))


def estimate_tokens(endpoint: str, body: dict[str, Any]) -> int:
    """The documented fallback: characters / CHARS_PER_TOKEN (token arrays count exactly)."""
    arrays = sum(len(p) for p in _prompt_parts(body) if isinstance(p, list))
    if "messages" in body:
        arrays = 0
    return max(1, math.ceil(len(_text(body)) / CHARS_PER_TOKEN) + arrays)


def _tokenizer_counter(tokenizer: Any) -> Counter:
    def count(endpoint: str, body: dict[str, Any]) -> int:
        if endpoint == "/v1/chat/completions":
            return len(
                _ids(
                    tokenizer.apply_chat_template(
                        body["messages"], tokenize=True, add_generation_prompt=True
                    )
                )
            )
        total = 0
        for part in _prompt_parts(body):
            if isinstance(part, list):
                total += len(part)
            else:
                total += len(_ids(tokenizer(str(part))))
        return total

    return count


def counter_for(name: str) -> tuple[Counter, str]:
    """How prompt tokens of ``name`` are counted here, and the method's name."""
    folder = _tokenizer_folder(name)
    if folder is not None:
        try:
            return _tokenizer_counter(_load_tokenizer(str(folder))), "tokenizer"
        except Exception as exc:  # transformers missing, or a broken folder
            logger.warning("tokenizer of %s unavailable (%s): estimating tokens", name, exc)
    return estimate_tokens, "estimate"


def expected_output_tokens(endpoint: str, body: dict[str, Any]) -> int:
    """max_completion_tokens / max_tokens of the body (times ``n``), else a default."""
    if endpoint == "/v1/embeddings":
        return 0
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    per_choice = limit if isinstance(limit, int) and limit > 0 else DEFAULT_OUTPUT_TOKENS
    n = body.get("n")
    return per_choice * (n if isinstance(n, int) and n > 1 else 1)


# --- the dry run ------------------------------------------------------------------------------


def _scan(file: File, endpoint: str) -> tuple[dict[str, ModelFigures], list[LineError], int]:
    figures: dict[str, ModelFigures] = {}
    counters: dict[str, Counter] = {}
    errors: list[LineError] = []
    invalid = 0
    try:
        handle = file.content.open("rb")
    except FileNotFoundError:
        raise NotFound("file content", file.id, param="input_file_id") from None
    with handle:
        for item in check_lines(
            handle,
            endpoint,
            model_error,
            max_lines=live.get("BATCH_MAX_LINES"),
            allow_mixed_models=settings.BATCH_ALLOW_MIXED_MODELS,
        ):
            if isinstance(item, LineError):
                invalid += item.line is not None and item.code != "too_many_requests"
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append(item)
                continue
            assert isinstance(item, ParsedLine)
            name = item.body["model"]
            if name not in figures:
                counters[name], method = counter_for(name)
                figures[name] = ModelFigures(method=method)
            entry = figures[name]
            entry.lines += 1
            try:
                entry.prompt_tokens += counters[name](endpoint, item.body)
            except Exception:  # a body the chat template cannot render: vLLM would refuse it
                entry.prompt_tokens += estimate_tokens(endpoint, item.body)
            entry.output_tokens += expected_output_tokens(endpoint, item.body)
    return figures, errors, invalid


def dry_run(owner: ApiKey, *, input_file_id: str, endpoint: str) -> dict[str, Any]:
    """Validate ``input_file_id`` as a batch on ``endpoint`` would, and estimate its cost."""
    file = batch_input_file(owner, input_file_id)
    figures, errors, invalid = _scan(file, endpoint)
    rates = model_throughputs(set(figures))
    by_model = {name: f.as_dict(rates.get(name), endpoint) for name, f in figures.items()}
    methods = {f.method for f in figures.values()}
    method = methods.pop() if len(methods) == 1 else ("mixed" if methods else "estimate")
    seconds = [m["estimated_seconds"] for m in by_model.values()]
    valid_lines = sum(f.lines for f in figures.values())
    return {
        "object": "batch.dry_run",
        "input_file_id": file.id,
        "endpoint": endpoint,
        "lines": valid_lines + invalid,
        "valid": not errors,
        "valid_lines": valid_lines,
        "invalid_lines": invalid,
        "errors": [e.as_dict() for e in errors],
        "models": sorted(figures),
        "prompt_tokens": sum(f.prompt_tokens for f in figures.values()),
        "estimated_output_tokens": sum(f.output_tokens for f in figures.values()),
        "token_count_method": method,
        "token_count_note": {"tokenizer": TOKENIZER_NOTE, "estimate": ESTIMATE_NOTE}.get(
            method, f"{TOKENIZER_NOTE}, where available; otherwise {ESTIMATE_NOTE}"
        ),
        "estimated_seconds": round(sum(seconds), 1)
        if seconds and all(s is not None for s in seconds)
        else None,
        "by_model": by_model,
    }
