"""Root URLs: the OpenAI-compatible API under /v1, the console, the admin, the API docs, metrics."""

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from batchserver import console
from batchserver.api.errors import json_error


def api_not_found(request, rest=""):
    return json_error(404, f"Unknown API path: {request.path}", code="unknown_url")


urlpatterns = [
    path("v1/", include("jobs.api.urls")),
    path("v1/", include("models_registry.api.urls")),
    path("v1/", include("benchmarks.api.urls")),  # staff only (session), never an API key
    path("v1/", include("curation.api.urls")),  # API keys (own datasets) and staff sessions
    path("v1/", include("finetuning.api.urls")),
    re_path(r"^v1/(?P<rest>.*)$", api_not_found),
    path(
        "", include("batchserver.operations.urls")
    ),  # /, /dashboard, /settings, /config, /logs, /health
    path("", include("jobs.urls")),  # operator pages, staff-only
    path("", include("plugins.urls")),  # /plugins and the pages plugins contribute
    path("api/", include("plugins.api.urls")),  # the plugins' staff API
    path("", include("benchmarks.pages.urls")),  # /benchmark-runner, /model-comparison
    path("", include("finetuning.urls")),  # /fine-tuning
    path("", include("benchmarks.api.admin_urls")),  # /admin/benchmarks/…, before the admin
    path("", include("models_registry.pages.urls")),  # /model-management, /add-model, /models/…
    path("", include("models_registry.api.admin_urls")),  # /admin/models/…, before the admin
    path("", include("curation.urls")),  # /workbench, /curation, /enhanced-workbench
    # The operator pages' first home, inside the admin: kept as redirects.
    re_path(r"^admin/ops/(?P<rest>.*?)/?$", RedirectView.as_view(url="/%(rest)s", permanent=True)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("", include("django_prometheus.urls")),
]
# A console page whose app is not installed (or does not serve it yet) says so
# (batchserver/console.py), never a 404: these come last, so an app's own page wins.
urlpatterns += [
    path(page.path, console.not_installed, {"page": page.path})
    for page in console.PAGES
    if page.app
]

# A database outage noticed outside a view (session middleware) is a 503 too.
handler500 = "batchserver.middleware.server_error"

admin.site.site_header = "batchserver"
admin.site.site_title = "batchserver admin"
admin.site.index_title = "Operations"
admin.site.site_url = "/api/docs/"
