"""Reads and writes of the registry that other apps call."""

from __future__ import annotations

from models_registry.models import Model


def find_active_model(name: str) -> Model | None:
    """The active model a batch line names, or None."""
    return Model.objects.active().filter(name=name).first()


def register_model(name: str, path: str = "", kind: str = Model.Kind.GENERATE, **settings) -> Model:
    """Create or update a registry entry (used by set-up commands and tests)."""
    model, _ = Model.objects.update_or_create(
        name=name, defaults={"path": path, "kind": kind, "is_active": True, **settings}
    )
    return model
