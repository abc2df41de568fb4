"""The registry pages: ``/model-management``, ``/add-model`` and each model's own page.

Controls are POST forms with CSRF that call one service each and redirect (post/redirect/get);
a refused value shows the service's message. Live parts (a test or an import under way) refresh
themselves with htmx (``HX-Request``: only that part is rendered).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.http import require_http_methods

from batchserver import charts
from batchserver.console import render_page
from batchserver.errors import DomainError
from models_registry import adding, model_tests, selectors, services
from models_registry.models import PEAK_MEMORY_MEASURE, Model, ModelImport, ModelTest
from models_registry.pages import forms

REFRESH = "every 2s"


def _no_cache(response: HttpResponse) -> HttpResponse:
    patch_vary_headers(response, ["HX-Request"])
    add_never_cache_headers(response)
    return response


def model_url(model: Model) -> str:
    return reverse("model-page", args=[model.name])


def _control(request: HttpRequest, model: Model) -> str:
    """Do what a row's button asks (test, activate, deactivate, force); returns a message."""
    action = request.POST.get("action")
    if action == "test":
        form = forms.TestForm(request.POST)
        prompts = form.data.get("prompts") or None
        test = model_tests.start_test(
            model,
            prompts=prompts,
            max_tokens=form.data.get("max_tokens") or 32,
            created_by=request.user.get_username(),
        )
        return f"Test {test.pk} of {model.name} queued (batch {test.batch_id})."
    if action in ("activate", "deactivate"):
        services.set_active(model, action == "activate")
        return f"{model.name} {action}d."
    if action in ("force", "unforce"):
        services.force_offer(model, action == "force")
        return f"{model.name} is {'now' if action == 'force' else 'no longer'} forced."
    raise DomainError(f"Unknown action {action!r}.", param="action")


def registry_context() -> dict[str, Any]:
    rows = selectors.registry_rows()
    measured = [r for r in rows if r["usage"]["output_tokens_per_second"]]
    chart = charts.grouped_bar_chart(
        [r["model"].name for r in measured],
        [("output tok/s", [r["usage"]["output_tokens_per_second"] for r in measured])],
        title="Measured output tokens per second",
        unit="tok/s",
        chart_id="models-throughput-chart",
    )
    testing = any(r["test"] and r["test"].status == ModelTest.Status.QUEUED for r in rows)
    return {
        "rows": rows,
        "chart": chart,
        "refresh": REFRESH if testing else "",
        "now": timezone.now(),
    }


@staff_member_required
@require_http_methods(["GET", "POST"])
def management(request: HttpRequest) -> HttpResponse:
    """Every model: lineage, state, last test, usage; test / (de)activate buttons."""
    if request.method == "POST":
        try:
            model = services.get_model(request.POST.get("model", ""))
            messages.success(request, _control(request, model))
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect(request.path)
    if request.headers.get("HX-Request") == "true":
        return _no_cache(render(request, "models_registry/_registry.html", registry_context()))
    return _no_cache(
        render_page(request, "models_registry/management.html", "Models", registry_context())
    )


def imports_context() -> dict[str, Any]:
    rows = []
    for job in selectors.recent_imports():
        percent = job.percent
        label = f"{percent}%" if percent is not None else job.get_status_display()
        rows.append({"job": job, "bar": charts.progress_bar(percent or 0, label)})
    active = any(r["job"].is_active for r in rows)
    return {"imports": rows, "refresh": REFRESH if active else "", "now": timezone.now()}


@staff_member_required
@require_http_methods(["GET", "POST"])
def add_model(request: HttpRequest) -> HttpResponse:
    """Add a folder at once, or start a GGUF conversion or a hub download and follow it."""
    if request.headers.get("HX-Request") == "true" and request.method == "GET":
        return _no_cache(render(request, "models_registry/_imports.html", imports_context()))
    form = forms.AddModelForm(request.POST or None)
    problem = None
    if request.method == "POST" and request.POST.get("action") == "retry":
        try:
            job = adding.retry_import(adding.get_import(request.POST.get("import_id")))
            messages.success(request, f"Import of {job.name} started again.")
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect(request.path)
    if request.method == "POST" and form.is_valid():
        try:
            found = adding.add_model(created_by=request.user.get_username(), **form.add_arguments())
        except DomainError as exc:
            problem = exc
        else:
            if isinstance(found, Model):
                messages.success(request, f"Model {found.name} added.")
                return redirect(model_url(found))
            messages.success(request, f"Import of {found.name} started.")
            return redirect(request.path)
    context = {"form": form, "problem": problem, **imports_context()}
    response = render_page(request, "models_registry/add_model.html", "Add model", context)
    if request.method == "POST":
        response.status_code = 400
    return _no_cache(response)


def _model_context(model: Model, variant_form: forms.VariantForm | None = None) -> dict[str, Any]:
    tests = list(model.tests.all()[:10])
    testing = any(t.status == ModelTest.Status.QUEUED for t in tests)
    return {
        "model": model,
        "lineage": selectors.lineage_of(model),
        "children": list(model.children.order_by("name")),
        "usage": selectors.usage([model])[model.name],
        "tests": tests,
        "settings": model.engine_settings(),
        "peak_memory_measure": PEAK_MEMORY_MEASURE,
        "imports": list(ModelImport.objects.filter(model=model)[:1]),
        "test_form": forms.TestForm(),
        "variant_form": variant_form or forms.VariantForm(),
        "refresh": REFRESH if testing else "",
        "now": timezone.now(),
    }


def _variant(request: HttpRequest, model: Model) -> tuple[forms.VariantForm, Model | None]:
    form = forms.VariantForm(request.POST)
    if not form.is_valid():
        return form, None
    variant = services.register_variant(
        model,
        name=form.cleaned_data["name"],
        description=form.cleaned_data["description"],
        **form.settings(),
    )
    return form, variant


@staff_member_required
@require_http_methods(["GET", "POST"])
def model_page(request: HttpRequest, name: str) -> HttpResponse:
    """One model: lineage, settings, usage, tests with their answers; test, variant, state."""
    try:
        model = services.get_model(name)
    except DomainError:
        response = render_page(
            request, "models_registry/missing.html", "Unknown model", {"name": name}
        )
        response.status_code = 404
        return response
    if request.headers.get("HX-Request") == "true" and request.method == "GET":
        # The state card rides along out of band: a passed or failed test changes it.
        context = {**_model_context(model), "oob": True}
        return _no_cache(render(request, "models_registry/_tests.html", context))
    variant_form = None
    if request.method == "POST":
        try:
            if request.POST.get("action") == "variant":
                variant_form, variant = _variant(request, model)
                if variant is not None:
                    messages.success(request, f"Variant {variant.name} registered.")
                    return redirect(model_url(variant))
            else:
                messages.success(request, _control(request, model))
                return redirect(model_url(model))
        except DomainError as exc:
            messages.error(request, exc.message)
            if request.POST.get("action") != "variant":
                return redirect(model_url(model))
            variant_form = forms.VariantForm(request.POST)
    response = render_page(
        request, "models_registry/model.html", model.name, _model_context(model, variant_form)
    )
    if variant_form is not None:
        response.status_code = 400
    return _no_cache(response)
