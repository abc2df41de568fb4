"""A raising and a hanging plugin: error lines, counters, logs, and the automatic disable."""

from __future__ import annotations

import logging
import time

import pytest
from prometheus_client import REGISTRY

from batchserver import correlation
from plugins import services, testing
from plugins.models import PluginState

META = services.BATCH_METADATA_KEY


def body(i):
    return {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def run_lines(plan, n):
    """What the jobs wiring does: each line transformed, or an error line."""
    outcome = []
    for i in range(n):
        try:
            plan.transform(body(i), custom_id=f"r{i}", line=i + 1)
            outcome.append("ok")
        except services.LineFailed as exc:
            outcome.append(exc.code)
    return outcome


def test_a_raising_plugin_makes_error_lines_then_is_switched_off(
    db, caplog, django_capture_on_commit_callbacks
):
    flaky = testing.make_plugin("flaky", hooks={"transform_line": testing.failing_transform})
    before = sample(
        "plugin_failures_total", plugin="flaky", hook="batchserver_transform_line", kind="error"
    )
    with testing.installed(flaky), correlation.bind("corr-123"):
        plan = services.schema_plan("batch_1", {META: "flaky"})
        caplog.set_level(logging.WARNING, logger="plugins.guard")
        with django_capture_on_commit_callbacks(execute=True):
            outcome = run_lines(plan, 5)

        # each failing call is that line's error; after 3 in a row the plugin is off
        assert outcome == ["plugin_error"] * 3 + ["plugin_disabled"] * 2
        state = PluginState.objects.get(pk="flaky")
        assert not state.enabled and state.auto_disabled_at is not None
        assert "switched off after 3 failures in a row" in state.disabled_reason
        assert "RuntimeError: this plugin always fails" in state.disabled_reason
        assert state.error_count == 3
        listed = services.get_plugin("flaky")
        assert listed["status"] == "auto_disabled" and listed["disabled_reason"]
        # a batch naming it now is refused as a whole, before any line runs
        with pytest.raises(services.Invalid):
            services.schema_plan("batch_2", {META: "flaky"})

    after = sample(
        "plugin_failures_total", plugin="flaky", hook="batchserver_transform_line", kind="error"
    )
    assert after - before == 3
    assert sample("plugin_auto_disabled_total", plugin="flaky") >= 1
    warnings = [r for r in caplog.records if r.name == "plugins.guard" and "failed" in r.message]
    assert warnings and all(r.correlation_id == "corr-123" for r in warnings)


def test_a_hanging_plugin_is_stopped_at_its_budget(
    db, settings, django_capture_on_commit_callbacks
):
    settings.PLUGINS_CALL_BUDGET_SECONDS = 0.2
    slow = testing.make_plugin("slow", hooks={"transform_line": testing.hanging_transform(30)})
    with testing.installed(slow):
        plan = services.schema_plan("batch_1", {META: "slow"})
        started = time.monotonic()
        with django_capture_on_commit_callbacks(execute=True):
            outcome = run_lines(plan, 4)
        elapsed = time.monotonic() - started
    assert outcome == ["plugin_timeout"] * 3 + ["plugin_disabled"]
    assert elapsed < 3, elapsed  # three budgets of 0.2 s, not 30 s each
    state = PluginState.objects.get(pk="slow")
    assert not state.enabled and "time budget of 0.2 s" in state.disabled_reason
    assert (
        sample(
            "plugin_failures_total",
            plugin="slow",
            hook="batchserver_transform_line",
            kind="timeout",
        )
        >= 3
    )


def test_a_busy_loop_is_interrupted_too(db, settings):
    settings.PLUGINS_CALL_BUDGET_SECONDS = 0.2

    def spin(answer):
        while True:
            pass

    with testing.installed(testing.make_plugin("spin", hooks={"rate": spin})):
        started = time.monotonic()
        assert services.rate("x") == []
        assert time.monotonic() - started < 2


def test_a_plugin_that_swallows_exceptions_cannot_swallow_its_timeout(db, settings):
    settings.PLUGINS_CALL_BUDGET_SECONDS = 0.2

    def stubborn(answer):
        try:
            time.sleep(30)
        except Exception:  # noqa: BLE001 - what a careless plugin does
            time.sleep(30)

    with testing.installed(testing.make_plugin("stubborn", hooks={"rate": stubborn})):
        started = time.monotonic()
        assert services.rate("x") == []
        assert time.monotonic() - started < 2


def test_success_resets_the_count_of_failures_in_a_row(db, django_capture_on_commit_callbacks):
    def sometimes(body, custom_id):
        if custom_id.endswith("bad"):
            raise ValueError("bad line")
        return None

    with testing.installed(testing.make_plugin("sometimes", hooks={"transform_line": sometimes})):
        plan = services.schema_plan("batch_1", {META: "sometimes"})
        with django_capture_on_commit_callbacks(execute=True):
            for i in range(6):  # bad, bad, good, bad, bad, good: never 3 in a row
                cid = "good" if i % 3 == 2 else f"{i}bad"
                try:
                    plan.transform(body(i), custom_id=cid, line=i)
                except services.LineFailed:
                    pass
            plan.close()
        state = PluginState.objects.get(pk="sometimes")
        assert state.enabled and state.error_count == 4
        assert "bad line" in state.last_error


def test_an_outer_alarm_still_fires_through_a_plugin_call(db):
    """django-q2's task timeout (SIGALRM) set before a hook call is kept and still fires."""
    import signal

    class TaskTimeout(Exception):
        pass

    def task_timeout(signum, frame):
        raise TaskTimeout

    def slow(answer):
        time.sleep(5)
        return []

    old = signal.signal(signal.SIGALRM, task_timeout)
    try:
        with testing.installed(testing.make_plugin("slow-rate", hooks={"rate": slow})):
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(TaskTimeout):
                services.rate("x")
            assert PluginState.objects.get(pk="slow-rate").error_count == 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
