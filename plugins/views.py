"""The /plugins console page, the pages plugins contribute, and export downloads (staff only)."""

from __future__ import annotations

import tempfile

from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.views.decorators.http import require_POST

from batchserver.console import render_page
from batchserver.errors import DomainError
from plugins import services
from plugins.types import PageRequest, Redirect


def index(request: HttpRequest) -> HttpResponse:
    """Every plugin: status, version, hooks, settings, errors, toggles, component previews."""
    services.ensure_states()
    plugins = services.list_plugins()
    for plugin in plugins:
        for component in plugin["components"]:
            component["preview_id"] = f"sample-{plugin['id']}-{component['name']}"
    context = {
        "plugins": plugins,
        "counts": {
            status: sum(1 for p in plugins if p["status"] == status)
            for status in ("enabled", "disabled", "auto_disabled", "refused")
        },
        "exports": services.export_formats(),
        "pages": services.ui_pages(),
    }
    return render_page(request, "plugins/index.html", "Plugins", context)


@require_POST
def toggle(request: HttpRequest, plugin_id: str, action: str) -> HttpResponse:
    """Enable or disable from the page's buttons (a form post: works without JavaScript)."""
    try:
        if action == "enable":
            services.enable(plugin_id)
        else:
            services.disable(plugin_id)
        messages.success(request, f"Plugin {plugin_id} {action}d.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return HttpResponseRedirect(f"/plugins#plugin-{plugin_id}")


@require_POST
def rescan(request: HttpRequest) -> HttpResponse:
    services.rescan()
    messages.success(request, "Plugins found again in every process.")
    return HttpResponseRedirect("/plugins")


def plugin_page(request: HttpRequest, plugin_id: str, page: str) -> HttpResponse:
    """A page a plugin contributes, inside the console; its widgets are rendered (escaped) here."""
    page_request = PageRequest(
        method=request.method or "GET",
        query=request.GET.dict(),
        form=request.POST.dict(),
        files=request.FILES.dict(),
        user=request.user.get_username(),
        path=request.path,
    )
    try:
        plugin = services.get_plugin(plugin_id)
        result = services.render_page(plugin_id, page, page_request, get_token(request))
    except DomainError as exc:
        response = render_page(request, "plugins/page.html", "Plugin page", {"error": exc.message})
        response.status_code = exc.status
        return response
    if isinstance(result, Redirect):
        return HttpResponseRedirect(result.url)
    title = next((p["title"] for p in plugin["pages"] if p["name"] == page), page)
    return render_page(request, "plugins/page.html", title, {"plugin": plugin, "body": result})


def export(request: HttpRequest, format_id: str) -> HttpResponse:
    """Download a batch's results in a plugin's export format (``?batch_id=``).

    The export is written to a temporary file first, record by record, so memory stays flat
    whatever the batch's size, then streamed from disk.
    """
    batch_id = request.GET.get("batch_id", "")
    try:
        fmt = services.get_export_format(format_id)
        spool = tempfile.TemporaryFile()
        services.export(format_id, services.batch_records(batch_id), spool)
    except DomainError as exc:
        return HttpResponse(exc.message, status=exc.status, content_type="text/plain")
    spool.seek(0)
    return FileResponse(
        spool,
        as_attachment=True,
        filename=f"{batch_id}.{fmt.extension}",
        content_type=fmt.content_type,
    )
