"""The staff API of plugins: shapes, enable/disable, components, XSS, staff only."""

from __future__ import annotations

import pytest
from django.test import Client

from plugins import testing
from plugins.sdk import ui
from tests.conftest import csrf_token

XSS = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def _card(component, data):
    return [ui.Heading(data.get("title", "")), ui.Table(["value"], [[data.get("title", "")]])]


@pytest.fixture
def ui_plugin(db):
    plugin = testing.make_plugin(
        "cards",
        hooks={"render_component": _card, "rate": lambda answer: []},
        components=[{"name": "card", "title": "Card", "sample_data": {"title": "sample"}}],
        description="Shows cards",
    )
    with testing.installed(plugin):
        yield plugin


def post(client, url, data=None):
    return client.post(
        url,
        data or {},
        content_type="application/json",
        headers={"X-CSRFToken": csrf_token(client)},
    )


def test_list_detail_and_by_type(staff_client, ui_plugin):
    listed = staff_client.get("/api/plugins").json()
    assert listed["object"] == "list"
    card = next(p for p in listed["data"] if p["id"] == "cards")
    assert card["object"] == "plugin" and card["status"] == "enabled"
    assert card["hook_types"] == ["rating", "ui"]
    assert card["components"][0]["name"] == "card"

    detail = staff_client.get("/api/plugins/cards").json()
    assert detail["description"] == "Shows cards" and detail["error_count"] == 0

    ui_plugins = staff_client.get("/api/plugins/by-type/ui").json()["data"]
    assert "cards" in {p["id"] for p in ui_plugins}
    assert all("ui" in p["hook_types"] for p in ui_plugins)
    parsers = staff_client.get("/api/plugins/by-type/parser").json()["data"]
    assert "cards" not in {p["id"] for p in parsers}
    bad = staff_client.get("/api/plugins/by-type/nonsense")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "unknown_hook_type"
    missing = staff_client.get("/api/plugins/nobody")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "plugin_id"


def test_enable_and_disable(staff_client, ui_plugin):
    off = post(staff_client, "/api/plugins/cards/disable")
    assert off.status_code == 200 and off.json()["status"] == "disabled"
    assert staff_client.get("/api/plugins/cards/ui-components").json()["data"] == []
    refused = post(staff_client, "/api/plugins/cards/render-component", {"component": "card"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "plugin_disabled"

    on = post(staff_client, "/api/plugins/cards/enable")
    assert on.status_code == 200 and on.json()["enabled"] is True
    components = staff_client.get("/api/plugins/cards/ui-components").json()["data"]
    assert components == [
        {
            "plugin": "cards",
            "name": "card",
            "title": "Card",
            "description": "",
            "sample_data": {"title": "sample"},
        }
    ]


def test_render_component_escapes_the_data(staff_client, ui_plugin):
    response = post(
        staff_client,
        "/api/plugins/cards/render-component",
        {"component": "card", "data": {"title": XSS}},
    )
    assert response.status_code == 200
    html = response.json()["html"]
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    unknown = post(staff_client, "/api/plugins/cards/render-component", {"component": "nope"})
    assert unknown.status_code == 404


def test_the_page_escapes_a_plugins_manifest_too(staff_client, db):
    plugin = testing.make_plugin("evil", hooks={"rate": lambda answer: []}, description=XSS)
    with testing.installed(plugin):
        page = staff_client.get("/plugins").content.decode()
    assert "<script>alert('x')" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


def test_csrf_is_required_for_changes(staff_client, ui_plugin):
    response = staff_client.post("/api/plugins/cards/disable")
    assert response.status_code == 403


@pytest.mark.parametrize(
    "method,url",
    [
        ("get", "/api/plugins"),
        ("get", "/api/plugins/cards"),
        ("post", "/api/plugins/cards/enable"),
        ("post", "/api/plugins/cards/disable"),
        ("get", "/api/plugins/cards/ui-components"),
        ("post", "/api/plugins/cards/render-component"),
        ("get", "/api/plugins/by-type/ui"),
    ],
)
def test_only_staff_may_use_the_api(client_api, ui_plugin, django_user_model, method, url):
    # an anonymous browser
    anonymous = getattr(Client(), method)(url)
    assert anonymous.status_code == 401
    # a client with a valid API key
    keyed = getattr(client_api, method)(url)
    assert keyed.status_code == 401
    # a logged-in user who is not staff
    user = django_user_model.objects.create_user("someone", password="a-long-password-123")
    browser = Client()
    browser.force_login(user)
    assert getattr(browser, method)(url).status_code == 403


def test_pages_are_staff_only(client, client_api, ui_plugin):
    for url in ("/plugins", "/plugins/cards/enable"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
        assert client_api.get(url).status_code == 302


def test_the_plugins_page_lists_status_and_toggles(staff_client, ui_plugin, db):
    refused = testing.make_plugin(
        "old", hooks={"rate": lambda answer: []}, max_server_version="0.0.1"
    )
    with testing.installed(refused, enable=False):
        page = staff_client.get("/plugins").content.decode()
        assert 'id="plugin-cards"' in page and 'id="plugin-old"' in page
        assert "incompatible_version" in page and "needs batchserver &lt;= 0.0.1" in page
        assert 'data-plugin-preview="cards"' in page
        response = staff_client.post(
            "/plugins/cards/disable", {"csrfmiddlewaretoken": csrf_token(staff_client)}
        )
        assert response.status_code == 302
        assert staff_client.get("/api/plugins/cards").json()["status"] == "disabled"


def test_admin_actions_and_settings_validation(staff_client, db):
    plugin = testing.make_plugin(
        "configurable",
        hooks={"rate": lambda answer: []},
        settings={
            "type": "object",
            "properties": {"threshold": {"type": "number", "minimum": 0, "default": 1}},
        },
    )
    with testing.installed(plugin, enable=False):
        changelist = staff_client.get("/admin/plugins/pluginstate/")
        assert changelist.status_code == 200 and "configurable" in changelist.content.decode()
        token = csrf_token(staff_client)
        staff_client.post(
            "/admin/plugins/pluginstate/",
            {
                "action": "enable_plugins",
                "_selected_action": ["configurable"],
                "csrfmiddlewaretoken": token,
            },
        )
        assert staff_client.get("/api/plugins/configurable").json()["status"] == "enabled"

        url = "/admin/plugins/pluginstate/configurable/change/"
        bad = staff_client.post(
            url, {"settings": '{"threshold": -3}', "csrfmiddlewaretoken": token}
        )
        assert bad.status_code == 200 and "threshold" in bad.content.decode()
        good = staff_client.post(
            url, {"settings": '{"threshold": 4}', "csrfmiddlewaretoken": token}
        )
        assert good.status_code == 302
        assert staff_client.get("/api/plugins/configurable").json()["settings"] == {"threshold": 4}


def test_the_schema_lists_the_staff_api(client, db):
    schema = client.get("/api/schema/", headers={"Accept": "application/json"}).json()["paths"]
    assert {
        "/api/plugins",
        "/api/plugins/{plugin_id}",
        "/api/plugins/{plugin_id}/enable",
        "/api/plugins/{plugin_id}/disable",
        "/api/plugins/{plugin_id}/ui-components",
        "/api/plugins/{plugin_id}/render-component",
        "/api/plugins/by-type/{hook_type}",
    } <= set(schema)
    assert schema["/api/plugins/{plugin_id}/enable"]["post"]["operationId"] == "enablePlugin"
