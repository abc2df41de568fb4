"""The registry pages rendered by Django (the Chromium tests are in tests/e2e)."""

from __future__ import annotations

import pytest

from models_registry.models import Model, ModelImport, ModelTest
from tests.conftest import FAKE_MODEL, csrf_token, request_line


@pytest.mark.parametrize("url", ["/model-management", "/add-model", f"/models/{FAKE_MODEL}"])
def test_pages_are_staff_only(client, client_api, model, url):
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client_api.get(url).status_code == 302  # an API key is no staff session


def test_the_management_page_lists_models_with_usage_and_tests(staff_client, model, create_batch):
    create_batch([request_line(0), request_line(1)])
    Model.objects.filter(pk=model.pk).update(measured_output_tokens_per_second=42.0)
    ModelTest.objects.create(model=model, status="passed", output_tokens_per_second=99.5)

    page = staff_client.get("/model-management").content.decode()

    assert f'data-model="{FAKE_MODEL}"' in page
    assert '<td class="requests">2</td>' in page and "99.5 tok/s" in page
    assert 'id="models-throughput-chart"' in page and "Nothing to chart" not in page


def test_a_button_starts_a_test_and_the_model_page_shows_its_answers(
    staff_client, model, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            f"/models/{FAKE_MODEL}",
            {
                "action": "test",
                "prompts": "hello there",
                "max_tokens": "8",
                "csrfmiddlewaretoken": csrf_token(staff_client),
            },
        )
    assert response.status_code == 302
    page = staff_client.get(f"/models/{FAKE_MODEL}").content.decode()
    assert 'data-status="passed"' in page and "echo: hello there" in page


def test_a_refused_variant_shows_the_reason_and_keeps_the_form(staff_client, model):
    response = staff_client.post(
        f"/models/{FAKE_MODEL}",
        {"action": "variant", "name": "v1", "csrfmiddlewaretoken": csrf_token(staff_client)},
    )
    assert response.status_code == 400
    assert "at least one engine setting" in response.content.decode()
    assert not Model.objects.filter(name="v1").exists()


def test_adding_a_broken_folder_from_the_page_shows_the_reason(staff_client, model_folder):
    (model_folder / "tokenizer.json").unlink()
    response = staff_client.post(
        "/add-model",
        {
            "source_kind": "folder",
            "source": str(model_folder),
            "name": "broken",
            "csrfmiddlewaretoken": csrf_token(staff_client),
        },
    )
    assert response.status_code == 400
    assert "has no tokenizer" in response.content.decode()
    assert not Model.objects.filter(name="broken").exists()


def test_the_imports_part_refreshes_alone_while_an_import_runs(staff_client):
    ModelImport.objects.create(
        name="big",
        source_kind="hub",
        source="org/big",
        status="downloading",
        done_bytes=50,
        total_bytes=200,
    )
    part = staff_client.get("/add-model", headers={"HX-Request": "true"}).content.decode()
    assert part.startswith('<div id="model-imports" hx-get="/add-model"')
    assert "25%" in part and "<html" not in part


def test_an_unknown_model_page_is_a_404_that_says_so(staff_client):
    response = staff_client.get("/models/nope")
    assert response.status_code == 404 and "No model named" in response.content.decode()


def test_the_admin_checks_a_folder_before_saving(staff_client, model_folder):
    (model_folder / "model.safetensors").unlink()
    form = {
        "name": "admin-broken",
        "kind": "generate",
        "path": str(model_folder),
        "owned_by": "me",
        "is_active": "on",
        "created_at_0": "2026-12-02",
        "created_at_1": "00:00:00",
        "version": "1",
        "origin": "added",
        "dtype": "auto",
        "tensor_parallel_size": "1",
        "extra_args": "{}",
        "csrfmiddlewaretoken": csrf_token(staff_client),
    }
    refused = staff_client.post("/admin/models_registry/model/add/", form)
    assert refused.status_code == 200 and "has no weights" in refused.content.decode()
    assert not Model.objects.filter(name="admin-broken").exists()


def test_the_admin_adds_a_good_folder_and_tests_it_by_an_action(
    staff_client, model_folder, django_capture_on_commit_callbacks
):
    form = {
        "name": "admin-good",
        "kind": "generate",
        "path": str(model_folder),
        "owned_by": "me",
        "is_active": "on",
        "created_at_0": "2026-12-02",
        "created_at_1": "00:00:00",
        "version": "1",
        "origin": "added",
        "dtype": "auto",
        "tensor_parallel_size": "1",
        "extra_args": "{}",
        "csrfmiddlewaretoken": csrf_token(staff_client),
    }
    assert staff_client.post("/admin/models_registry/model/add/", form).status_code == 302
    model = Model.objects.get(name="admin-good")
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            "/admin/models_registry/model/",
            {
                "action": "test_models",
                "_selected_action": [model.pk],
                "csrfmiddlewaretoken": csrf_token(staff_client),
            },
        )
    assert model.tests.get().status == "passed"  # the fake engine answers any folder
