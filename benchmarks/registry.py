"""The one read of the model registry that its services do not offer yet: the names to offer.

``models_registry.services`` has ``find_active_model(name)`` but no list; until it offers one
(asked for: ``models_registry.services.active_models(kind=None) -> list[Model]``), the run form
reads the active chat models here and nowhere else in this app.
"""

from __future__ import annotations

from models_registry.models import Model


def active_chat_models() -> list[str]:
    """Names of the active models that answer chat requests, in name order."""
    return list(
        Model.objects.active().filter(kind=Model.Kind.GENERATE).values_list("name", flat=True)
    )
