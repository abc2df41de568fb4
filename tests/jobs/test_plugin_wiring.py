"""Schema plugins in a real batch: opted in per batch, a failing line is an error line alone."""

from __future__ import annotations

import json

import pytest

from jobs.services import batches as batch_services
from jobs.services import lifecycle, results
from plugins import services as plugin_services
from plugins import testing
from tests.conftest import jsonl, request_line

OPT_IN = "batchserver_plugins"


@pytest.fixture
def upper(db):
    plugin = testing.make_plugin(
        "upper", hooks={"transform_line": testing.prefix_transform("UP: ")}
    )
    with testing.installed(plugin):
        yield plugin


def answers(batch_id: str) -> dict[str, str | None]:
    return {
        r.custom_id: results.answer_text(r.response_body) for r in results.iter_results(batch_id)
    }


def test_a_batch_that_names_the_plugin_runs_its_transformed_lines(create_batch, upper):
    batch = create_batch(
        [request_line(i, content=f"q{i}") for i in range(3)], metadata={OPT_IN: "upper"}
    )
    assert batch["status"] == "completed"
    assert answers(batch["id"]) == {f"req-{i}": f"echo: UP: q{i}" for i in range(3)}


def test_a_batch_that_names_no_plugin_is_left_alone(create_batch, upper):
    batch = create_batch([request_line(0, content="q0")])
    assert answers(batch["id"]) == {"req-0": "echo: q0"}


def test_a_line_the_plugin_fails_goes_to_the_error_file_and_the_batch_completes(
    create_batch, client_api, db
):
    def picky(body):
        if "bad" in body["messages"][0]["content"]:
            raise RuntimeError("cannot handle this one")
        return body

    plugin = testing.make_plugin("picky", hooks={"transform_line": picky})
    with testing.installed(plugin):
        lines = [request_line(0, content="good"), request_line(1, content="bad")]
        batch = create_batch(lines, metadata={OPT_IN: "picky"})

    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    content = client_api.get(f"/v1/files/{batch['error_file_id']}/content")
    [line] = [json.loads(x) for x in b"".join(content.streaming_content).splitlines()]
    assert line["custom_id"] == "req-1" and line["response"] is None
    assert line["error"]["code"] == "plugin_error"
    assert "cannot handle this one" in line["error"]["message"]


def test_naming_a_plugin_that_is_not_enabled_is_refused_at_create(client_api, upload, model, db):
    file = upload(b"".join(json.dumps(request_line(0)).encode() + b"\n" for _ in range(1)))
    response = client_api.post(
        "/v1/batches",
        {
            "input_file_id": file["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": {OPT_IN: "nowhere"},
        },
        format="json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("plugin_unavailable", f"metadata.{OPT_IN}")


def test_a_plugin_disabled_after_create_fails_the_batch_at_validation(
    api_key, upload, model, upper
):
    # given a batch created while the plugin was enabled, not validated yet
    file = upload(jsonl([request_line(0)]))
    batch = batch_services.create_batch(
        api_key[0],
        input_file_id=file["id"],
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={OPT_IN: "upper"},
    )
    # when the plugin is disabled before the worker validates it
    plugin_services.disable("upper")
    lifecycle.validate_and_split(batch)

    # then the batch fails as a whole, naming the plugin: its lines were not run untransformed
    batch.refresh_from_db()
    assert batch.status == "failed"
    assert batch.errors[0]["code"] == "plugin_unavailable"
    assert not batch.requests.exists()


def test_a_hanging_then_switched_off_plugin_costs_lines_not_the_batch(
    create_batch, client_api, settings, db
):
    # given a schema plugin that never answers within its budget, switched off after 2 in a row
    settings.PLUGINS_MAX_CONSECUTIVE_FAILURES = 2
    plugin = testing.make_plugin(
        "slow",
        hooks={"transform_line": testing.hanging_transform(5)},
        time_budget_seconds=0.2,
    )
    with testing.installed(plugin):
        batch = create_batch([request_line(i) for i in range(4)], metadata={OPT_IN: "slow"})
        state = plugin_services.get_plugin("slow")

    # then the batch completed; every line is an error line: two timed out, then the plugin was
    # switched off (with the reason shown) and the rest failed fast
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 4, "completed": 0, "failed": 4}
    codes = [r.error["code"] for r in results.iter_results(batch["id"])]
    assert codes == ["plugin_timeout", "plugin_timeout", "plugin_disabled", "plugin_disabled"]
    assert state["enabled"] is False
    assert "switched off after 2 failures in a row" in state["disabled_reason"]
    assert "time budget" in state["disabled_reason"]
