"""The plugins this process has loaded, kept current with the database at little cost.

Each process (gunicorn worker, qcluster worker, management command) holds one ``Runtime``:
every plugin found, its status, and for the enabled ones a pluggy ``PluginManager`` and the
implementations of each hook in call order. ``current()`` answers from memory and reads the
one-row ``Generation`` token at most every ``PLUGINS_CHECK_SECONDS``; a changed token (an
operator enabled, disabled or configured a plugin, in any process) rebuilds the runtime. So
enable/disable takes effect everywhere within those seconds, without a restart, and a hook
call never costs a query. With ``DEBUG`` on, the same check also notices edited files of local
plugins and re-imports them (hot reload, for development only).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from plugins import discovery, guard, hookspecs
from plugins.discovery import Found
from plugins.manifest import Manifest, effective_settings, settings_problem
from plugins.models import Generation, PluginState

logger = logging.getLogger(__name__)

ENABLED, DISABLED, AUTO_DISABLED, REFUSED = "enabled", "disabled", "auto_disabled", "refused"


@dataclass
class Plugin:
    """One found plugin in this process: what it is, its status, its effective settings."""

    found: Found
    status: str = DISABLED
    reason_code: str = ""
    reason: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    disabled_reason: str = ""
    budgets: dict[str, float] = field(default_factory=dict)  # per hook, worked out once

    @property
    def id(self) -> str:
        return self.found.id

    @property
    def manifest(self) -> Manifest | None:
        return self.found.manifest

    @property
    def enabled(self) -> bool:
        return self.status == ENABLED

    def budget(self, hook: str) -> float:
        """Seconds a call of ``hook`` may take: the manifest's own budget, else the server's."""
        known = self.budgets.get(hook)
        if known is None:
            own = (
                self.manifest.budget_for(hookspecs.HOOK_TYPE.get(hook, ""))
                if self.manifest
                else None
            )
            known = self.budgets[hook] = float(own or settings.PLUGINS_CALL_BUDGET_SECONDS)
        return known


@dataclass
class Runtime:
    token: str
    plugins: list[Plugin]  # every plugin found, refused ones included, sorted by id
    calls: dict[str, list[tuple[Plugin, Any]]]  # hook name -> (plugin, HookImpl), call order
    local_files: dict[str, float] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)  # per-generation results (exports)

    def get(self, plugin_id: str) -> Plugin | None:
        """The plugin with this id (a loadable one before a refused duplicate), or None."""
        same = [p for p in self.plugins if p.id == plugin_id]
        return next((p for p in same if p.found.loadable), same[0] if same else None)

    def enabled(self, plugin_id: str) -> Plugin | None:
        plugin = self.get(plugin_id)
        return plugin if plugin is not None and plugin.enabled else None

    def impl(self, plugin_id: str, hook: str) -> tuple[Plugin, Any] | None:
        return next((pair for pair in self.calls.get(hook, ()) if pair[0].id == plugin_id), None)

    def drop(self, plugin_id: str, reason: str) -> None:
        """Stop calling a plugin in this process now (the guard switched it off)."""
        plugin = self.get(plugin_id)
        if plugin is not None:
            plugin.status, plugin.disabled_reason = AUTO_DISABLED, reason
        self.calls = {
            hook: [pair for pair in pairs if pair[0].id != plugin_id]
            for hook, pairs in self.calls.items()
        }
        self.cache.clear()


_lock = threading.RLock()
_runtime: Runtime | None = None
_checked_at = 0.0


def current() -> Runtime:
    """This process's runtime, rebuilt when the database says plugins changed (see above)."""
    global _runtime, _checked_at
    runtime, now = _runtime, time.monotonic()
    if runtime is not None and now - _checked_at < settings.PLUGINS_CHECK_SECONDS:
        return runtime
    with _lock:
        runtime = _runtime
        try:
            token = _token()
        except DatabaseError as exc:
            if runtime is None:
                raise
            logger.warning("plugin state unavailable, keeping the loaded plugins: %s", exc)
            return runtime
        changed_files = settings.DEBUG and runtime is not None and _local_changed(runtime)
        if runtime is None or token != runtime.token or changed_files:
            runtime = build(token, reload_local=bool(changed_files))
            guard.switched_off.clear()  # the stored states are the truth again
        _runtime, _checked_at = runtime, time.monotonic()
        guard.flush()
        return runtime


def reset() -> None:
    """Forget the loaded runtime (tests; ``rescan``): the next ``current()`` rebuilds."""
    global _runtime, _checked_at
    with _lock:
        _runtime, _checked_at = None, 0.0


def _token() -> str:
    return Generation.current()


def _local_snapshot() -> dict[str, float]:
    folder = discovery.local_dir()
    if folder is None or not folder.is_dir():
        return {}
    return {str(f): f.stat().st_mtime for f in sorted(Path(folder).rglob("*.py"))}


def _local_changed(runtime: Runtime) -> bool:
    snapshot = _local_snapshot()
    if snapshot != runtime.local_files:
        logger.info("local plugin files changed: reloading them (DEBUG hot reload)")
        return True
    return False


def build(token: str, reload_local: bool = False) -> Runtime:
    """Discover every plugin, apply the stored states, and register the enabled ones."""
    found = discovery.discover(reload_local=reload_local)
    states = {s.plugin_id: s for s in PluginState.objects.all()}
    plugins = [_plugin(item, states.get(item.id)) for item in found]
    enabled = sorted((p for p in plugins if p.enabled), key=lambda p: p.id)
    manager = discovery.new_manager()
    # pluggy calls the last registered first: register in reverse so calls go by id.
    for plugin in reversed(enabled):
        manager.register(plugin.found.obj, name=plugin.id)
    by_name = {p.id: p for p in enabled}
    calls = {
        hook: [
            (by_name[impl.plugin_name], impl)
            for impl in reversed(getattr(manager.hook, hook).get_hookimpls())
        ]
        for hook in hookspecs.HOOK_TYPE
    }
    logger.info("plugins loaded: %s", ", ".join(p.id for p in enabled) or "none enabled")
    return Runtime(token, plugins, calls, _local_snapshot() if settings.DEBUG else {})


def _plugin(item: Found, state: Any) -> Plugin:
    plugin = Plugin(found=item)
    if not item.loadable:
        plugin.status, plugin.reason_code, plugin.reason = REFUSED, item.reason_code, item.reason
        return plugin
    assert item.manifest is not None
    plugin.settings = effective_settings(item.manifest, state.settings if state else None)
    problem = settings_problem(item.manifest, plugin.settings)
    if problem:
        plugin.status = REFUSED
        plugin.reason_code, plugin.reason = problem
    elif state is not None and state.enabled:
        plugin.status = ENABLED
    elif state is not None and state.auto_disabled_at:
        plugin.status, plugin.disabled_reason = AUTO_DISABLED, state.disabled_reason
    elif state is not None:
        plugin.disabled_reason = state.disabled_reason
    return plugin


def _switch_off(plugin_id: str, reason: str) -> None:
    if _runtime is not None:
        _runtime.drop(plugin_id, reason)


guard.on_switch_off = _switch_off
