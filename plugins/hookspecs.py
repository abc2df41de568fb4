"""The hook specifications: the five hook types of batchserver plugins, on pluggy.

A plugin implements any of these as module-level functions marked ``@hookimpl`` whose names
are the hook names below; like pytest's, an implementation may take any subset of the
arguments, so a specification can grow new arguments without breaking plugins. Each
implementation is called alone, guarded and timed, by ``plugins.guard`` (wrappers are not
supported), in the order ``PluginManager`` gives: ``tryfirst`` implementations, then plugins
in order of their id, then ``trylast`` ones. ``settings`` is always the calling plugin's own
settings (the manifest's defaults merged with what an operator saved), never another's.

Semantics per hook (see docs/plugins.md):

==========================  ==========  ================================================
hook                        type        who is called, what counts
==========================  ==========  ================================================
transform_line              schema      the plugins a batch names, in its order; chain
parse_answer                parser      the batch's (or every enabled) parser; first result
render_component            ui          the one plugin addressed
render_page                 ui          the one plugin addressed
export_formats              export      every enabled plugin; all results, concatenated
rate                        rating      every enabled plugin; all results, concatenated
start_batch_rating          rating      the one plugin addressed
batch_scores                rating      every enabled plugin; all results, merged
==========================  ==========  ================================================
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "batchserver"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# Hook type of each hook; a manifest's "hooks" list names exactly the types a plugin implements.
HOOK_TYPE = {
    "batchserver_transform_line": "schema",
    "batchserver_parse_answer": "parser",
    "batchserver_render_component": "ui",
    "batchserver_render_page": "ui",
    "batchserver_export_formats": "export",
    "batchserver_rate": "rating",
    "batchserver_start_batch_rating": "rating",
    "batchserver_batch_scores": "rating",
}


@hookspec
def batchserver_transform_line(
    body: dict[str, Any], custom_id: str, line: int, batch: Any, settings: dict[str, Any]
) -> dict[str, Any] | None:
    """Schema: validate or transform one input line's ``body`` before it runs.

    Called only for batches that name this plugin in their metadata key
    ``batchserver_plugins`` (comma-separated ids, applied in that order, each receiving the
    previous one's body). Return the new body, or None to keep it unchanged (the line is not
    this plugin's). Raise ``LineRejected(message)`` to make this line an error line. The body
    must keep its ``model``. ``batch`` is a ``BatchInfo``.
    """


@hookspec(firstresult=True)
def batchserver_parse_answer(
    text: str, body: dict[str, Any], custom_id: str, batch: Any, settings: dict[str, Any]
) -> dict[str, Any] | None:
    """Parser: structured fields from a raw answer ``text``, or None if it is not yours.

    The first non-None result wins. ``body`` is the request body the answer came from (may be
    empty), ``batch`` a ``BatchInfo`` (empty when the caller has no batch).
    """


@hookspec
def batchserver_render_component(
    component: str, data: dict[str, Any], settings: dict[str, Any]
) -> list[Any] | None:
    """UI: widgets (``plugins.ui``) of the component ``component`` the manifest declares.

    ``data`` comes from the caller (e.g. ``{"batch_id": …}``); treat it as untrusted. The
    server renders the widgets, escaping every string.
    """


@hookspec
def batchserver_render_page(
    page: str, request: Any, settings: dict[str, Any]
) -> list[Any] | Any | None:
    """UI: the widgets of a page the manifest declares, or a ``Redirect``.

    ``request`` is a ``PageRequest`` (staff only, CSRF checked). Served at
    ``/plugins/<plugin id>/<page>`` inside the console.
    """


@hookspec
def batchserver_export_formats(settings: dict[str, Any]) -> list[Any] | None:
    """Export: the ``ExportFormat`` values this plugin contributes (asked once per reload)."""


@hookspec
def batchserver_rate(
    answer: str,
    prompt: str,
    reference: str | None,
    body: dict[str, Any],
    settings: dict[str, Any],
) -> list[Any] | None:
    """Rating: ``Score`` values for one answer (all plugins' scores are returned together)."""


@hookspec
def batchserver_start_batch_rating(
    batch_id: str, options: dict[str, Any], settings: dict[str, Any]
) -> Any:
    """Rating: start an asynchronous rating of a whole batch; return a ``RatingJob``."""


@hookspec
def batchserver_batch_scores(
    batch_id: str, settings: dict[str, Any]
) -> dict[str, list[Any]] | None:
    """Rating: scores of asynchronous ratings of a batch so far, by ``custom_id``."""
