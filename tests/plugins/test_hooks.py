"""Each hook type's order and semantics, through ``plugins.services`` as other apps call it."""

from __future__ import annotations

import io

import pytest

from batchserver.errors import Invalid
from plugins import services, testing
from plugins.sdk import ExportFormat, LineRejected, Score, ui
from plugins.types import Redirect

META = services.BATCH_METADATA_KEY


def body(content="hello"):
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


def test_schema_hooks_chain_in_the_order_the_batch_names(db):
    a = testing.make_plugin("a", hooks={"transform_line": testing.prefix_transform("A:")})
    b = testing.make_plugin("b", hooks={"transform_line": testing.prefix_transform("B:")})
    with testing.installed(a, b):
        ab = services.schema_plan("batch_1", {META: "a,b"})
        ba = services.schema_plan("batch_1", {META: "b, a"})
        assert ab.transform(body(), custom_id="x", line=1)["messages"][0]["content"] == "B:A:hello"
        assert ba.transform(body(), custom_id="x", line=1)["messages"][0]["content"] == "A:B:hello"
        # a batch that names no plugin is not touched, and costs no plan at all
        assert services.schema_plan("batch_2", {"team": "x"}) is None
        assert services.schema_plan("batch_3", None) is None
        assert services.transform_line(body(), custom_id="x", line=1, metadata={}) == body()


def test_schema_hook_may_decline_reject_or_fail_one_line(db):
    def transform(body, custom_id):
        if custom_id == "skip":
            return None
        if custom_id == "bad":
            raise LineRejected("no candidate in this line", code="missing_candidate")
        if custom_id == "boom":
            raise ValueError("oops")
        if custom_id == "model":
            return {**body, "model": "other"}
        return {**body, "seen": True}

    with testing.installed(testing.make_plugin("p", hooks={"transform_line": transform})):
        plan = services.schema_plan("batch_1", {META: "p"})
        assert plan.transform(body(), custom_id="skip", line=1) == body()
        assert plan.transform(body(), custom_id="ok", line=2)["seen"] is True
        with pytest.raises(services.LineFailed) as rejected:
            plan.transform(body(), custom_id="bad", line=3)
        assert rejected.value.as_error() == {
            "code": "missing_candidate",
            "message": "plugin p: no candidate in this line",
        }
        with pytest.raises(services.LineFailed) as failed:
            plan.transform(body(), custom_id="boom", line=4)
        assert failed.value.code == "plugin_error" and "ValueError: oops" in failed.value.message
        with pytest.raises(services.LineFailed, match="changed the body's model"):
            plan.transform(body(), custom_id="model", line=5)


def test_a_batch_naming_a_disabled_or_unknown_plugin_is_refused(db):
    with testing.installed(testing.make_plugin("p", hooks={"transform_line": lambda body: None})):
        services.disable("p")
        with pytest.raises(Invalid) as exc:
            services.schema_plan("batch_1", {META: "p"})
        assert exc.value.code == "plugin_unavailable"
        assert exc.value.param == f"metadata.{META}"
        with pytest.raises(Invalid):
            services.check_batch_plugins({META: "nobody"})


def test_parser_first_result_wins_in_order(db):
    calls = []

    def none_parser(text):
        calls.append("a")
        return None

    def json_parser(text):
        calls.append("b")
        return {"length": len(text)}

    def late_parser(text):
        calls.append("c")
        return {"late": True}

    plugins = [
        testing.make_plugin("a", hooks={"parse_answer": none_parser}),
        testing.make_plugin("b", hooks={"parse_answer": json_parser}),
        testing.make_plugin("c", hooks={"parse_answer": late_parser}),
    ]
    with testing.installed(*plugins):
        parsed = services.parse_answer("four")
        assert parsed.plugin == "b" and parsed.fields == {"length": 4}
        assert calls == ["a", "b"]  # plugins in id order, stopped at the first result
        # a batch's own parsers, in the order it names them
        assert services.parse_answer("x", metadata={META: "c,b"}).plugin == "c"
        # a batch naming no plugin gets no parsing at all
        assert services.parse_answer("x", metadata={}) is None
        assert services.parser_plan("batch_1", {"k": "v"}) is None


