"""Charts drawn on the server as inline SVG: no JavaScript, no build step, nothing to download."""

from __future__ import annotations

import math
from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 36


def _nice_max(value: float) -> float:
    """A round number at or above ``value`` for the top of the y axis."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(s * magnitude for s in (1, 2, 2.5, 5, 10) if s * magnitude >= value)


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def time_chart(
    points: list[tuple[datetime, float, str]], *, title: str, unit: str, chart_id: str
) -> SafeString:
    """A line chart of (time, value, label) points: one marker per point, with a tooltip."""
    if not points:
        return format_html('<p class="ops-empty" id="{}">No finished batch to chart.</p>', chart_id)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    start, end = points[0][0], points[-1][0]
    span = max((end - start).total_seconds(), 1e-9)
    top = _nice_max(max(v for _, v, _ in points))

    def xy(when: datetime, value: float) -> tuple[float, float]:
        x = LEFT + (
            plot_w / 2 if len(points) == 1 else plot_w * (when - start).total_seconds() / span
        )
        return round(x, 1), round(TOP + plot_h * (1 - value / top), 1)

    coords = [xy(when, value) for when, value, _ in points]
    grid = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="grid"/>'
        '<text x="{}" y="{}" text-anchor="end" class="tick">{}</text>',
        (
            (LEFT, y, WIDTH - RIGHT, y, LEFT - 6, y + 4, _number(top * f))
            for f in (0, 0.25, 0.5, 0.75, 1)
            for y in [round(TOP + plot_h * (1 - f), 1)]
        ),
    )
    markers = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="4" class="point" data-value="{}">'
        "<title>{}: {} {} ({})</title></circle>",
        (
            (x, y, f"{value:.6g}", label, _number(value), unit, f"{when:%Y-%m-%d %H:%M:%S}")
            for (x, y), (when, value, label) in zip(coords, points, strict=True)
        ),
    )
    line = " ".join(f"{x},{y}" for x, y in coords)
    return format_html(
        '<svg id="{}" class="ops-chart" role="img" viewBox="0 0 {} {}" width="100%" '
        'data-points="{}" aria-label="{}">'
        '<text x="{}" y="12" class="title">{} ({})</text>{}'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>'
        '<polyline points="{}" class="series"/>{}'
        '<text x="{}" y="{}" class="tick">{}</text>'
        '<text x="{}" y="{}" text-anchor="end" class="tick">{}</text></svg>',
        chart_id,
        WIDTH,
        HEIGHT,
        len(points),
        title,
        LEFT,
        title,
        unit,
        grid,
        LEFT,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        line,
        markers,
        LEFT,
        HEIGHT - 10,
        f"{start:%Y-%m-%d %H:%M:%S}",
        WIDTH - RIGHT,
        HEIGHT - 10,
        f"{end:%Y-%m-%d %H:%M:%S}",
    )


def progress_bar(percent: int, label: str) -> SafeString:
    """The admin-coloured bar the queue and batch pages share."""
    percent = max(0, min(100, int(percent)))
    return format_html(
        '<div class="ops-progress" role="progressbar" aria-valuenow="{}" aria-valuemin="0" '
        'aria-valuemax="100"><div class="ops-progress-fill" style="width: {}%"></div>'
        '<span class="ops-progress-label">{}</span></div>',
        percent,
        percent,
        label,
    )
