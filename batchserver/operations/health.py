"""Health of the server as load balancers ask for it: the database, the broker, the workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from jobs import selectors


@dataclass
class Health:
    """Each check's verdict and a word about it; ``healthy`` decides 200 or 503."""

    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return all(c["ok"] for c in self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        return {"status": "ok" if self.healthy else "unavailable", "checks": self.checks}


def _database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "detail": connection.vendor}
    except Exception as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:200]}


def _broker() -> dict[str, Any]:
    try:
        from django_q.brokers import get_broker

        broker = get_broker()
        ok = bool(broker.ping())
        size = broker.queue_size()  # the ORM broker's ping is always True: this reads its table
        return {"ok": ok, "detail": f"{type(broker).__name__}, {size} task(s) queued"}
    except Exception as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:200]}


def _workers() -> dict[str, Any]:
    """Unhealthy only when work waits and no worker is alive to take it."""
    try:
        figures = selectors.totals()
    except Exception as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:200]}
    waiting = figures["queued_batches"] + figures["running_batches"]
    alive = figures["workers_alive"]
    return {
        "ok": alive > 0 or waiting == 0,
        "detail": f"{alive} alive, {waiting} batch(es) waiting or running",
        "alive": alive,
        "waiting_batches": waiting,
    }


def check() -> Health:
    """Run every check (the database first: the others need it)."""
    health = Health({"database": _database()})
    if not health.healthy:
        health.checks["broker"] = {"ok": False, "detail": "not checked: no database"}
        health.checks["workers"] = {"ok": False, "detail": "not checked: no database"}
        return health
    health.checks["broker"] = _broker()
    health.checks["workers"] = _workers()
    return health
