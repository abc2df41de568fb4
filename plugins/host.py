"""What a plugin may call on the server: a small, stable surface over the apps' services.

Plugins import this module (and ``plugins.sdk``), never ``jobs`` or ``models_registry``
directly, so the server can reorganise its apps without breaking them. Batches a plugin
submits belong to the operator's internal console key: they run through the normal API path
(same services, queue and worker) and no client key ever lists them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from django.core.files.base import ContentFile
from django.utils import timezone

from batchserver import live
from batchserver.models import ApiKey
from jobs.services import batches, files, results
from models_registry.services import list_active_models
from plugins.models import PluginData

ResultRow = results.ResultRow
iter_results = results.iter_results
answer_text = results.answer_text
prompt_messages = results.prompt_messages
CHAT = "/v1/chat/completions"


def console_key() -> ApiKey:
    return ApiKey.console_key()


def active_models() -> list[str]:
    """Names of the models a batch may name now, sorted."""
    return list_active_models()


def completion_window() -> str:
    return live.get("BATCH_COMPLETION_WINDOWS")[0]


def jsonl(lines: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()


def submit_batch(
    lines: list[Mapping[str, Any]],
    *,
    filename: str = "plugin-batch.jsonl",
    endpoint: str = CHAT,
    metadata: Mapping[str, str] | None = None,
) -> Any:
    """Upload ``lines`` as a batch input file and create a batch over it with the console key.

    Returns the batch (``.id``); the worker validates and runs it like any client's. Raises the
    services' domain errors (``Invalid`` …) unchanged.
    """
    owner = console_key()
    content = ContentFile(jsonl(lines), name=filename)
    stored = files.create_file(
        owner, content, purpose="batch", filename=filename, line_count=len(lines)
    )
    return batches.create_batch(
        owner,
        input_file_id=stored.id,
        endpoint=endpoint,
        completion_window=completion_window(),
        metadata=dict(metadata or {}) or None,
    )


def get_batch(batch_id: str) -> Any:
    """Any batch by id (``NotFound`` if there is none): status, metadata, request counts."""
    return results.get_batch(batch_id)


def batch_page_url(batch_id: str) -> str:
    """The operator page of a batch."""
    return f"/batches/{batch_id}"


def save_record(plugin_id: str, key: str, value: Any) -> None:
    """Keep a small JSON record for a plugin (one per key; saving again replaces it)."""
    PluginData.objects.update_or_create(
        plugin_id=plugin_id, key=key, defaults={"value": value, "updated_at": timezone.now()}
    )


def load_record(plugin_id: str, key: str, default: Any = None) -> Any:
    found = PluginData.objects.filter(plugin_id=plugin_id, key=key).values_list("value", flat=True)
    return next(iter(found), default)


def recent_records(plugin_id: str, prefix: str = "", limit: int = 20) -> Iterator[tuple[str, Any]]:
    """(key, value) of a plugin's newest records whose key starts with ``prefix``."""
    rows = PluginData.objects.filter(plugin_id=plugin_id, key__startswith=prefix)
    yield from rows.order_by("-updated_at").values_list("key", "value")[:limit]
