"""A plugin's manifest: who it is, which server versions it fits, its hooks, settings and UI.

A plugin module (or object) carries its manifest as the attribute ``manifest``: a dict (or a
``Manifest``). Anything wrong with it is a refusal with a reason a person can act on, never an
exception that reaches the rest of the server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import jsonschema
from packaging.version import InvalidVersion, Version

from plugins.types import HOOK_TYPES

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KNOWN_KEYS = {
    "id",
    "name",
    "version",
    "description",
    "author",
    "min_server_version",
    "max_server_version",
    "hooks",
    "settings",
    "components",
    "pages",
    "time_budget_seconds",
}


def server_version() -> str:
    try:
        return metadata.version("batchserver")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "0.1.0"


class ManifestError(ValueError):
    """The manifest is not usable; the message says what to fix."""


@dataclass(frozen=True)
class Declared:
    """A UI component or page the manifest declares."""

    name: str
    title: str
    description: str = ""
    sample_data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "sample_data": self.sample_data,
        }


@dataclass(frozen=True)
class Manifest:
    id: str
    name: str
    version: str
    description: str = ""
    author: str = ""
    min_server_version: str = ""
    max_server_version: str = ""
    hooks: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)  # a JSON Schema of type object
    components: tuple[Declared, ...] = ()
    pages: tuple[Declared, ...] = ()
    # Seconds per hook call: one number for every hook, or one per hook type ({"ui": 60}).
    time_budget_seconds: float | dict[str, float] | None = None

    def budget_for(self, hook_type: str) -> float | None:
        budget = self.time_budget_seconds
        return budget.get(hook_type) if isinstance(budget, dict) else budget

    @property
    def required_settings(self) -> list[str]:
        return list(self.settings.get("required", []))

    def default_settings(self) -> dict[str, Any]:
        props = self.settings.get("properties", {})
        return {k: v["default"] for k, v in props.items() if isinstance(v, dict) and "default" in v}

    def fits(self, version: str) -> str | None:
        """None if ``version`` of the server is within the range, else why not."""
        ours = Version(version)
        if self.min_server_version and ours < Version(self.min_server_version):
            return f"needs batchserver >= {self.min_server_version}; this server is {version}"
        if self.max_server_version and ours > Version(self.max_server_version):
            return f"needs batchserver <= {self.max_server_version}; this server is {version}"
        return None


def _text(raw: dict[str, Any], key: str, required: bool = False) -> str:
    value = raw.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ManifestError(f"'{key}' must be a string")
    if required and not value.strip():
        raise ManifestError(f"'{key}' is required")
    return value


RESERVED_PAGES = {"enable", "disable"}


def _declared(raw: Any, key: str) -> tuple[Declared, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise ManifestError(f"'{key}' must be a list")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not NAME_PATTERN.match(str(item.get("name", ""))):
            raise ManifestError(f"each of '{key}' needs a 'name' (lowercase letters, digits, -)")
        if key == "pages" and item["name"] in RESERVED_PAGES:
            raise ManifestError(f"page name {item['name']!r} is reserved")
        sample = item.get("sample_data", {})
        if not isinstance(sample, dict):
            raise ManifestError(f"'{key}.{item['name']}.sample_data' must be an object")
        out.append(
            Declared(
                item["name"],
                str(item.get("title") or item["name"]),
                str(item.get("description", "")),
                sample,
            )
        )
    return tuple(out)


def _settings_schema(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or raw.get("type", "object") != "object":
        raise ManifestError("'settings' must be a JSON Schema of type 'object'")
    try:
        jsonschema.Draft202012Validator.check_schema(raw)
    except jsonschema.SchemaError as exc:
        raise ManifestError(f"'settings' is not a valid JSON Schema: {exc.message}") from None
    required = raw.get("required", [])
    unknown = [r for r in required if r not in raw.get("properties", {})]
    if unknown:
        raise ManifestError(f"'settings.required' names unknown settings: {', '.join(unknown)}")
    return dict(raw)


def _version(raw: dict[str, Any], key: str, required: bool = False) -> str:
    value = _text(raw, key, required)
    if value:
        try:
            Version(value)
        except InvalidVersion:
            raise ManifestError(f"'{key}' is not a version: {value!r}") from None
    return value


def parse(raw: Any) -> Manifest:
    """A ``Manifest`` from what a plugin declares; ``ManifestError`` says what is wrong."""
    if isinstance(raw, Manifest):
        return raw
    if not isinstance(raw, dict):
        raise ManifestError("the plugin has no 'manifest' dict")
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise ManifestError(f"unknown manifest keys: {', '.join(unknown)}")
    plugin_id = _text(raw, "id", required=True)
    if not ID_PATTERN.match(plugin_id):
        raise ManifestError(f"'id' {plugin_id!r}: use lowercase letters, digits, - and _")
    hooks = raw.get("hooks", [])
    if not isinstance(hooks, (list, tuple)) or any(h not in HOOK_TYPES for h in hooks):
        raise ManifestError(f"'hooks' must list hook types among {', '.join(HOOK_TYPES)}")
    budget = raw.get("time_budget_seconds")
    values = list(budget.values()) if isinstance(budget, dict) else [budget]
    if budget is not None and (
        any(not isinstance(v, (int, float)) or v <= 0 for v in values)
        or (isinstance(budget, dict) and set(budget) - set(HOOK_TYPES))
    ):
        raise ManifestError("'time_budget_seconds' must be a positive number, or one per hook type")
    return Manifest(
        id=plugin_id,
        name=_text(raw, "name", required=True),
        version=_version(raw, "version", required=True),
        description=_text(raw, "description"),
        author=_text(raw, "author"),
        min_server_version=_version(raw, "min_server_version"),
        max_server_version=_version(raw, "max_server_version"),
        hooks=tuple(dict.fromkeys(hooks)),
        settings=_settings_schema(raw.get("settings")),
        components=_declared(raw.get("components"), "components"),
        pages=_declared(raw.get("pages"), "pages"),
        time_budget_seconds=(
            {k: float(v) for k, v in budget.items()}
            if isinstance(budget, dict)
            else (float(budget) if budget is not None else None)
        ),
    )


def effective_settings(manifest: Manifest, stored: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest's defaults overlaid with what an operator saved."""
    return {**manifest.default_settings(), **(stored or {})}


def settings_problem(manifest: Manifest, values: dict[str, Any]) -> tuple[str, str] | None:
    """(code, message) when ``values`` miss a required setting or break the schema."""
    missing = [name for name in manifest.required_settings if values.get(name) in (None, "")]
    if missing:
        return (
            "missing_settings",
            f"required setting{'s' if len(missing) > 1 else ''} not set: {', '.join(missing)}",
        )
    if manifest.settings:
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(manifest.settings).iter_errors(values)
        )
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path) or "settings"
            return "invalid_settings", f"{where}: {error.message}"
    return None
