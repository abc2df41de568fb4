"""Variants (same weights, other engine settings, their own served id), lineage in /v1/models,
deactivation that keeps history, and usage per model."""

from __future__ import annotations

import pytest

from models_registry.models import Model
from models_registry.services import register_version
from tests.conftest import FAKE_MODEL, request_line

VARIANT = "/admin/models/variant"


def listed(client_api) -> dict[str, dict]:
    return {m["id"]: m for m in client_api.get("/v1/models").json()["data"]}


def test_a_variant_serves_the_same_weights_with_other_settings_under_its_own_id(
    staff_post, client_api, model
):
    # given a model with a folder and engine settings
    Model.objects.filter(pk=model.pk).update(
        path="/models/base", dtype="float32", max_model_len=2048
    )

    # when a variant with a shorter context and another KV cache is registered
    response = staff_post(
        VARIANT,
        {
            "parent": FAKE_MODEL,
            "name": "fake-ctx1024",
            "max_model_len": 1024,
            "cpu_kvcache_space_gib": 1,
        },
    )

    # then it is its own model, on the same folder, with the parent's other settings
    assert response.status_code == 201, response.content
    variant = Model.objects.get(name="fake-ctx1024")
    assert variant.path == "/models/base" and variant.dtype == "float32"
    assert (variant.max_model_len, variant.cpu_kvcache_space_gib) == (1024, 1)
    assert variant.origin == "variant" and variant.parent_id == model.pk
    assert "max_model_len=1024" in variant.description

    # and clients see both, the variant with its lineage as extension fields
    models = listed(client_api)
    assert models["fake-ctx1024"]["parent"] == FAKE_MODEL
    assert models["fake-ctx1024"]["origin"] == "variant"
    assert models["fake-ctx1024"]["base"] == FAKE_MODEL
    assert models[FAKE_MODEL]["parent"] is None and models[FAKE_MODEL]["origin"] == "added"


def test_the_lineage_of_a_fine_tuned_version_and_its_variant_reaches_the_base(client_api, model):
    tuned = register_version(name="fake-ft", path="/models/ft", parent=model)
    staff_variant = Model.objects.create(
        name="fake-ft-bf16",
        path=tuned.path,
        parent=tuned,
        origin="variant",
        version=2,
        dtype="bfloat16",
    )
    models = listed(client_api)
    assert (models["fake-ft"]["version"], models["fake-ft"]["origin"]) == (2, "fine-tuned")
    assert models[staff_variant.name]["parent"] == "fake-ft"
    assert models[staff_variant.name]["base"] == FAKE_MODEL


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"parent": FAKE_MODEL, "name": "v"}, 400, "dtype", "no_setting"),
        ({"parent": FAKE_MODEL, "name": "v", "dtype": "auto"}, 400, "dtype", "same_settings"),
        ({"parent": "nope", "name": "v", "dtype": "float16"}, 404, "model", None),
        (
            {"parent": FAKE_MODEL, "name": FAKE_MODEL, "dtype": "float16"},
            409,
            "name",
            "model_exists",
        ),
        ({"parent": FAKE_MODEL, "name": "v", "max_model_len": 0}, 400, "max_model_len", None),
    ],
)
def test_bad_variants_are_refused_naming_the_parameter(
    staff_post, model, body, status, param, code
):
    response = staff_post(VARIANT, body)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["param"] == param
    if code:
        assert error["code"] == code
    assert not Model.objects.filter(name="v").exists()


def test_deactivating_keeps_the_row_its_variants_and_its_usage(
    staff_post, staff_client, client_api, model, create_batch
):
    create_batch([request_line(0), request_line(1)])
    staff_post(VARIANT, {"parent": FAKE_MODEL, "name": "fake-f16", "dtype": "float16"})

    response = staff_post("/admin/models/state", {"model": FAKE_MODEL, "active": False})

    assert response.status_code == 200 and response.json()["is_active"] is False
    assert FAKE_MODEL not in listed(client_api) and "fake-f16" in listed(client_api)
    kept = staff_client.get(f"/admin/models/detail/{FAKE_MODEL}").json()
    assert kept["usage"]["batches"] == 1 and kept["usage"]["requests"] == 2
    assert Model.objects.get(name="fake-f16").parent.name == FAKE_MODEL


def test_usage_per_model_in_the_models_detail(client_api, model, create_batch):
    # given two batches of the model (3 and 2 requests), answered by the fake engine
    create_batch([request_line(i) for i in range(3)])
    last = create_batch([request_line(i) for i in range(2)])
    Model.objects.filter(pk=model.pk).update(measured_output_tokens_per_second=123.4)

    body = client_api.get(f"/v1/models/{FAKE_MODEL}").json()

    usage = body["usage"]
    assert (usage["batches"], usage["requests"], usage["completed_requests"]) == (2, 5, 5)
    assert usage["failed_requests"] == 0
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["last_used_at"] == last["created_at"]
    assert usage["output_tokens_per_second"] == 123.4


def test_a_model_never_used_has_zero_usage(client_api, model):
    usage = client_api.get(f"/v1/models/{FAKE_MODEL}").json()["usage"]
    assert usage["batches"] == 0 and usage["last_used_at"] is None
