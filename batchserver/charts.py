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


def duration_text(seconds: float) -> str:
    """12 s, 3 min 4 s, 2 h 5 min: what an operator reads at a glance."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


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


# Series colours of the bar and multi-line charts (classes in console.css).
SERIES_CLASSES = 6


def _y_grid(top: float, plot_h: float) -> SafeString:
    return format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="grid"/>'
        '<text x="{}" y="{}" text-anchor="end" class="tick">{}</text>',
        (
            (LEFT, y, WIDTH - RIGHT, y, LEFT - 6, y + 4, _number(top * f))
            for f in (0, 0.25, 0.5, 0.75, 1)
            for y in [round(TOP + plot_h * (1 - f), 1)]
        ),
    )


def _legend(names: list[str]) -> SafeString:
    return format_html_join(
        "",
        '<span class="chart-legend-item"><span class="chart-swatch chart-swatch-{}"></span>'
        "{}</span>",
        ((i % SERIES_CLASSES, name) for i, name in enumerate(names)),
    )


def grouped_bar_chart(
    groups: list[str],
    series: list[tuple[str, list[float | None]]],
    *,
    title: str,
    unit: str,
    chart_id: str,
    top: float | None = None,
) -> SafeString:
    """Bars per group (x axis), one bar per series in each group; None draws no bar.

    One series is a plain bar chart (e.g. tokens/s per model); several are grouped (e.g. one
    group per scorer, one bar per model). ``top`` fixes the y axis (1.0 for scores).
    """
    values = [v for _, vs in series for v in vs if v is not None]
    if not groups or not values:
        return format_html('<p class="ops-empty" id="{}">Nothing to chart yet.</p>', chart_id)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = top or _nice_max(max(values))
    slot = plot_w / len(groups)
    bar_w = max(2.0, slot * 0.8 / max(1, len(series)))
    bars = []
    for g, group in enumerate(groups):
        for s, (name, vs) in enumerate(series):
            value = vs[g] if g < len(vs) else None
            if value is None:
                continue
            height = plot_h * min(value, top) / top
            x = LEFT + slot * g + slot * 0.1 + bar_w * s
            bars.append(
                (
                    s % SERIES_CLASSES,
                    round(x, 1),
                    round(TOP + plot_h - height, 1),
                    round(bar_w - 1, 1),
                    round(height, 1),
                    f"{value:.6g}",
                    f"{group} · {name}" if len(series) > 1 else group,
                    _number(value),
                    unit,
                )
            )
    rects = format_html_join(
        "",
        '<rect class="bar bar-{}" x="{}" y="{}" width="{}" height="{}" data-value="{}">'
        "<title>{}: {} {}</title></rect>",
        bars,
    )
    labels = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="middle" class="tick">{}</text>',
        (
            (round(LEFT + slot * (g + 0.5), 1), HEIGHT - BOTTOM + 14, group[:28])
            for g, group in enumerate(groups)
        ),
    )
    legend = _legend([name for name, _ in series]) if len(series) > 1 else ""
    return format_html(
        '<figure class="chart-figure"><svg id="{}" class="ops-chart" role="img" '
        'viewBox="0 0 {} {}" width="100%" data-bars="{}" aria-label="{}">'
        '<text x="{}" y="12" class="title">{} ({})</text>{}'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>{}{}</svg>'
        '<figcaption class="chart-legend">{}</figcaption></figure>',
        chart_id,
        WIDTH,
        HEIGHT,
        len(bars),
        title,
        LEFT,
        title,
        unit,
        _y_grid(top, plot_h),
        LEFT,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        rects,
        labels,
        legend,
    )


def multi_line_chart(
    series: dict[str, list[tuple[datetime, float]]], *, title: str, unit: str, chart_id: str
) -> SafeString:
    """One line per named series over a shared time axis (e.g. tokens/s per model over runs)."""
    points = [(when, value) for pts in series.values() for when, value in pts]
    if not points:
        return format_html('<p class="ops-empty" id="{}">No finished run to chart.</p>', chart_id)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    start = min(w for w, _ in points)
    end = max(w for w, _ in points)
    span = max((end - start).total_seconds(), 1e-9)
    top = _nice_max(max(v for _, v in points))

    def xy(when: datetime, value: float) -> tuple[float, float]:
        offset = plot_w / 2 if start == end else plot_w * (when - start).total_seconds() / span
        return round(LEFT + offset, 1), round(TOP + plot_h * (1 - value / top), 1)

    parts = []
    for i, (name, pts) in enumerate(series.items()):
        coords = [xy(w, v) for w, v in sorted(pts)]
        css = i % SERIES_CLASSES
        line = " ".join(f"{x},{y}" for x, y in coords)
        markers = format_html_join(
            "",
            '<circle cx="{}" cy="{}" r="4" class="point point-{}" data-value="{}">'
            "<title>{}: {} {} ({})</title></circle>",
            (
                (x, y, css, f"{v:.6g}", name, _number(v), unit, f"{w:%Y-%m-%d %H:%M}")
                for (x, y), (w, v) in zip(coords, sorted(pts), strict=True)
            ),
        )
        parts.append(
            format_html(
                '<polyline points="{}" class="line line-{}" data-series="{}"/>{}',
                line,
                css,
                name,
                markers,
            )
        )
    return format_html(
        '<figure class="chart-figure"><svg id="{}" class="ops-chart" role="img" '
        'viewBox="0 0 {} {}" width="100%" data-series="{}" aria-label="{}">'
        '<text x="{}" y="12" class="title">{} ({})</text>{}'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>{}'
        '<text x="{}" y="{}" class="tick">{}</text>'
        '<text x="{}" y="{}" text-anchor="end" class="tick">{}</text></svg>'
        '<figcaption class="chart-legend">{}</figcaption></figure>',
        chart_id,
        WIDTH,
        HEIGHT,
        len(series),
        title,
        LEFT,
        title,
        unit,
        _y_grid(top, plot_h),
        LEFT,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        format_html_join("", "{}", ((p,) for p in parts)),
        LEFT,
        HEIGHT - 10,
        f"{start:%Y-%m-%d %H:%M}",
        WIDTH - RIGHT,
        HEIGHT - 10,
        f"{end:%Y-%m-%d %H:%M}",
        _legend(list(series)),
    )
