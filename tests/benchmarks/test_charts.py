"""The chart functions the comparison page adds to batchserver/charts.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from batchserver import charts


def test_grouped_bars_draw_one_bar_per_value_and_escape_labels():
    svg = charts.grouped_bar_chart(
        ["<b>model</b>", "other"],
        [("a", [1.0, None]), ("b", [0.5, 0.25])],
        title="Quality",
        unit="0–1",
        chart_id="c",
        top=1.0,
    )
    assert svg.count("<rect") == 3 and 'data-bars="3"' in svg
    assert "<b>model</b>" not in svg and "&lt;b&gt;model&lt;/b&gt;" in svg
    assert 'class="bar bar-1"' in svg  # the second series has its own colour


def test_a_chart_with_nothing_to_draw_says_so():
    assert "Nothing to chart yet." in charts.grouped_bar_chart(
        [], [], title="t", unit="u", chart_id="c"
    )
    assert "No finished run" in charts.multi_line_chart({}, title="t", unit="u", chart_id="h")


def test_one_line_per_series_over_time():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    svg = charts.multi_line_chart(
        {"m1": [(start, 10.0), (start + timedelta(hours=1), 20.0)], "m2": [(start, 5.0)]},
        title="tok/s",
        unit="tokens/s",
        chart_id="h",
    )
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 3
    assert 'data-series="m1"' in svg and 'data-series="2"' in svg
