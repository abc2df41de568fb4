"""Helpers shared by the tests of the three shipped plugins."""

from __future__ import annotations

from plugins import services
from tests.conftest import csrf_token


def enable(*plugin_ids: str) -> None:
    for plugin_id in plugin_ids:
        services.enable(plugin_id)


def post_page(client, url: str, data: dict, files: dict | None = None):
    payload = {**data, "csrfmiddlewaretoken": csrf_token(client), **(files or {})}
    return client.post(url, payload)
