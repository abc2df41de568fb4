"""The one entry to plugins for every other app: hook calls, and managing plugins.

Other apps never import a plugin; they call these functions. Each asks this process's runtime
(``plugins.runtime.current()``: memory, plus one cheap token read every few seconds), so a call
when no plugin is enabled costs a dictionary lookup, and a batch that names no plugin costs
nothing per line (``schema_plan`` / ``parser_plan`` answer None once per batch).

Hook calls go through ``plugins.guard``: a plugin that raises or overruns never raises into the
caller except where that is the contract (``SchemaPlan.transform`` raises ``LineFailed`` for
that one line); elsewhere its result is left out and its failure counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, NamedTuple

from django.db import transaction
from django.utils import timezone
from django.utils.safestring import SafeString

from batchserver.errors import Conflict, DomainError, Invalid, NotFound
from jobs.services import results
from plugins import guard, runtime, ui
from plugins.guard import PluginFailed
from plugins.manifest import effective_settings, settings_problem
from plugins.models import Generation, PluginState
from plugins.runtime import Plugin
from plugins.types import (
    HOOK_TYPES,
    BatchInfo,
    ExportFormat,
    LineRejected,
    ParsedAnswer,
    RatingJob,
    Redirect,
    Score,
)

# The batch metadata key that opts a batch into plugins: comma-separated ids, in order.
BATCH_METADATA_KEY = "batchserver_plugins"
TRANSFORM = "batchserver_transform_line"
PARSE = "batchserver_parse_answer"


class HookResult(NamedTuple):
    plugin: str
    value: Any


class LineFailed(Exception):
    """One input line cannot run because of a schema hook; it becomes an error line.

    ``as_error()`` is the line's error object (``{"code", "message"}``) for the error file.
    Codes: ``plugin_rejected_line`` (or the plugin's own code) when the plugin refused the
    line, ``plugin_error`` when it raised, ``plugin_timeout`` when it overran its budget,
    ``plugin_disabled`` for the lines after the guard switched the plugin off mid-batch.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def as_error(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


# --- Hook calls --------------------------------------------------------------------------


def call(hook: str, *, plugins: Iterable[str] | None = None, **kwargs: Any) -> list[HookResult]:
    """Call every enabled implementation of ``hook`` (only ``plugins``' when given), in order.

    Returns the non-None results; a first-result hook (``batchserver_parse_answer``) stops at
    the first. Failed calls are left out (and counted by the guard).
    """
    pairs = runtime.current().calls.get(hook)
    if pairs is None:
        raise Invalid(f"Unknown hook {hook!r}.", param="hook", code="unknown_hook")
    if plugins is not None:
        wanted = list(plugins)
        pairs = sorted((p for p in pairs if p[0].id in wanted), key=lambda p: wanted.index(p[0].id))
    results = []
    for plugin, impl in pairs:
        try:
            value = guard.call(plugin, impl, hook, kwargs)
        except (PluginFailed, LineRejected, DomainError):
            continue
        if value is not None:
            results.append(HookResult(plugin.id, value))
            if hook == PARSE:
                break
    return results


def batch_plugins(metadata: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The plugin ids a batch's metadata opts into, in order (empty for nearly every batch)."""
    value = metadata.get(BATCH_METADATA_KEY) if metadata else None
    if not value or not isinstance(value, str):
        return ()
    return tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))


def check_batch_plugins(metadata: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The ids a batch names, each enabled; ``Invalid`` naming the first that is not."""
    ids = batch_plugins(metadata)
    if ids:
        loaded = runtime.current()
        for plugin_id in ids:
            if loaded.enabled(plugin_id) is None:
                raise Invalid(
                    f"metadata.{BATCH_METADATA_KEY} names {plugin_id!r}, which is not an "
                    "enabled plugin on this server.",
                    param=f"metadata.{BATCH_METADATA_KEY}",
                    code="plugin_unavailable",
                )
    return ids


@dataclass
class SchemaPlan:
    """The schema hooks one batch asked for, resolved once; ``transform`` runs per line."""

    batch: BatchInfo
    steps: list[tuple[Plugin, Any]]

    def transform(self, body: dict[str, Any], *, custom_id: str, line: int) -> dict[str, Any]:
        """The line's body after every step; ``LineFailed`` makes this line an error line."""
        for plugin, impl in self.steps:
            if plugin.id in guard.switched_off:
                message = f"plugin {plugin.id} was switched off after repeated failures"
                raise LineFailed("plugin_disabled", message)
            kwargs = {"body": dict(body), "custom_id": custom_id, "line": line, "batch": self.batch}
            try:
                out = guard.call(plugin, impl, TRANSFORM, kwargs)
            except LineRejected as exc:
                raise LineFailed(exc.code, f"plugin {plugin.id}: {exc.message}") from None
            except (PluginFailed, DomainError) as exc:
                raise LineFailed(exc.code, f"plugin {plugin.id}: {exc.message}") from None
            if out is None:
                continue
            if not isinstance(out, dict):
                message = f"plugin {plugin.id} returned {type(out).__name__}, not a body"
                raise LineFailed("plugin_error", message)
            if out.get("model") != body.get("model"):
                raise LineFailed("plugin_error", f"plugin {plugin.id} changed the body's model")
            body = out
        return body

    def close(self) -> None:
        """Record the failures counted during this batch now (also done every few seconds)."""
        guard.flush()


def _batch_info(batch_id: str, metadata: Mapping[str, Any] | None, endpoint: str) -> BatchInfo:
    return BatchInfo(batch_id, endpoint, dict(metadata or {}))


def schema_plan(
    batch_id: str, metadata: Mapping[str, Any] | None, endpoint: str = ""
) -> SchemaPlan | None:
    """The schema steps of a batch, or None (no per-line work) when it names none.

    Raises ``Invalid`` (code ``plugin_unavailable``) if the batch names a plugin that is not
    enabled: running its lines untransformed would not be what the client asked for.
    """
    ids = check_batch_plugins(metadata)
    if not ids:
        return None
    loaded = runtime.current()
    steps = [pair for pair in (loaded.impl(i, TRANSFORM) for i in ids) if pair is not None]
    return SchemaPlan(_batch_info(batch_id, metadata, endpoint), steps) if steps else None


def transform_line(
    body: dict[str, Any],
    *,
    custom_id: str,
    line: int,
    batch_id: str = "",
    metadata: Mapping[str, Any] | None = None,
    endpoint: str = "",
) -> dict[str, Any]:
    """One line through its batch's schema hooks (prefer ``schema_plan`` in a loop)."""
    plan = schema_plan(batch_id, metadata, endpoint)
    return body if plan is None else plan.transform(body, custom_id=custom_id, line=line)


@dataclass
class AnswerParser:
    """The parser hooks one batch asked for, resolved once; ``parse`` runs per answer."""

    batch: BatchInfo
    steps: list[tuple[Plugin, Any]]

    def parse(
        self, text: str, *, body: dict[str, Any] | None = None, custom_id: str = ""
    ) -> ParsedAnswer | None:
        """The first parser's fields for ``text``; None if none applies or each one failed."""
        kwargs = {"text": text, "body": body or {}, "custom_id": custom_id, "batch": self.batch}
        for plugin, impl in self.steps:
            if plugin.id in guard.switched_off:
                continue
            try:
                fields = guard.call(plugin, impl, PARSE, kwargs)
            except (PluginFailed, LineRejected, DomainError):
                continue
            if isinstance(fields, dict):
                return ParsedAnswer(plugin.id, fields)
        return None


def parser_plan(
    batch_id: str, metadata: Mapping[str, Any] | None, endpoint: str = ""
) -> AnswerParser | None:
    """The parsers of the plugins a batch names (in order), or None when it names none."""
    ids = batch_plugins(metadata)
    if not ids:
        return None
    loaded = runtime.current()
    steps = [pair for pair in (loaded.impl(i, PARSE) for i in ids) if pair is not None]
    return AnswerParser(_batch_info(batch_id, metadata, endpoint), steps) if steps else None


def parse_answer(
    text: str,
    *,
    body: dict[str, Any] | None = None,
    custom_id: str = "",
    batch_id: str = "",
    metadata: Mapping[str, Any] | None = None,
) -> ParsedAnswer | None:
    """Structured fields of one answer: the batch's parsers when ``metadata`` is given, else
    every enabled parser; the first that answers wins."""
    if metadata is not None:
        plan = parser_plan(batch_id, metadata)
    else:
        plan = AnswerParser(BatchInfo(batch_id), list(runtime.current().calls.get(PARSE, ())))
    return plan.parse(text, body=body, custom_id=custom_id) if plan else None


def rate(
    answer: str,
    *,
    prompt: str = "",
    reference: str | None = None,
    body: dict[str, Any] | None = None,
) -> list[Score]:
    """Every enabled rating plugin's scores of one answer (``Score.value`` in 0..1)."""
    kwargs = {"answer": answer, "prompt": prompt, "reference": reference, "body": body or {}}
    scores = []
    for result in call("batchserver_rate", **kwargs):
        scores.extend(_scores(result.plugin, result.value))
    return scores


def _scores(plugin_id: str, value: Any) -> list[Score]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return [_with_plugin(s, plugin_id) for s in items if isinstance(s, Score)]


def _with_plugin(score: Score, plugin_id: str) -> Score:
    return score if score.plugin == plugin_id else Score(**{**score.as_dict(), "plugin": plugin_id})


def start_batch_rating(plugin_id: str, batch_id: str, **options: Any) -> RatingJob:
    """Ask one rating plugin to rate a whole batch asynchronously (e.g. an LLM judge batch)."""
    plugin, impl = _addressed(plugin_id, "batchserver_start_batch_rating")
    try:
        job = guard.call(
            plugin,
            impl,
            "batchserver_start_batch_rating",
            {"batch_id": batch_id, "options": options},
        )
    except PluginFailed as exc:
        raise Conflict(exc.message, param="plugin_id", code=exc.code) from None
    if not isinstance(job, RatingJob):
        raise Conflict(f"plugin {plugin_id} did not start a rating", code="plugin_error")
    return job


def batch_scores(batch_id: str) -> dict[str, list[Score]]:
    """Scores of asynchronous ratings of a batch so far, by custom_id, from every plugin."""
    merged: dict[str, list[Score]] = {}
    for result in call("batchserver_batch_scores", batch_id=batch_id):
        if isinstance(result.value, Mapping):
            for custom_id, scores in result.value.items():
                merged.setdefault(str(custom_id), []).extend(_scores(result.plugin, scores))
    return merged


# --- Exports -----------------------------------------------------------------------------


def export_formats() -> list[ExportFormat]:
    """Every export format of the enabled plugins (asked once per reload, then remembered)."""
    loaded = runtime.current()
    if "exports" not in loaded.cache:
        formats: list[ExportFormat] = []
        for result in call("batchserver_export_formats"):
            items = result.value if isinstance(result.value, (list, tuple)) else [result.value]
            for item in items:
                if isinstance(item, ExportFormat):
                    formats.append(ExportFormat(**{**item.__dict__, "plugin": result.plugin}))
        loaded.cache["exports"] = formats
    return list(loaded.cache["exports"])


def get_export_format(format_id: str) -> ExportFormat:
    found = next((f for f in export_formats() if f.id == format_id), None)
    if found is None:
        raise NotFound("export format", format_id, param="format")
    return found


def export(format_id: str, records: Iterable[Mapping[str, Any]], stream: IO[bytes]) -> None:
    """Write ``records`` to ``stream`` in ``format_id``, record by record (flat memory).

    Guarded without a time limit (an export takes as long as its data); a plugin that raises
    gives ``Conflict`` (code ``plugin_error``) and its failure is counted.
    """
    fmt = get_export_format(format_id)
    plugin = runtime.current().enabled(fmt.plugin)
    if plugin is None:
        raise NotFound("export format", format_id, param="format")
    try:
        guard.invoke(
            plugin, "export:" + fmt.id, fmt.write, {"records": records, "stream": stream}, 0
        )
    except PluginFailed as exc:
        raise Conflict(exc.message, param="format", code=exc.code) from None


def batch_records(batch_id: str) -> Iterator[dict[str, Any]]:
    """A batch's finished lines as export records, streamed in input order.

    Each record: ``custom_id``, ``status``, ``messages`` (the prompt), ``body``, ``answer``
    (text or None), ``parsed`` (the batch's parser fields or None), ``error``,
    ``input_tokens``, ``output_tokens``.
    """
    batch = results.get_batch(batch_id)
    parser = parser_plan(batch.id, batch.metadata, batch.endpoint)
    for row in results.iter_results(batch.id, statuses=("completed", "failed")):
        body = json.loads(row.body)
        answer = results.answer_text(row.response_body)
        parsed = (
            parser.parse(answer, body=body, custom_id=row.custom_id) if parser and answer else None
        )
        yield {
            "custom_id": row.custom_id,
            "status": row.status,
            "messages": results.prompt_messages(body),
            "body": body,
            "answer": answer,
            "parsed": parsed.fields if parsed else None,
            "error": row.error,
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
        }


# --- UI ----------------------------------------------------------------------------------


def ui_components(plugin_id: str | None = None) -> list[dict[str, Any]]:
    """Components the enabled plugins (or one plugin) declare, with their plugin id."""
    plugins = [_plugin(plugin_id)] if plugin_id else runtime.current().plugins
    return [
        {"plugin": p.id, **c.as_dict()}
        for p in plugins
        if p.enabled and p.manifest
        for c in p.manifest.components
    ]


def ui_pages() -> list[dict[str, str]]:
    """Pages of the enabled plugins: plugin, name, title and the URL they are served at."""
    return [
        {"plugin": p.id, "name": d.name, "title": d.title, "url": f"/plugins/{p.id}/{d.name}"}
        for p in runtime.current().plugins
        if p.enabled and p.manifest
        for d in p.manifest.pages
    ]


def render_component(
    plugin_id: str, component: str, data: Mapping[str, Any] | None = None, csrf_token: str = ""
) -> SafeString:
    """HTML of one component, escaped by the server; a failing plugin renders as an error."""
    plugin, impl = _addressed(plugin_id, "batchserver_render_component")
    assert plugin.manifest is not None
    if component not in {c.name for c in plugin.manifest.components}:
        raise NotFound("component", f"{plugin_id}/{component}", param="component")
    kwargs = {"component": component, "data": dict(data or {})}
    try:
        widgets = guard.call(plugin, impl, "batchserver_render_component", kwargs)
    except (PluginFailed, LineRejected, DomainError) as exc:
        widgets = [ui.Notice(f"This component failed: {getattr(exc, 'message', exc)}", "error")]
    return ui.render(widgets or [], csrf_token)


def render_page(
    plugin_id: str, page: str, request: Any, csrf_token: str = ""
) -> SafeString | Redirect:
    """A plugin page's HTML (escaped by the server) or its ``Redirect``."""
    plugin, impl = _addressed(plugin_id, "batchserver_render_page")
    assert plugin.manifest is not None
    if page not in {p.name for p in plugin.manifest.pages}:
        raise NotFound("page", f"{plugin_id}/{page}", param="page")
    try:
        result = guard.call(
            plugin, impl, "batchserver_render_page", {"page": page, "request": request}
        )
    except (PluginFailed, LineRejected, DomainError) as exc:
        result = [ui.Notice(f"This page failed: {getattr(exc, 'message', exc)}", "error")]
    if isinstance(result, Redirect):
        if ui.safe_href(result.url) is None or not result.url.startswith("/"):
            return ui.render([ui.Notice("The plugin redirected outside this server.", "error")])
        return result
    return ui.render(result or [], csrf_token)


def _addressed(plugin_id: str, hook: str) -> tuple[Plugin, Any]:
    plugin = _plugin(plugin_id)
    if not plugin.enabled:
        raise Conflict(
            f"Plugin {plugin_id!r} is not enabled.", param="plugin_id", code="plugin_disabled"
        )
    pair = runtime.current().impl(plugin_id, hook)
    if pair is None:
        raise NotFound(hook.removeprefix("batchserver_"), plugin_id, param="plugin_id")
    return pair


# --- Managing plugins --------------------------------------------------------------------


def _plugin(plugin_id: str) -> Plugin:
    plugin = runtime.current().get(plugin_id)
    if plugin is None:
        raise NotFound("plugin", plugin_id, param="plugin_id")
    return plugin


def describe(plugin: Plugin, state: PluginState | None = None) -> dict[str, Any]:
    """Everything the API, the /plugins page and the admin show of one plugin."""
    manifest = plugin.manifest
    return {
        "id": plugin.id,
        "name": manifest.name if manifest else plugin.found.key,
        "version": manifest.version if manifest else "",
        "description": manifest.description if manifest else "",
        "author": manifest.author if manifest else "",
        "source": plugin.found.source,
        "status": plugin.status,
        "enabled": plugin.enabled,
        "loadable": not plugin.reason_code,
        "reason_code": plugin.reason_code,
        "reason": plugin.reason,
        "disabled_reason": state.disabled_reason if state else plugin.disabled_reason,
        "auto_disabled_at": state.auto_disabled_at if state else None,
        "min_server_version": manifest.min_server_version if manifest else "",
        "max_server_version": manifest.max_server_version if manifest else "",
        "hook_types": list(manifest.hooks) if manifest else [],
        "settings": plugin.settings,
        "settings_schema": manifest.settings if manifest else {},
        "components": [c.as_dict() for c in manifest.components] if manifest else [],
        "pages": [
            {"name": d.name, "title": d.title, "url": f"/plugins/{plugin.id}/{d.name}"}
            for d in (manifest.pages if manifest else ())
        ],
        "error_count": state.error_count if state else 0,
        "last_error": state.last_error if state else "",
        "last_error_at": state.last_error_at if state else None,
    }


def list_plugins(hook_type: str | None = None) -> list[dict[str, Any]]:
    """Every plugin found (refused ones with their reason), or those of one hook type."""
    if hook_type is not None and hook_type not in HOOK_TYPES:
        raise Invalid(
            f"Unknown hook type {hook_type!r}; one of: {', '.join(HOOK_TYPES)}.",
            param="type",
            code="unknown_hook_type",
        )
    states = {s.plugin_id: s for s in PluginState.objects.all()}
    return [
        describe(p, states.get(p.id))
        for p in runtime.current().plugins
        if hook_type is None or (p.manifest and hook_type in p.manifest.hooks)
    ]


def get_plugin(plugin_id: str) -> dict[str, Any]:
    return describe(_plugin(plugin_id), PluginState.objects.filter(pk=plugin_id).first())


def _changed() -> None:
    """Tell every process (this one at once) that plugin states changed."""
    Generation.bump()
    # This process rebuilds at once (from its own view of the transaction); if it rolls back,
    # the token differs from the database's again and the next call rebuilds once more.
    runtime.reset()


@transaction.atomic
def enable(plugin_id: str) -> dict[str, Any]:
    """Switch a plugin on (clearing an automatic disable); ``Conflict`` if it cannot load."""
    plugin = _plugin(plugin_id)
    if plugin.reason_code:
        raise Conflict(
            f"Plugin {plugin_id!r} cannot be loaded: {plugin.reason}",
            param="plugin_id",
            code="plugin_not_loadable",
        )
    state, _ = PluginState.objects.select_for_update().get_or_create(plugin_id=plugin_id)
    state.enabled, state.auto_disabled_at, state.disabled_reason = True, None, ""
    state.updated_at = timezone.now()
    state.save()
    guard.forget(plugin_id)
    _changed()
    return describe(plugin, state) | {"enabled": True, "status": runtime.ENABLED}


@transaction.atomic
def disable(plugin_id: str, reason: str = "") -> dict[str, Any]:
    """Switch a plugin off (no hook of it is called any more, in any process)."""
    plugin = _plugin(plugin_id)
    state, _ = PluginState.objects.select_for_update().get_or_create(plugin_id=plugin_id)
    state.enabled, state.disabled_reason, state.updated_at = False, reason, timezone.now()
    state.save()
    _changed()
    status = runtime.REFUSED if plugin.reason_code else runtime.DISABLED
    return describe(plugin, state) | {"enabled": False, "status": status}


def validate_settings(plugin_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The effective settings ``values`` give, or ``Invalid`` naming what breaks the schema."""
    plugin = _plugin(plugin_id)
    if plugin.manifest is None:
        raise Conflict(f"Plugin {plugin_id!r} has no usable manifest.", code="plugin_not_loadable")
    if not isinstance(values, Mapping):
        raise Invalid("Settings must be a JSON object.", param="settings")
    effective = effective_settings(plugin.manifest, dict(values))
    problem = settings_problem(plugin.manifest, effective)
    if problem:
        raise Invalid(problem[1], param="settings", code=problem[0])
    return effective


@transaction.atomic
def update_settings(plugin_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Save a plugin's settings after checking them against its manifest's schema."""
    validate_settings(plugin_id, values)
    state, _ = PluginState.objects.select_for_update().get_or_create(plugin_id=plugin_id)
    state.settings, state.updated_at = dict(values), timezone.now()
    state.save()
    _changed()
    return describe(_plugin(plugin_id), state)


def rescan() -> None:
    """Find plugins again in every process (after installing or removing a package)."""
    _changed()


def ensure_states() -> None:
    """A state row for every plugin found with a manifest (so the admin lists them all)."""
    ids = {p.id for p in runtime.current().plugins if p.manifest}
    PluginState.objects.bulk_create(
        [PluginState(plugin_id=i) for i in sorted(ids)], ignore_conflicts=True
    )
