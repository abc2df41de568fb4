"""Adding a model from a folder, a GGUF file and a hub id, through ``POST /admin/models/add``.

Each bad model gets a 4xx in OpenAI's envelope naming the problem, and no registry row.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models_registry import builtin, sources
from models_registry.conversion import find_smollm2_gguf, is_complete
from models_registry.models import Model, ModelImport
from tests.models_registry.conftest import copy_model_folder, set_config

ADD = "/admin/models/add"


def added() -> set[str]:
    """Models registered besides the default one (a migration registers it)."""
    return set(Model.objects.values_list("name", flat=True)) - {builtin.DEFAULT_NAME}


def test_a_local_folder_is_checked_and_registered_in_place(staff_post, model_folder):
    # when an operator adds a folder with its engine settings and a description
    response = staff_post(
        ADD,
        {
            "source_kind": "folder",
            "source": str(model_folder),
            "name": "my-model",
            "dtype": "float32",
            "max_model_len": 1024,
            "description": "SmolLM2 from a folder",
        },
    )

    # then the model is registered at once, where it is, with what was given
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] == "my-model" and body["origin"] == "added" and body["kind"] == "generate"
    assert body["path"] == str(model_folder) and body["test_status"] == "untested"
    model = Model.objects.get(name="my-model")
    assert (model.dtype, model.max_model_len, model.description) == (
        "float32",
        1024,
        "SmolLM2 from a folder",
    )
    assert model.source == str(model_folder) and model.is_offered


@pytest.mark.parametrize(
    ("breakage", "code", "words"),
    [
        ("config", "missing_config", "no config.json"),
        ("tokenizer", "missing_tokenizer", "no tokenizer"),
        ("weights", "missing_weights", "no weights"),
        ("architecture", "unsupported_architecture", "MysteryForCausalLM"),
    ],
)
def test_a_broken_folder_gets_a_400_naming_the_problem_and_no_row(
    staff_post, model_folder, breakage, code, words
):
    if breakage == "config":
        (model_folder / "config.json").unlink()
    elif breakage == "tokenizer":
        (model_folder / "tokenizer.json").unlink()
    elif breakage == "weights":
        (model_folder / "model.safetensors").unlink()
    else:
        set_config(model_folder, architectures=["MysteryForCausalLM"])

    response = staff_post(ADD, {"source_kind": "folder", "source": str(model_folder)})

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["param"] == "path" and words in error["message"]
    assert not added()


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"source_kind": "folder", "source": ""}, 400, "source", None),
        ({"source_kind": "zip", "source": "/x"}, 400, "source_kind", None),
        ({"source_kind": "folder", "source": "/nowhere/at/all"}, 400, "path", "path_not_found"),
        ({"source_kind": "hub", "source": "not a repo id"}, 400, "source", "bad_repo_id"),
        ({"source_kind": "folder", "source": "FOLDER", "dtype": "float8"}, 400, "dtype", None),
        ({"source_kind": "folder", "source": "FOLDER", "name": "two words"}, 400, "name", None),
        (
            {"source_kind": "folder", "source": "FOLDER", "max_model_len": -3},
            400,
            "max_model_len",
            None,
        ),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(
    staff_post, model_folder, body, status, param, code
):
    body = {k: (str(model_folder) if v == "FOLDER" else v) for k, v in body.items()}
    response = staff_post(ADD, body)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["param"] == param, error
    if code:
        assert error["code"] == code
    assert not added() and not ModelImport.objects.exists()


def test_a_served_id_that_exists_is_a_conflict(staff_post, model_folder, model):
    response = staff_post(
        ADD, {"source_kind": "folder", "source": str(model_folder), "name": model.name}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "model_exists"


def test_only_staff_may_add(client, client_api, model_folder):
    body = {"source_kind": "folder", "source": str(model_folder)}
    assert client_api.post(ADD, body, format="json").status_code == 401  # an API key
    assert client.post(ADD, body, content_type="application/json").status_code in (401, 403)
    assert not added()


def test_a_post_without_the_csrf_token_is_refused(staff_client, model_folder):
    body = {"source_kind": "folder", "source": str(model_folder)}
    response = staff_client.post(ADD, body, content_type="application/json")
    assert response.status_code == 403
    assert not added()


def test_a_gguf_file_is_converted_into_the_data_folder_and_registered(
    staff_post, staff_client, settings, tmp_path
):
    # given the GGUF file shipped with the embedded model, and an empty data folder
    settings.MODELS_DIR = tmp_path / "models"
    gguf = find_smollm2_gguf()

    # when it is added (the conversion runs in the task, inline here: about 25 s)
    response = staff_post(ADD, {"source_kind": "gguf", "source": str(gguf), "name": "smol-gguf"})

    # then the request answered with an import, which ended with the converted model
    assert response.status_code == 202, response.content
    started = response.json()
    assert started["object"] == "model.import" and started["source_kind"] == "gguf"
    status = staff_client.get(f"{ADD}/{started['id']}").json()
    assert status["status"] == "succeeded", status
    assert status["model"] == "smol-gguf" and status["finished_at"]
    model = Model.objects.get(name="smol-gguf")
    assert model.origin == "converted" and model.source == str(gguf)
    assert Path(model.path) == settings.MODELS_DIR / "smol-gguf"
    assert is_complete(Path(model.path))


def test_a_file_that_is_not_gguf_is_refused_at_once(staff_post, tmp_path):
    fake = tmp_path / "weights.gguf"
    fake.write_bytes(b"\x00" * 64)
    response = staff_post(ADD, {"source_kind": "gguf", "source": str(fake), "name": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_gguf"
    assert not ModelImport.objects.exists()


def fake_hub(smollm2_folder: Path, fail_after_first_file: bool = False):
    """A stand-in for the hub download: writes the model's files into ``dest`` one by one,
    reporting bytes as the real one does; optionally fails half-way (a dropped connection)."""
    calls: list[dict] = []

    def download(repo_id: str, dest: Path, report, **options) -> Path:
        files = sorted(p for p in smollm2_folder.iterdir() if not p.name.startswith("."))
        total = sum(p.stat().st_size for p in files)
        present = [p.name for p in files if (dest / p.name).exists()]
        calls.append({"repo_id": repo_id, "already_there": present})
        done = sum((dest / name).stat().st_size for name in present)
        for file in files:
            if file.name in present:
                continue
            if fail_after_first_file and len(calls) == 1 and done > 0:
                raise sources.SourceError(f"Could not download {repo_id!r}: connection reset")
            if file.suffix == ".safetensors":
                (dest / file.name).symlink_to(file)
            else:
                shutil.copy(file, dest / file.name)
            done += file.stat().st_size
            report(done, total)
        return dest

    return download, calls


def test_a_hub_id_is_downloaded_into_the_data_folder_with_progress(
    staff_post, staff_client, settings, tmp_path, monkeypatch, smollm2_folder
):
    settings.MODELS_DIR = tmp_path / "models"
    download, calls = fake_hub(smollm2_folder)
    monkeypatch.setattr(sources, "download_snapshot", download)

    response = staff_post(
        ADD,
        {"source_kind": "hub", "source": "HuggingFaceTB/SmolLM2-135M-Instruct", "name": "smol-hub"},
    )

    assert response.status_code == 202, response.content
    status = staff_client.get(f"{ADD}/{response.json()['id']}").json()
    assert status["status"] == "succeeded", status
    assert status["percent"] == 100 and status["done_bytes"] == status["total_bytes"] > 0
    assert calls == [{"repo_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "already_there": []}]
    model = Model.objects.get(name="smol-hub")
    assert model.origin == "added" and model.source == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert Path(model.path) == settings.MODELS_DIR / "hub" / "HuggingFaceTB--SmolLM2-135M-Instruct"


def test_an_interrupted_download_fails_naming_the_model_and_resumes_on_retry(
    staff_post, staff_client, settings, tmp_path, monkeypatch, smollm2_folder
):
    settings.MODELS_DIR = tmp_path / "models"
    download, calls = fake_hub(smollm2_folder, fail_after_first_file=True)
    monkeypatch.setattr(sources, "download_snapshot", download)

    # when the connection drops after the first file
    started = staff_post(ADD, {"source_kind": "hub", "source": "org/smol", "name": "smol"}).json()
    status = staff_client.get(f"{ADD}/{started['id']}").json()

    # then the import failed with the model's name and the reason, and no model exists
    assert status["status"] == "failed"
    assert "smol" in status["error"] and "connection reset" in status["error"]
    assert not Model.objects.filter(name="smol").exists()

    # when it is retried, the download resumes: the file already there is not fetched again
    retried = staff_post(f"{ADD}/{started['id']}/retry", {})
    assert retried.status_code == 202
    assert staff_client.get(f"{ADD}/{started['id']}").json()["status"] == "succeeded"
    assert len(calls) == 2 and calls[1]["already_there"] == calls[0]["already_there"] + [
        sorted(p.name for p in smollm2_folder.iterdir() if not p.name.startswith("."))[0]
    ]
    assert Model.objects.filter(name="smol").exists()


def test_an_unreachable_hub_gives_a_clear_error_naming_the_model(
    staff_post, staff_client, settings, tmp_path
):
    # given the real download function, and a hub at an address where nothing listens
    settings.MODELS_DIR = tmp_path / "models"
    settings.MODELS_HUB_ENDPOINT = "http://127.0.0.1:9"

    started = staff_post(ADD, {"source_kind": "hub", "source": "someorg/absent-model"}).json()

    status = staff_client.get(f"{ADD}/{started['id']}").json()
    assert status["status"] == "failed"
    assert status["error"].startswith(
        "someorg/absent-model: Could not download 'someorg/absent-model' from the Hugging Face hub"
    )
    assert not added()


def test_downloads_switched_off_by_the_operator_say_so(
    staff_post, staff_client, settings, tmp_path, monkeypatch
):
    settings.MODELS_DIR = tmp_path / "models"
    monkeypatch.setattr(sources, "OPERATOR_OFFLINE", True)
    started = staff_post(ADD, {"source_kind": "hub", "source": "org/model"}).json()
    status = staff_client.get(f"{ADD}/{started['id']}").json()
    assert status["status"] == "failed" and "HF_HUB_OFFLINE=1" in status["error"]


def test_an_import_under_way_reserves_its_name(staff_post, monkeypatch, smollm2_folder):
    monkeypatch.setattr(sources, "download_snapshot", fake_hub(smollm2_folder)[0])
    ModelImport.objects.create(name="busy", source_kind="hub", source="org/busy")
    response = staff_post(ADD, {"source_kind": "hub", "source": "org/other", "name": "busy"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "import_running"


def test_an_import_whose_files_fail_the_checks_registers_nothing(
    staff_post, staff_client, settings, tmp_path, monkeypatch, smollm2_folder
):
    settings.MODELS_DIR = tmp_path / "models"

    def download(repo_id, dest, report, **options):
        copy_model_folder(smollm2_folder, dest / "x")
        (dest / "x" / "tokenizer.json").unlink()
        return dest / "x"

    monkeypatch.setattr(sources, "download_snapshot", download)
    started = staff_post(ADD, {"source_kind": "hub", "source": "org/no-tokenizer"}).json()
    status = staff_client.get(f"{ADD}/{started['id']}").json()
    assert status["status"] == "failed" and "no tokenizer" in status["error"]
    assert status["error"].startswith("org/no-tokenizer:")
    assert not added()


def test_the_import_status_of_an_unknown_id_is_a_404(staff_client):
    response = staff_client.get(f"{ADD}/999")
    assert response.status_code == 404
    assert json.loads(response.content)["error"]["param"] == "import_id"
