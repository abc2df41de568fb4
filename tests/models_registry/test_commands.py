"""The registry's management commands (tasks inline: django-q2 sync mode)."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from models_registry.models import Model
from models_registry.services import register_model
from tests.conftest import FAKE_MODEL


def test_add_model_registers_a_folder(db, model_folder):
    out = io.StringIO()
    call_command("add_model", "--folder", str(model_folder), "--name", "cli-model", stdout=out)
    assert "Model cli-model added" in out.getvalue()
    assert Model.objects.get(name="cli-model").origin == "added"


def test_add_model_refuses_a_broken_folder_with_the_reason(db, model_folder):
    (model_folder / "tokenizer.json").unlink()
    with pytest.raises(CommandError, match="no tokenizer"):
        call_command("add_model", "--folder", str(model_folder), "--name", "cli-broken")
    assert not Model.objects.filter(name="cli-broken").exists()


def test_add_model_follows_an_import_and_reports_its_failure(transactional_db, settings, tmp_path):
    settings.MODELS_DIR = tmp_path
    settings.MODELS_HUB_ENDPOINT = "http://127.0.0.1:9"
    with pytest.raises(CommandError, match="Could not download 'org/none'"):
        call_command("add_model", "--hub", "org/none", stderr=io.StringIO())


def test_test_model_prints_the_answers_and_the_verdict(transactional_db):
    # committed for real, so the test batch's tasks run (inline) before the command polls
    register_model(FAKE_MODEL)
    out = io.StringIO()
    call_command(
        "test_model",
        FAKE_MODEL,
        "--prompt",
        "ping",
        "--timeout",
        "30",
        stdout=out,
        stderr=io.StringIO(),
    )
    assert "→ echo: ping" in out.getvalue() and "passed" in out.getvalue()
