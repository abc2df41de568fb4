"""The one operator console: its navigation, shared by every app's pages.

Every staff page extends ``console/base.html``, which draws the navigation below on top of the
admin's own look (its styles, colour variables and dark mode). An app's pages sit at the short
paths listed here; a page whose app is not installed answers an honest "not installed" page
(``not_installed``) instead of a 404, so the console's map never has holes.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@dataclass(frozen=True)
class Page:
    """One entry of the navigation: where it lives, and the app that must serve it."""

    path: str  # the short path, without the leading slash ("" for the hub)
    label: str
    section: str
    app: str | None = None  # app label that serves it; None: always there
    description: str = ""

    @property
    def url(self) -> str:
        return f"/{self.path}"

    @property
    def installed(self) -> bool:
        return self.app is None or apps.is_installed(self.app)


PAGES: tuple[Page, ...] = (
    Page("", "Hub", "Overview", None, "status at a glance, links, the SDK snippet"),
    Page("queue", "Queue", "Batches", "jobs", "queued and running batches, live"),
    Page("history", "History", "Batches", "jobs", "finished batches, throughput charts"),
    Page("workers", "Workers", "Batches", "jobs", "heartbeats, loaded models, current work"),
    Page("model-management", "Models", "Models", "models_registry", "registry, tests, usage"),
    Page("add-model", "Add model", "Models", "models_registry", "a folder, a GGUF file, a hub id"),
    Page("benchmark-runner", "Benchmarks", "Models", "benchmarks", "start and follow runs"),
    Page("model-comparison", "Comparison", "Models", "benchmarks", "runs side by side"),
    Page("fine-tuning", "Fine-tuning", "Models", "finetuning", "jobs, loss curves, results"),
    Page("workbench", "Workbench", "Curation", "curation", "review answers one by one"),
    Page("curation", "Datasets", "Curation", "curation", "datasets, splits, exports"),
    Page("enhanced-workbench", "Analytics", "Curation", "curation", "ratings and agreement"),
    Page("plugins", "Plugins", "System", "plugins", "installed plugins, hooks, settings"),
    Page("dashboard", "Dashboard", "System", None, "metrics over time"),
    Page("logs", "Logs", "System", None, "recent log lines of web and worker"),
    Page("settings", "Settings", "System", None, "settings safe to change while running"),
    Page("config", "Config", "System", None, "the effective configuration, versions"),
    Page("admin/", "Admin", "System", None, "the Django admin"),
)


def sections() -> list[tuple[str, list[Page]]]:
    """The navigation grouped by section, in order."""
    grouped: dict[str, list[Page]] = {}
    for page in PAGES:
        grouped.setdefault(page.section, []).append(page)
    return list(grouped.items())


def page_for(path: str) -> Page | None:
    return next((p for p in PAGES if p.path == path.strip("/")), None)


def context(request: HttpRequest) -> dict:
    """Template context processor: the navigation, for pages of staff users only."""
    user = getattr(request, "user", None)
    if user is None or not user.is_active or not user.is_staff:
        return {}
    current = request.path
    return {
        "console_sections": sections(),
        "console_current": next(
            (
                p
                for p in sorted(PAGES, key=lambda p: -len(p.path))
                if p.path and current.startswith(p.url)
            ),
            PAGES[0] if current == "/" else None,
        ),
    }


def render_page(
    request: HttpRequest, template: str, title: str, context: dict | None = None
) -> HttpResponse:
    """Render a full console page with the admin's context (site header, user links)."""
    from django.contrib import admin

    full = {**admin.site.each_context(request), "title": title, **(context or {})}
    return render(request, template, full)


@staff_member_required
def not_installed(request: HttpRequest, page: str = "") -> HttpResponse:
    """The page of an app that is not installed: says so, with what would provide it."""
    found = page_for(page or request.path)
    response = render_page(
        request,
        "console/not_installed.html",
        found.label if found else "Not installed",
        {"page": found},
    )
    response.status_code = 200
    return response
