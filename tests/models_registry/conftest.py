"""Fixtures of the registry tests: model folders (good and broken), the staff API, inline tasks."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from models_registry import builtin
from tests.conftest import csrf_token


@pytest.fixture(scope="session")
def smollm2_folder() -> Path:
    """The embedded model converted into a folder (once per machine, about 25 s)."""
    return Path(builtin.resolve_path(builtin.BUILTIN_PATH))


def copy_model_folder(source: Path, dest: Path) -> Path:
    """A copy of a model folder whose weights are symlinks (fast, and the files stay intact)."""
    dest.mkdir(parents=True)
    for item in source.iterdir():
        if item.name.startswith("."):
            continue
        if item.suffix in (".safetensors", ".bin"):
            (dest / item.name).symlink_to(item)
        else:
            shutil.copy(item, dest / item.name)
    return dest


@pytest.fixture
def model_folder(tmp_path, smollm2_folder) -> Path:
    """A good Hugging Face folder of our own, free to be broken by a test."""
    return copy_model_folder(smollm2_folder, tmp_path / "my-model")


def set_config(folder: Path, **changes: Any) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.fixture
def staff_post(staff_client, django_capture_on_commit_callbacks) -> Callable[..., Any]:
    """POST JSON to a staff endpoint with the session's CSRF token; tasks run inline."""

    def _post(url: str, body: dict[str, Any]):
        with django_capture_on_commit_callbacks(execute=True):
            return staff_client.post(
                url,
                body,
                content_type="application/json",
                headers={"X-CSRFToken": csrf_token(staff_client)},
            )

    return _post
