"""The effective configuration: every setting, its value (secrets masked), where it came from."""

from __future__ import annotations

import functools
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import django
import environ
from django.conf import settings

from batchserver import live

SECRET = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL|(^|_)KEY($|_)|DATABASE", re.I)
URL_PASSWORD = re.compile(r"(//[^:/@]*:)[^@]*@")
# Settings read from a variable of another name (batchserver/settings.py).
ALIASES = {
    "DATA_DIR": "BATCHSERVER_DATA_DIR",
    "MODELS_DIR": "BATCHSERVER_MODELS_DIR",
    "PLUGINS_DIR": "BATCHSERVER_PLUGINS_DIR",
    "DATABASES": "DATABASE_URL",
}
MASK = "•••••• (set, hidden)"


@dataclass(frozen=True)
class Row:
    name: str
    value: str
    source: str  # default, .env, environment, database
    variable: str = ""


def mask(name: str, value: Any) -> str:
    """The value as text; secrets hidden, and passwords inside URLs too."""
    if SECRET.search(name) and value not in ("", None, [], {}):
        return MASK
    text = repr(value) if not isinstance(value, str) else value
    return URL_PASSWORD.sub(r"\1•••@", text)[:500]


@functools.cache
def dotenv_names() -> frozenset[str]:
    """Variables the ``.env`` file sets (read once per process)."""
    path = Path(settings.BASE_DIR) / ".env"
    if not path.exists():
        return frozenset()
    names = set()
    for line in path.read_text(errors="replace").splitlines():
        match = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if match:
            names.add(match.group(1))
    return frozenset(names)


def source(name: str) -> tuple[str, str]:
    """(where the value came from, the variable that set it)."""
    if live.source_of(name):
        return "database", ""
    variable = ALIASES.get(name, name)
    if variable in dotenv_names():
        return ".env", variable
    if variable in environ.Env.ENVIRON:
        return "environment", variable
    return "default", ""


def rows() -> list[Row]:
    """Every upper-case setting, in name order."""
    out = []
    for name in sorted(n for n in dir(settings) if n.isupper()):
        value = live.get(name) if name in live.BY_NAME else getattr(settings, name)
        where, variable = source(name)
        out.append(Row(name, mask(name, value), where, variable))
    return out


@functools.cache
def versions() -> dict[str, str]:
    """Python, Django and the engine's packages (read from metadata: nothing heavy imported)."""
    found = {"Python": platform.python_version(), "Django": django.get_version()}
    for package in ("vllm", "torch", "transformers", "django-q2", "djangorestframework"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found
