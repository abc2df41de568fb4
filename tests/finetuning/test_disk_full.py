"""A full disk while the merged model is saved: the job fails clearly, nothing is registered.

The merged folder goes to a real 1 MB tmpfs (root only), too small for the tiny model's weights:
the training process's save fails with ENOSPC, its partial folder is removed, and the job ends
``failed`` with ``disk_full``.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from finetuning.models import FineTuningJob
from tests.finetuning.conftest import examples

pytestmark = pytest.mark.reliability


@pytest.fixture
def small_disk(tmp_path, settings):
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    settings.FINETUNE_MODELS_DIR = mount
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_while_saving_fails_the_job_and_registers_nothing(
    create_job, ft_file, tiny_base, small_disk
):
    job = create_job(
        run=True,
        training_file=ft_file(examples(12)),
        hyperparameters={"n_epochs": 1, "batch_size": 4},
    )

    assert job["status"] == "failed"
    assert job["error"]["code"] == "disk_full"
    assert "The disk is full; nothing was registered." in job["error"]["message"]
    assert job["fine_tuned_model"] is None
    assert tiny_base.children.count() == 0
    assert list(small_disk.iterdir()) == []  # the partial folder is gone, the space is back
    row = FineTuningJob.objects.get(pk=job["id"])
    assert row.events.filter(level="error").count() == 1
