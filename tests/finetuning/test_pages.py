"""The /fine-tuning console page and the fine_tuning_jobs admin table."""

from __future__ import annotations

import io

import pytest

from batchserver.models import ApiKey
from finetuning.models import FineTuningJob
from tests.conftest import csrf_token, jsonl
from tests.finetuning.conftest import TINY, examples, job_row


@pytest.fixture
def training(ft_file, tiny_base) -> str:
    return ft_file(examples(12))


def test_the_page_is_staff_only(client, db):
    response = client.get("/fine-tuning")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_job_is_created_from_the_form_with_an_upload(
    staff_client, tiny_base, django_capture_on_commit_callbacks
):
    upload = io.BytesIO(jsonl(examples(12)))
    upload.name = "mine.jsonl"
    with django_capture_on_commit_callbacks(execute=False):
        response = staff_client.post(
            "/fine-tuning",
            {
                "action": "create",
                "training_upload": upload,
                "model": TINY,
                "suffix": "form",
                "n_epochs": "1",
                "csrfmiddlewaretoken": csrf_token(staff_client),
            },
        )
    assert response.status_code == 302, response.content.decode()[-2000:]
    job = FineTuningJob.objects.get()
    assert response["Location"] == f"/fine-tuning?job={job.id}"
    assert job.owner == ApiKey.console_key() and job.suffix == "form"
    assert job.hyperparameters == {"n_epochs": 1}

    page = staff_client.get(response["Location"]).content.decode()
    assert f'data-job="{job.id}"' in page and "validating_files" in page
    assert 'id="ft-create-form"' in page


def test_a_refused_form_says_why(staff_client, tiny_base):
    response = staff_client.post(
        "/fine-tuning",
        {"action": "create", "model": TINY, "csrfmiddlewaretoken": csrf_token(staff_client)},
    )
    assert response.status_code == 400
    assert "Upload a training file or choose a stored one." in response.content.decode()


def test_buttons_pause_resume_and_cancel(staff_client, create_job, training):
    job = create_job(training_file=training)
    token = csrf_token(staff_client)
    for action, status in (("pause", "paused"), ("resume", "queued"), ("cancel", "cancelled")):
        response = staff_client.post(
            "/fine-tuning", {"action": action, "job_id": job["id"], "csrfmiddlewaretoken": token}
        )
        assert response.status_code == 302
        assert job_row(job["id"]).status == status
    page = staff_client.get(response["Location"]).content.decode()
    assert f"Fine-tuning job {job['id']}: cancelled." in page
    refused = staff_client.post(
        "/fine-tuning", {"action": "cancel", "job_id": job["id"], "csrfmiddlewaretoken": token}
    )
    assert refused.status_code == 400 and "has already ended" in refused.content.decode()


def test_a_finished_job_shows_its_curve_checkpoints_model_and_benchmark_link(
    staff_client, create_job, training
):
    job = create_job(
        run=True, training_file=training, hyperparameters={"n_epochs": 1, "batch_size": 4}
    )
    page = staff_client.get(f"/fine-tuning?job={job['id']}").content.decode()

    assert 'id="ft-loss-chart"' in page and "<svg" in page and "training loss" in page
    assert job["fine_tuned_model"] in page
    assert "/benchmark-runner?models=" in page
    assert page.count('class="ft-register"') == 1  # one checkpoint (the epoch's end), not served
    assert "Step 3/3: training loss=" in page


def test_the_jobs_table_refreshes_itself_while_a_job_is_active(staff_client, create_job, training):
    create_job(training_file=training)
    part = staff_client.get("/fine-tuning", headers={"HX-Request": "true"}).content.decode()
    assert part.startswith('<div id="ft-jobs" hx-get="/fine-tuning"')


def test_the_admin_lists_fine_tuning_jobs(staff_client, create_job, training):
    job = create_job(training_file=training)
    page = staff_client.get("/admin/finetuning/finetuningjob/").content.decode()
    assert job["id"] in page
    assert (
        staff_client.get(f"/admin/finetuning/finetuningjob/{job['id']}/change/").status_code == 200
    )


def test_the_queue_page_and_api_show_a_waiting_job(staff_client, client_api, create_job, training):
    job = create_job(training_file=training)
    entries = client_api.get("/v1/queue").json()["data"]
    assert [(e["kind"], e["id"]) for e in entries] == [("fine-tuning", job["id"])]
    page = staff_client.get("/queue").content.decode()
    assert job["id"] in page
