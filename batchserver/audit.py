"""The audit trail of operator actions: who did what to which object, and when.

Every control of the console (batch pause/resume/priority/cancel, worker restart, reset of stuck
work, webhook replay, a settings change, a retention purge) writes one ``AuditEntry`` through
``record``; the admin and the hub list them.
"""

from __future__ import annotations

from typing import Any

from batchserver.models import AuditEntry


def actor_of(user: Any) -> str:
    """The name recorded for a request's user ("system" when no one is logged in)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return "system"
    return str(getattr(user, "get_username", lambda: "")() or "system")


def record(
    actor: Any, action: str, target: str = "", detail: str = "", ok: bool = True
) -> AuditEntry:
    """Write one entry; ``actor`` is a user, a name, or None for the system."""
    name = actor if isinstance(actor, str) else actor_of(actor)
    return AuditEntry.objects.create(
        actor=name[:150], action=action[:50], target=target[:200], detail=detail, ok=ok
    )