def test_rating_returns_every_plugins_scores_with_their_plugin(db):
    def rate_len(answer):
        return [Score("short", 1.0 if len(answer) < 10 else 0.0, raw=len(answer), scale="chars")]

    def rate_ref(answer, reference):
        return Score("same", 1.0 if answer == reference else 0.0)

    def broken(answer):
        raise RuntimeError("nope")

    plugins = [
        testing.make_plugin("len", hooks={"rate": rate_len}),
        testing.make_plugin("ref", hooks={"rate": rate_ref}),
        testing.make_plugin("broken", hooks={"rate": broken}),
    ]
    with testing.installed(*plugins):
        scores = services.rate("hi", reference="hi")
    assert [(s.plugin, s.name, s.value) for s in scores] == [
        ("len", "short", 1.0),
        ("ref", "same", 1.0),
    ]
    assert scores[0].raw == 2 and scores[0].scale == "chars"
    with pytest.raises(ValueError):
        Score("out of range", 1.5)


def test_export_formats_are_collected_and_write_streams(db):
    def write_lines(records, stream):
        for record in records:
            stream.write(f"{record['custom_id']}\n".encode())

    def formats():
        return [ExportFormat("ids", "Custom ids", "txt", "text/plain", write_lines)]

    with testing.installed(testing.make_plugin("exp", hooks={"export_formats": formats})):
        found = services.export_formats()
        assert [(f.id, f.plugin, f.extension) for f in found] == [("ids", "exp", "txt")]
        out = io.BytesIO()
        services.export("ids", ({"custom_id": f"r{i}"} for i in range(3)), out)
        assert out.getvalue() == b"r0\nr1\nr2\n"


def test_ui_component_renders_escaped_and_pages_may_redirect(db):
    def render_component(component, data):
        return [ui.Heading(data["title"]), ui.Table(["name"], [[data["title"]]])]

    def render_page(page, request):
        if request.get("go"):
            return Redirect("/batches/batch_1")
        return [ui.Text(f"hello {request.user}")]

    plugin = testing.make_plugin(
        "uip",
        hooks={"render_component": render_component, "render_page": render_page},
        components=[{"name": "card", "title": "Card", "sample_data": {"title": "x"}}],
        pages=[{"name": "home", "title": "Home"}],
    )
    with testing.installed(plugin):
        html = services.render_component("uip", "card", {"title": "<script>alert(1)</script>"})
        assert "<script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert services.ui_components() == [
            {
                "plugin": "uip",
                "name": "card",
                "title": "Card",
                "description": "",
                "sample_data": {"title": "x"},
            }
        ]
        from plugins.types import PageRequest

        request = PageRequest("GET", {"go": "1"}, {}, {}, "ops", "/plugins/uip/home")
        assert services.render_page("uip", "home", request) == Redirect("/batches/batch_1")
        request = PageRequest("GET", {}, {}, {}, "<b>ops</b>", "/plugins/uip/home")
        assert "hello &lt;b&gt;ops&lt;/b&gt;" in services.render_page("uip", "home", request)


def test_links_from_plugins_cannot_run_script():
    html = ui.render([ui.Link("click", "javascript:alert(1)"), ui.Link("ok", "/queue")])
    assert "javascript:" not in html
    assert 'href="/queue"' in html


def test_tryfirst_and_trylast_come_before_and_after_the_id_order(db):
    import types

    from plugins.hookspecs import hookimpl

    def plugin(plugin_id, **marker):
        module = types.ModuleType(plugin_id)
        module.manifest = {"id": plugin_id, "name": plugin_id, "version": "1", "hooks": ["rating"]}

        def rate(answer):
            return [Score(plugin_id, 1.0)]

        module.batchserver_rate = hookimpl(**marker)(rate)
        return module

    plugins = [plugin("a"), plugin("b", trylast=True), plugin("c"), plugin("z", tryfirst=True)]
    with testing.installed(*plugins):
        assert [s.name for s in services.rate("x")] == ["z", "a", "c", "b"]


def test_hook_calls_make_no_query(db, settings, django_assert_num_queries):
    """Within PLUGINS_CHECK_SECONDS a process answers from memory: no query per line or call."""
    settings.PLUGINS_CHECK_SECONDS = 60
    upper = testing.make_plugin("upper", hooks={"transform_line": testing.prefix_transform("U:")})
    with testing.installed(upper):
        services.schema_plan("warm", {META: "upper"})
        with django_assert_num_queries(0):
            assert services.schema_plan("b", {"team": "x"}) is None
            plan = services.schema_plan("b", {META: "upper"})
            for i in range(1000):
                plan.transform(body(), custom_id=f"c{i}", line=i)
            services.rate("x")
            services.parse_answer("x")
