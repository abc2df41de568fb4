"""Batch Submitter: submit a batch from a web form, no code (a UI plugin of batchserver)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from batchserver.errors import DomainError
from batchserver_batch_submitter.prompts import (
    MODES,
    PromptError,
    Sampling,
    build_lines,
    preview,
    prompts_from_csv,
    prompts_from_lines,
)
from plugins.sdk import PageRequest, hookimpl, host, ui

PLUGIN_ID = "batch-submitter"
manifest = {
    "id": PLUGIN_ID,
    "name": "Batch Submitter",
    "version": "1.0.0",
    "description": "Submit a batch from a web form: pick a model, paste or upload prompts (or a "
    "CSV with a prompt template), set sampling, preview the JSONL, submit.",
    "author": "batchserver",
    "min_server_version": "0.1.0",
    "hooks": ["ui"],
    "settings": {
        "type": "object",
        "properties": {
            "default_max_tokens": {"type": "integer", "minimum": 1, "default": 256},
            "default_temperature": {"type": "number", "minimum": 0, "maximum": 2, "default": 0.7},
            "max_prompts": {"type": "integer", "minimum": 1, "default": 50000},
            "preview_lines": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5},
        },
    },
    "pages": [{"name": "submit", "title": "Submit a batch"}],
    "components": [
        {
            "name": "recent",
            "title": "Recent submissions",
            "description": "The last batches submitted from the form, with links to them.",
        }
    ],
}


def _number(text: str, kind: type, name: str) -> Any:
    if text in ("", None):
        return None
    try:
        return kind(text)
    except ValueError:
        raise PromptError(f"{name} must be a number.") from None


def _form(request: PageRequest, settings: dict[str, Any]) -> ui.Form:
    models = host.active_models()
    get = request.get
    return ui.Form(
        id="batch-submitter-form",
        fields=[
            ui.Field(
                "model", "Model", "select", get("model"), [(m, m) for m in models], required=True
            ),
            ui.Field("mode", "Prompts are", "select", get("mode", "lines"), MODES),
            ui.Field("prompts", "Prompts (or CSV text)", "textarea", get("prompts")),
            ui.Field("upload", "…or upload a file (.txt, .csv)", "file"),
            ui.Field(
                "template",
                "Prompt template (CSV)",
                "text",
                get("template"),
                help="e.g. Summarise in one line: {text} — names CSV columns in braces",
            ),
            ui.Field("system", "System prompt (optional)", "textarea", get("system")),
            ui.Field(
                "temperature",
                "Temperature",
                "number",
                get("temperature", str(settings["default_temperature"])),
            ),
            ui.Field(
                "max_tokens",
                "Max tokens",
                "number",
                get("max_tokens", str(settings["default_max_tokens"])),
                step="1",
            ),
            ui.Field("top_p", "Top p (optional)", "number", get("top_p")),
        ],
        buttons=(("preview", "Preview JSONL"), ("submit", "Submit batch")),
    )


def _lines(request: PageRequest, settings: dict[str, Any]) -> list[dict[str, Any]]:
    upload = request.files.get("upload")
    text = upload.read().decode("utf-8-sig") if upload else request.get("prompts")
    if request.get("mode") == "csv":
        prompts = prompts_from_csv(text, request.get("template"))
    else:
        prompts = prompts_from_lines(text)
    if len(prompts) > settings["max_prompts"]:
        raise PromptError(f"{len(prompts)} prompts; at most {settings['max_prompts']} per batch.")
    sampling = Sampling(
        temperature=_number(request.get("temperature"), float, "Temperature"),
        max_tokens=_number(request.get("max_tokens"), int, "Max tokens"),
        top_p=_number(request.get("top_p"), float, "Top p"),
    )
    return build_lines(
        prompts, model=request.get("model"), system=request.get("system"), sampling=sampling
    )


def _submit(lines: list[dict[str, Any]], request: PageRequest) -> list[Any]:
    metadata = {"source": PLUGIN_ID, "submitted_by": request.user[:512]}
    batch = host.submit_batch(lines, filename="batch-submitter.jsonl", metadata=metadata)
    host.save_record(
        PLUGIN_ID,
        f"batch:{batch.id}",
        {
            "batch_id": batch.id,
            "model": lines[0]["body"]["model"],
            "prompts": len(lines),
            "by": request.user,
            "at": timezone.now().isoformat(timespec="seconds"),
        },
    )
    return [
        ui.Notice(f"Batch {batch.id} submitted with {len(lines)} requests.", "success"),
        ui.Link(f"Open batch {batch.id}", host.batch_page_url(batch.id)),
    ]


@hookimpl
def batchserver_render_page(page: str, request: PageRequest, settings: dict[str, Any]):
    widgets: list[Any] = []
    action = request.form.get("action")
    if request.method == "POST" and action in ("preview", "submit"):
        try:
            lines = _lines(request, settings)
            if action == "submit":
                widgets += _submit(lines, request)
            else:
                widgets += [
                    ui.Notice(f"{len(lines)} requests; the first ones as JSONL:", "info"),
                    ui.Code(preview(lines, settings["preview_lines"]), id="jsonl-preview"),
                ]
        except (PromptError, DomainError) as exc:
            widgets.append(ui.Notice(getattr(exc, "message", str(exc)), "error"))
    if not host.active_models():
        widgets.append(ui.Notice("No model is registered: add one first.", "warning"))
    return [*widgets, _form(request, settings)]


@hookimpl
def batchserver_render_component(component: str, data: dict[str, Any]):
    rows = [
        [
            ui.Link(value["batch_id"], host.batch_page_url(value["batch_id"])),
            value.get("model"),
            value.get("prompts"),
            value.get("by"),
            value.get("at"),
        ]
        for _, value in host.recent_records(PLUGIN_ID, "batch:", limit=int(data.get("limit", 10)))
    ]
    return [
        ui.Table(
            ["Batch", "Model", "Requests", "By", "When"], rows, empty="Nothing submitted yet."
        ),
        ui.Link("Submit a batch", f"/plugins/{PLUGIN_ID}/submit"),
    ]
