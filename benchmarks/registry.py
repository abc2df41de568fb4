"""The models a benchmark may run: the registry's active chat models, through its services."""

from __future__ import annotations

from models_registry.services import list_active_models


def active_chat_models() -> list[str]:
    """Names of the active models that answer chat requests, in name order."""
    return list_active_models(kind="generate")
