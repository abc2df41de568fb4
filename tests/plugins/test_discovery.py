"""Discovery from the entry-point group and the local folder; every refusal reason."""

from __future__ import annotations

import importlib
import textwrap

import pytest

from batchserver.errors import Conflict, Invalid
from plugins import services, testing

GOOD = """
from plugins.sdk import hookimpl, Score

manifest = {
    "id": "{id}",
    "name": "Demo {id}",
    "version": "1.2.0",
    "author": "tests",
    "hooks": ["rating"],
}

@hookimpl
def batchserver_rate(answer):
    return [Score("{id}", 1.0)]
"""


def write_distribution(root, module: str, source: str, entry_name: str) -> None:
    """An installed distribution as pip leaves it: the module and a dist-info with the entry."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{module.replace('_', '-')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[batchserver.plugins]\n{entry_name} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path standing in for site-packages."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    importlib.invalidate_caches()


def by_id(plugin_id: str) -> dict:
    return next(p for p in services.list_plugins() if p["id"] == plugin_id)


def test_a_plugin_found_through_its_entry_point_loads_when_enabled(db, site):
    write_distribution(site, "bs_demo_ep", GOOD.replace("{id}", "demo-ep"), "demo-ep")
    importlib.invalidate_caches()

    found = by_id("demo-ep")
    assert found["status"] == "disabled" and found["loadable"]
    assert found["version"] == "1.2.0" and found["hook_types"] == ["rating"]
    assert "entry point demo-ep = bs_demo_ep (bs_demo_ep 1.0)" == found["source"]
    assert services.rate("x") == []  # found, but nothing runs until an operator enables it

    services.enable("demo-ep")
    assert [s.plugin for s in services.rate("x")] == ["demo-ep"]


def test_a_plugin_found_in_the_local_folder(db, settings):
    settings.PLUGINS_DIR.mkdir()
    (settings.PLUGINS_DIR / "local_demo.py").write_text(GOOD.replace("{id}", "local-demo"))
    package = settings.PLUGINS_DIR / "pkg_demo"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from .impl import *  # noqa\nfrom .impl import manifest\n"
    )
    (package / "impl.py").write_text(GOOD.replace("{id}", "pkg-demo"))

    assert by_id("local-demo")["source"].startswith("folder ")
    services.enable("local-demo")
    services.enable("pkg-demo")
    assert sorted(s.plugin for s in services.rate("x")) == ["local-demo", "pkg-demo"]


REFUSED = {
    "invalid_manifest": (
        'manifest = {"id": "no-name", "version": "1.0", "hooks": []}',
        "'name' is required",
    ),
    "incompatible_version": (
        'manifest = {"id": "future", "name": "F", "version": "1.0", "hooks": [],'
        ' "min_server_version": "99.0"}',
        "needs batchserver >= 99.0; this server is 0.1.0",
    ),
    "invalid_hooks": (
        "from plugins.sdk import hookimpl\n"
        'manifest = {"id": "typo", "name": "T", "version": "1.0", "hooks": ["rating"]}\n'
        "@hookimpl\ndef batchserver_rate_answr(answer):\n    return []\n",
        "unknown hook 'batchserver_rate_answr'",
    ),
    "missing_settings": (
        'manifest = {"id": "needs-url", "name": "N", "version": "1.0", "hooks": [],'
        ' "settings": {"type": "object", "properties": {"url": {"type": "string"}},'
        ' "required": ["url"]}}',
        "required setting not set: url",
    ),
    "import_error": ("raise ImportError('a dependency is missing')", "a dependency is missing"),
}


@pytest.mark.parametrize("code", sorted(REFUSED))
def test_each_refusal_reason_is_listed_and_nothing_else_breaks(db, settings, code):
    source, reason = REFUSED[code]
    settings.PLUGINS_DIR.mkdir()
    (settings.PLUGINS_DIR / f"refused_{code}.py").write_text(source)
    (settings.PLUGINS_DIR / "healthy.py").write_text(GOOD.replace("{id}", "healthy"))

    refused = [p for p in services.list_plugins() if p["status"] == "refused"]
    assert len(refused) == 1, refused
    assert refused[0]["reason_code"] == code
    assert reason in refused[0]["reason"]
    assert not refused[0]["loadable"]
    with pytest.raises(Conflict) as exc:
        services.enable(refused[0]["id"])
    assert exc.value.code == "plugin_not_loadable"

    services.enable("healthy")  # the others load as if nothing happened
    assert [s.plugin for s in services.rate("x")] == ["healthy"]


def test_a_duplicate_id_is_refused(db, settings, site):
    write_distribution(site, "bs_dup", GOOD.replace("{id}", "dup"), "dup")
    importlib.invalidate_caches()
    settings.PLUGINS_DIR.mkdir()
    (settings.PLUGINS_DIR / "dup_local.py").write_text(GOOD.replace("{id}", "dup"))
    found = [p for p in services.list_plugins() if p["id"] == "dup"]
    assert sorted(p["status"] for p in found) == ["disabled", "refused"]
    assert "is taken by" in next(p for p in found if p["status"] == "refused")["reason"]


def test_missing_settings_become_loadable_once_an_operator_fills_them(db):
    plugin = testing.make_plugin(
        "needs-key",
        hooks={"rate": lambda answer, settings: []},
        settings={
            "type": "object",
            "properties": {
                "key": {"type": "string", "minLength": 3},
                "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
            },
            "required": ["key"],
        },
    )
    with testing.installed(plugin, enable=False):
        assert services.get_plugin("needs-key")["reason_code"] == "missing_settings"
        with pytest.raises(Invalid) as exc:
            services.update_settings("needs-key", {"key": "ab"})
        assert exc.value.param == "settings" and exc.value.code == "invalid_settings"
        with pytest.raises(Invalid):
            services.update_settings("needs-key", {"key": "abc", "mode": "warp"})
        saved = services.update_settings("needs-key", {"key": "abc"})
        assert saved["settings"] == {"key": "abc", "mode": "fast"}  # defaults filled in
        assert saved["status"] == "disabled" and saved["loadable"]
        assert services.enable("needs-key")["status"] == "enabled"


def test_hot_reload_of_a_local_plugin_in_debug(db, settings):
    settings.DEBUG = True
    settings.PLUGINS_DIR.mkdir()
    path = settings.PLUGINS_DIR / "hot.py"
    path.write_text(GOOD.replace("{id}", "hot"))
    services.enable("hot")
    assert services.rate("x")[0].name == "hot"

    edited = GOOD.replace("{id}", "hot").replace('Score("hot", 1.0)', 'Score("edited", 0.5)')
    path.write_text(edited)
    import os

    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    assert [(s.name, s.value) for s in services.rate("x")] == [("edited", 0.5)]


def test_the_management_command(db, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    call_command("plugins", "enable", "quality-rater")
    call_command("plugins", "list")
    out = capsys.readouterr().out
    assert "quality-rater: enabled" in out
    assert any(
        line.startswith("quality-rater") and "enabled" in line and "rating,ui" in line
        for line in out.splitlines()
    )
    with pytest.raises(CommandError, match="No such plugin"):
        call_command("plugins", "disable", "nobody")


def test_the_tutorial_plugin_of_the_docs_works(db, settings):
    """The minimal plugin in docs/plugins.md, dropped into the local folder, does what it says."""
    from pathlib import Path

    docs = (Path(settings.BASE_DIR) / "docs" / "plugins.md").read_text()
    source = docs.split("`shortness/batchserver_shortness.py`\n\n```python\n", 1)[1].split("```")[0]
    settings.PLUGINS_DIR.mkdir()
    (settings.PLUGINS_DIR / "batchserver_shortness.py").write_text(source)

    services.enable("shortness")
    (score,) = [s for s in services.rate("hello") if s.plugin == "shortness"]
    assert (score.name, score.value, score.raw, score.scale) == ("short", 1.0, 5, "characters")
    services.update_settings("shortness", {"limit": 100})
    (score,) = [s for s in services.rate("x" * 200) if s.plugin == "shortness"]
    assert score.value == 0.5


def test_stored_settings_that_break_the_schema_are_a_refusal(db):
    from plugins.models import PluginState

    plugin = testing.make_plugin(
        "strict",
        hooks={"rate": lambda answer: []},
        settings={"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}},
    )
    with testing.installed(plugin):
        # settings saved before the plugin's schema tightened (written past the service)
        PluginState.objects.filter(pk="strict").update(settings={"n": 9})
        services.rescan()
        found = services.get_plugin("strict")
        assert found["status"] == "refused" and found["reason_code"] == "invalid_settings"
        assert "n: 9 is greater than the maximum of 3" == found["reason"]
        assert services.rate("x") == []
