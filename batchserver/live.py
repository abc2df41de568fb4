"""Live settings: the settings an operator may change while the server runs.

``get(name)`` answers the value stored in the database (``RuntimeSetting``, changed on
/settings) if there is one, else ``django.conf.settings``. Each process keeps the stored values
for ``LIVE_SETTINGS_SECONDS`` (2 s by default), so a change reaches every web and worker process
within that delay, without a restart and without a query per read. ``change`` validates a new
value (a wrong one raises ``Invalid`` naming the setting; the old value stays) and records who
changed what in the audit trail.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction

from batchserver import audit, net
from batchserver.errors import Invalid
from batchserver.models import RuntimeSetting

_RATE = re.compile(r"|off|0|\d+/(s|sec|second|m|min|minute|h|hour|d|day)")
_WINDOW = re.compile(r"[1-9]\d*[hd]")


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _float(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            raise ValueError("must be a number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def _rate(text: str) -> str:
    value = str(text).strip()
    if not _RATE.fullmatch(value):
        raise ValueError("use <count>/<sec|min|hour|day>, e.g. 600/min, or off")
    return value


def _windows(text: str | list[str]) -> list[str]:
    items = text if isinstance(text, list) else str(text).split(",")
    windows = [w.strip() for w in items if w.strip()]
    if not windows:
        raise ValueError("needs at least one window, e.g. 24h")
    bad = [w for w in windows if not _WINDOW.fullmatch(w)]
    if bad:
        raise ValueError(f"{', '.join(bad)}: a window is hours or days, e.g. 24h or 7d")
    return windows


def _webhook(text: str) -> str:
    url = str(text).strip()
    if not url:
        return ""
    if not url.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL, or empty")
    try:
        net.check_url(url)
    except net.UnsafeURL as exc:
        raise ValueError(f"not allowed: {exc}") from None
    return url


@dataclass(frozen=True)
class Editable:
    """A setting /settings may change: its parser (raises ValueError) and what it does."""

    name: str
    parse: Callable[[Any], Any]
    help: str
    unit: str = ""


EDITABLE: tuple[Editable, ...] = (
    Editable("API_THROTTLE_RATE", _rate, "requests per API key, e.g. 600/min; off: no limit"),
    Editable("BATCH_CHUNK_SIZE", _int(1, 100_000), "requests per chunk (new batches)", "rows"),
    Editable("BATCH_LEASE_SECONDS", _int(10, 86_400), "lease of a claimed chunk", "s"),
    Editable("WORKER_HEARTBEAT_SECONDS", _float(0.5, 600), "worker heartbeat interval", "s"),
    Editable("BATCH_COMPLETION_WINDOWS", _windows, "windows clients may ask for, comma-separated"),
    Editable("BATCH_MAX_FILE_BYTES", _int(1, 2**40), "largest upload", "bytes"),
    Editable("BATCH_MAX_LINES", _int(1, 10_000_000), "most lines in a batch input", "lines"),
    Editable(
        "BATCH_RETENTION_DAYS",
        _int(0, 36_500),
        "purge prompts and answers of batches older than this; 0: keep forever",
        "days",
    ),
    Editable(
        "DEFAULT_WEBHOOK_URL", _webhook, "webhook of batches whose key names none; empty: none"
    ),
)
BY_NAME = {e.name: e for e in EDITABLE}

_lock = threading.Lock()
_cache: dict[str, Any] = {}
_read_at = float("-inf")


def stored() -> dict[str, Any]:
    """The stored values, re-read at most every ``LIVE_SETTINGS_SECONDS`` in this process."""
    global _cache, _read_at
    ttl = float(getattr(settings, "LIVE_SETTINGS_SECONDS", 2.0))
    if time.monotonic() - _read_at < ttl:
        return _cache
    with _lock:
        try:
            rows = dict(RuntimeSetting.objects.values_list("name", "value"))
        except (DatabaseError, RuntimeError):
            # No table yet (migrations), the database is away, or no database access is allowed
            # here (a schema built at import in tests): the last values (or the environment's).
            return _cache
        _cache, _read_at = rows, time.monotonic()
    return _cache


def forget() -> None:
    """Drop this process's copy, so the next ``get`` reads the database (after a change)."""
    global _read_at
    _read_at = float("-inf")


def get(name: str) -> Any:
    """The effective value of a setting: stored on /settings, else from the settings module."""
    values = stored()
    if name in values:
        return values[name]
    return getattr(settings, name)


def source_of(name: str) -> str:
    return "database" if name in stored() else ""


def change(name: str, raw: Any, actor: Any) -> Any:
    """Validate and store a new value; a wrong one raises ``Invalid`` and changes nothing."""
    editable = BY_NAME.get(name)
    if editable is None:
        raise Invalid(f"{name} cannot be changed while the server runs.", param=name)
    try:
        value = editable.parse(raw)
    except ValueError as exc:
        raise Invalid(f"{name}: {exc}.", param=name) from None
    _check_together(name, value)
    old = get(name)
    with transaction.atomic():
        RuntimeSetting.objects.update_or_create(
            name=name, defaults={"value": value, "updated_by": audit.actor_of(actor)}
        )
        audit.record(actor, "setting.change", name, f"{old!r} -> {value!r}")
    forget()
    return value


def reset(name: str, actor: Any) -> None:
    """Forget the stored value: the environment (or default) applies again."""
    with transaction.atomic():
        deleted, _ = RuntimeSetting.objects.filter(name=name).delete()
        if deleted:
            audit.record(actor, "setting.reset", name, f"back to {getattr(settings, name)!r}")
    forget()


def _check_together(name: str, value: Any) -> None:
    """Lease and heartbeat only make sense together: a live worker must renew in time."""
    lease = value if name == "BATCH_LEASE_SECONDS" else get("BATCH_LEASE_SECONDS")
    beat = value if name == "WORKER_HEARTBEAT_SECONDS" else get("WORKER_HEARTBEAT_SECONDS")
    if name in ("BATCH_LEASE_SECONDS", "WORKER_HEARTBEAT_SECONDS") and beat * 3 > lease:
        raise Invalid(
            f"{name}: the lease ({lease} s) must be at least three heartbeats ({beat} s each), "
            "or live workers would lose their chunks.",
            param=name,
        )
