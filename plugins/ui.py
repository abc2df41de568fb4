"""Widgets: the only way a plugin puts something on a page.

A UI hook returns a list of these values; the server turns them into HTML itself, escaping
every string a plugin or its data supplied. A plugin never hands over HTML, a template or a
script, so nothing it shows can inject markup or run code in an operator's browser. Links go
only to paths on this server or to http(s) URLs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

LEVELS = ("info", "success", "warning", "error")


def safe_href(href: str) -> str | None:
    """``href`` if it is a path on this server or an http(s) URL, else None."""
    if not isinstance(href, str):
        return None
    if href.startswith("/") and not href.startswith("//"):
        return href
    if href.lower().startswith(("http://", "https://")):
        return href
    return None


class Widget:
    def html(self, csrf_token: str) -> SafeString:  # pragma: no cover - every widget overrides
        raise NotImplementedError


@dataclass(frozen=True)
class Heading(Widget):
    text: str

    def html(self, csrf_token: str) -> SafeString:
        return format_html('<h3 class="plugin-heading">{}</h3>', self.text)


@dataclass(frozen=True)
class Text(Widget):
    text: str

    def html(self, csrf_token: str) -> SafeString:
        return format_html('<p class="plugin-text">{}</p>', self.text)


@dataclass(frozen=True)
class Notice(Widget):
    text: str
    level: str = "info"

    def html(self, csrf_token: str) -> SafeString:
        level = self.level if self.level in LEVELS else "info"
        role = "alert" if level == "error" else "status"
        return format_html(
            '<p class="plugin-notice plugin-notice-{}" role="{}">{}</p>', level, role, self.text
        )


@dataclass(frozen=True)
class Link(Widget):
    text: str
    href: str

    def html(self, csrf_token: str) -> SafeString:
        href = safe_href(self.href)
        if href is None:
            return format_html("<span>{}</span>", self.text)
        return format_html('<a class="plugin-link" href="{}">{}</a>', href, self.text)


@dataclass(frozen=True)
class Code(Widget):
    """Preformatted text, e.g. a preview of JSONL."""

    text: str
    id: str = ""

    def html(self, csrf_token: str) -> SafeString:
        return format_html(
            '<pre class="plugin-code"{}><code>{}</code></pre>', _id_attr(self.id), self.text
        )


@dataclass(frozen=True)
class Bar(Widget):
    """A value between 0 and ``maximum`` drawn as a small bar, with its number."""

    value: float | None
    maximum: float = 1.0
    label: str = ""

    def html(self, csrf_token: str) -> SafeString:
        if self.value is None:
            return format_html('<span class="plugin-bar-none">{}</span>', self.label or "–")
        share = max(0.0, min(1.0, float(self.value) / (self.maximum or 1.0)))
        label = self.label or f"{self.value:.2f}"
        return format_html(
            '<span class="plugin-bar" role="meter" aria-valuenow="{}" aria-valuemin="0" '
            'aria-valuemax="{}"><span class="plugin-bar-fill" style="width: {}%"></span>'
            '<span class="plugin-bar-label">{}</span></span>',
            self.value,
            self.maximum,
            round(share * 100),
            label,
        )


@dataclass(frozen=True)
class Table(Widget):
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    id: str = ""
    empty: str = "Nothing to show."

    def html(self, csrf_token: str) -> SafeString:
        if not self.rows:
            return format_html('<p class="plugin-empty"{}>{}</p>', _id_attr(self.id), self.empty)
        head = format_html_join("", "<th scope='col'>{}</th>", ((c,) for c in self.columns))
        body = format_html_join(
            "",
            "<tr>{}</tr>",
            (
                (format_html_join("", "<td>{}</td>", ((cell_html(c, csrf_token),) for c in row)),)
                for row in self.rows
            ),
        )
        return format_html(
            '<div class="console-scroll"><table class="plugin-table"{}><thead><tr>{}</tr>'
            "</thead><tbody>{}</tbody></table></div>",
            _id_attr(self.id),
            head,
            body,
        )


@dataclass(frozen=True)
class KeyValues(Widget):
    items: Sequence[tuple[str, Any]]

    def html(self, csrf_token: str) -> SafeString:
        return format_html(
            '<dl class="ops-dl plugin-kv">{}</dl>',
            format_html_join(
                "", "<dt>{}</dt><dd>{}</dd>", ((k, cell_html(v, csrf_token)) for k, v in self.items)
            ),
        )


@dataclass(frozen=True)
class Field:
    """One form input. ``kind``: text, textarea, number, select, file, checkbox, hidden."""

    name: str
    label: str = ""
    kind: str = "text"
    value: Any = ""
    choices: Sequence[tuple[str, str]] = ()
    help: str = ""
    required: bool = False
    step: str = "any"

    def html(self) -> SafeString:
        field_id = f"id_{self.name}"
        control = self._control(field_id)
        if self.kind == "hidden":
            return control
        help_html = format_html('<span class="help">{}</span>', self.help) if self.help else ""
        return format_html(
            '<div class="plugin-field plugin-field-{}"><label for="{}">{}</label>{}{}</div>',
            self.kind,
            field_id,
            self.label or self.name,
            control,
            help_html,
        )

    def _control(self, field_id: str) -> SafeString:
        required = mark_safe(" required") if self.required else ""
        value = "" if self.value is None else self.value
        if self.kind == "textarea":
            return format_html(
                '<textarea id="{}" name="{}" rows="8" cols="80"{}>{}</textarea>',
                field_id,
                self.name,
                required,
                value,
            )
        if self.kind == "select":
            options = format_html_join(
                "",
                '<option value="{}"{}>{}</option>',
                (
                    (v, mark_safe(" selected") if str(v) == str(value) else "", t)
                    for v, t in self.choices
                ),
            )
            return format_html(
                '<select id="{}" name="{}"{}>{}</select>', field_id, self.name, required, options
            )
        if self.kind == "checkbox":
            checked = mark_safe(" checked") if value else ""
            return format_html(
                '<input type="checkbox" id="{}" name="{}" value="1"{}>',
                field_id,
                self.name,
                checked,
            )
        if self.kind == "file":
            return format_html(
                '<input type="file" id="{}" name="{}"{}>', field_id, self.name, required
            )
        kind = self.kind if self.kind in ("text", "number", "hidden") else "text"
        step = format_html(' step="{}"', self.step) if kind == "number" else ""
        return format_html(
            '<input type="{}" id="{}" name="{}" value="{}"{}{}>',
            kind,
            field_id,
            self.name,
            value,
            step,
            required,
        )


@dataclass(frozen=True)
class Form(Widget):
    """A form posted back to the same page; each button sends ``action=<its value>``."""

    fields: Sequence[Field]
    buttons: Sequence[tuple[str, str]] = (("submit", "Submit"),)
    id: str = "plugin-form"

    def html(self, csrf_token: str) -> SafeString:
        multipart = any(f.kind == "file" for f in self.fields)
        enctype = mark_safe(' enctype="multipart/form-data"') if multipart else ""
        fields = format_html_join("", "{}", ((f.html(),) for f in self.fields))
        buttons = format_html_join(
            " ",
            '<button type="submit" name="action" value="{}" class="button">{}</button>',
            self.buttons,
        )
        token = format_html(
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">', csrf_token
        )
        return format_html(
            '<form method="post" class="plugin-form"{}{}>{}{}<div class="submit-row">{}</div>'
            "</form>",
            _id_attr(self.id),
            enctype,
            token,
            fields,
            buttons,
        )


@dataclass(frozen=True)
class Section(Widget):
    """Widgets grouped under a title."""

    title: str
    children: Sequence[Widget] = field(default_factory=tuple)

    def html(self, csrf_token: str) -> SafeString:
        return format_html(
            '<section class="module plugin-section"><h2>{}</h2>{}</section>',
            self.title,
            render(self.children, csrf_token),
        )


def _id_attr(value: str) -> SafeString | str:
    return format_html(' id="{}"', value) if value else ""


def cell_html(value: Any, csrf_token: str = "") -> SafeString | str:
    """A table cell or value: a widget renders itself; anything else is escaped text."""
    if isinstance(value, Widget):
        return value.html(csrf_token)
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def render(widgets: Iterable[Any], csrf_token: str = "") -> SafeString:
    """HTML of a plugin's widgets; a value that is not a widget is shown as escaped text."""
    parts = []
    for widget in widgets or ():
        if isinstance(widget, Widget):
            parts.append(widget.html(csrf_token))
        else:
            parts.append(format_html('<p class="plugin-text">{}</p>', str(widget)))
    return format_html_join("\n", "{}", ((p,) for p in parts))
