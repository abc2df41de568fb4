"""Test helpers for plugins and for the apps that call them (the jobs wiring included).

    from plugins import testing

    upper = testing.make_plugin(
        "upper", hooks={"transform_line": testing.prefix_transform("UP: ")}, types=["schema"]
    )
    with testing.installed(upper):          # found and enabled, in this process, at once
        plan = services.schema_plan("batch_x", {"batchserver_plugins": "upper"})
        ...

``installed`` registers the plugin objects as built-ins, enables them in the database and
resets the runtime; on exit it unregisters them. It needs database access (a ``db`` test).
``failing_transform`` and ``hanging_transform`` give plugins that raise or overrun, for tests
of what a caller does with ``LineFailed``.
"""

from __future__ import annotations

import contextlib
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

from plugins import discovery, guard, runtime, services
from plugins.hookspecs import HOOK_TYPE, hookimpl

SHORT_TYPES = {name.removeprefix("batchserver_"): name for name in HOOK_TYPE}


def make_plugin(
    plugin_id: str,
    *,
    hooks: dict[str, Callable[..., Any]] | None = None,
    types_: list[str] | None = None,
    **manifest: Any,
) -> types.ModuleType:
    """A plugin module made in memory: ``hooks`` maps short hook names (``transform_line``,
    ``rate`` …) to functions; the manifest's hook types follow from them unless given."""
    module = types.ModuleType(f"test_plugin_{plugin_id.replace('-', '_')}")
    declared: list[str] = []
    for short, function in (hooks or {}).items():
        name = SHORT_TYPES[short]
        setattr(module, name, hookimpl(function))
        declared.append(HOOK_TYPE[name])
    module.manifest = {
        "id": plugin_id,
        "name": plugin_id.replace("-", " ").title(),
        "version": "1.0.0",
        "hooks": types_ if types_ is not None else sorted(set(declared)),
        **manifest,
    }
    return module


@contextlib.contextmanager
def installed(*modules: types.ModuleType, enable: bool = True) -> Iterator[None]:
    """Make ``modules`` found as built-in plugins (and enabled) for the block."""
    names = [m.manifest["id"] for m in modules]
    for name, module in zip(names, modules, strict=True):
        discovery.register_builtin(name, module)
    runtime.reset()
    try:
        if enable:
            for name in names:
                services.enable(name)
        yield
    finally:
        for name in names:
            discovery.unregister_builtin(name)
        guard.reset()
        runtime.reset()


def prefix_transform(prefix: str) -> Callable[..., dict[str, Any]]:
    """A schema hook that prefixes every message's content with ``prefix``."""

    def transform(body: dict[str, Any]) -> dict[str, Any]:
        messages = [{**m, "content": prefix + str(m.get("content", ""))} for m in body["messages"]]
        return {**body, "messages": messages}

    return transform


def failing_transform(body: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("this plugin always fails")


def hanging_transform(seconds: float = 30.0) -> Callable[..., dict[str, Any]]:
    def transform(body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(seconds)
        return body

    return transform


def apply_schema(
    lines: list[dict[str, Any]], metadata: dict[str, str], batch_id: str = "batch_test"
) -> list[dict[str, Any]]:
    """What the jobs wiring does to a file's lines: each body through the batch's schema plan;
    a line whose hook fails gets ``"error": {"code", "message"}`` instead of a new body."""
    plan = services.schema_plan(batch_id, metadata, lines[0]["url"] if lines else "")
    if plan is None:
        return lines
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            body = plan.transform(line["body"], custom_id=line["custom_id"], line=number)
            out.append({**line, "body": body})
        except services.LineFailed as exc:
            out.append({**line, "error": exc.as_error()})
    plan.close()
    return out
