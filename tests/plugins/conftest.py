"""Fixtures of the plugin tests: a fresh runtime per test, states re-read on every call."""

from __future__ import annotations

import pytest

from plugins import guard, runtime


@pytest.fixture(autouse=True)
def _fresh_plugins(settings, tmp_path):
    settings.PLUGINS_CHECK_SECONDS = 0
    settings.PLUGINS_DIR = tmp_path / "local-plugins"
    settings.PLUGINS_MAX_CONSECUTIVE_FAILURES = 3
    runtime.reset()
    guard.reset()
    yield
    runtime.reset()
    guard.reset()
