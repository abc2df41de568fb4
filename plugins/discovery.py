"""Finding plugins: the ``batchserver.plugins`` entry-point group and the local plugins folder.

Each found plugin is loaded (imported) here and checked as far as it can be without the
database: its manifest, the server version range, its hook implementations. What fails is kept
as a refused plugin with its reason; nothing found here can break the server.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy
from django.conf import settings

from plugins import hookspecs
from plugins.manifest import Manifest, ManifestError, parse, server_version

logger = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "batchserver.plugins"
LOCAL_PACKAGE = "batchserver_local_plugins"


@dataclass
class Found:
    """One plugin as discovery left it: loadable, or refused with a code and a reason."""

    key: str  # the entry point's or the file's name, until the manifest gives the id
    source: str  # "entry point <name> (<distribution> <version>)" or "folder <path>"
    obj: Any = None
    manifest: Manifest | None = None
    reason_code: str = ""
    reason: str = ""
    files: dict[str, float] = field(default_factory=dict)  # local files -> mtime (hot reload)

    @property
    def id(self) -> str:
        return self.manifest.id if self.manifest else self.key

    @property
    def loadable(self) -> bool:
        return not self.reason_code

    def refuse(self, code: str, reason: str) -> Found:
        self.reason_code, self.reason = code, reason
        return self


def discover(reload_local: bool = False) -> list[Found]:
    """Every plugin on the entry point group and in the local folder, checked; sorted by id.

    ``reload_local``: import the local folder's plugins afresh (DEBUG hot reload).
    """
    found = [*_from_entry_points(), *_from_folder(local_dir(), reload_local), *_builtins()]
    for item in found:
        if item.loadable:
            _check(item)
    seen: dict[str, Found] = {}
    for item in sorted(found, key=lambda f: (f.id, f.source)):
        if item.loadable and item.id in seen:
            item.refuse("duplicate_id", f"the id {item.id!r} is taken by {seen[item.id].source}")
        elif item.loadable:
            seen[item.id] = item
    return sorted(found, key=lambda f: (f.id, f.source))


# Plugin objects registered in code (``register_builtin``): shipped with the server, or made
# by tests (``plugins.testing``). Found like the others, enabled like the others.
_builtin: dict[str, Any] = {}


def register_builtin(name: str, obj: Any) -> None:
    _builtin[name] = obj


def unregister_builtin(name: str) -> None:
    _builtin.pop(name, None)


def _builtins() -> list[Found]:
    return [Found(key=name, source=f"built-in {name}", obj=obj) for name, obj in _builtin.items()]


def local_dir() -> Path | None:
    value = getattr(settings, "PLUGINS_DIR", None)
    return Path(value) if value else None


def _from_entry_points() -> list[Found]:
    importlib.invalidate_caches()  # a package installed since the last scan is importable now
    out = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        where = f" ({dist.name} {dist.version})" if dist is not None else ""
        item = Found(key=ep.name, source=f"entry point {ep.name} = {ep.value}{where}")
        try:
            item.obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure is a refusal, not a crash
            logger.warning("plugin %s does not import: %s", ep.name, exc)
            item.refuse("import_error", f"{type(exc).__name__}: {exc}")
        out.append(item)
    return out


def _from_folder(folder: Path | None, reload: bool = False) -> list[Found]:
    if folder is None or not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(("_", ".")):
            continue
        if path.is_dir() and (path / "__init__.py").exists():
            out.append(load_local(path / "__init__.py", path.name, package=True, reload=reload))
        elif path.suffix == ".py":
            out.append(load_local(path, path.stem, package=False, reload=reload))
    return out


def source_files(path: Path, package: bool) -> dict[str, float]:
    files = sorted(path.parent.rglob("*.py")) if package else [path]
    return {str(f): f.stat().st_mtime for f in files}


def load_local(path: Path, name: str, *, package: bool, reload: bool = False) -> Found:
    """Import a plugin file or package from the local folder (again, when ``reload``)."""
    module_name = f"{LOCAL_PACKAGE}.{name}"
    item = Found(key=name, source=f"folder {path.parent if package else path}")
    item.files = source_files(path, package)
    if reload or module_name not in sys.modules:
        for loaded in [
            m for m in sys.modules if m == module_name or m.startswith(module_name + ".")
        ]:
            del sys.modules[loaded]
        try:
            spec = importlib.util.spec_from_file_location(
                module_name,
                path,
                submodule_search_locations=[str(path.parent)] if package else None,
            )
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - a broken local plugin is refused, not fatal
            sys.modules.pop(module_name, None)
            logger.warning("local plugin %s does not import: %s", path, exc)
            return item.refuse("import_error", f"{type(exc).__name__}: {exc}")
    item.obj = sys.modules[module_name]
    return item


def _check(item: Found) -> None:
    try:
        item.manifest = parse(getattr(item.obj, "manifest", None))
    except ManifestError as exc:
        item.refuse("invalid_manifest", str(exc))
        return
    version_problem = item.manifest.fits(server_version())
    if version_problem:
        item.refuse("incompatible_version", version_problem)
        return
    problem = hooks_problem(item.obj, item.manifest)
    if problem:
        item.refuse("invalid_hooks", problem)


def new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


def implemented(manager: pluggy.PluginManager, plugin: Any) -> dict[str, Any]:
    """hook name -> the plugin's HookImpl, for every hook ``plugin`` implements."""
    out = {}
    for caller in manager.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin:
                out[caller.name] = impl
    return out


def hooks_problem(obj: Any, manifest: Manifest) -> str | None:
    """Why the plugin's hook implementations do not match the specs or its manifest, or None."""
    manager = new_manager()
    try:
        manager.register(obj, name=manifest.id)
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        return str(exc)
    impls = implemented(manager, obj)
    if any(i.hookwrapper or i.wrapper for i in impls.values()):
        return "hook wrappers are not supported: every implementation is called alone, guarded"
    types = {hookspecs.HOOK_TYPE[name] for name in impls}
    declared = set(manifest.hooks)
    if types - declared:
        return (
            f"implements {', '.join(sorted(types - declared))} hooks its manifest does not declare"
        )
    if declared - types:
        return f"declares {', '.join(sorted(declared - types))} hooks it does not implement"
    if manifest.components and "batchserver_render_component" not in impls:
        return "declares components but does not implement batchserver_render_component"
    if manifest.pages and "batchserver_render_page" not in impls:
        return "declares pages but does not implement batchserver_render_page"
    return None
