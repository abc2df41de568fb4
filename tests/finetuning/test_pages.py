"""The /fine-tuning console page and the fine_tuning_jobs admin table."""

from __future__ import annotations

import io
import json
from urllib.parse import quote

import pytest

from batchserver.models import ApiKey
from curation import services as curation
from curation.filters import RecordFilter
from finetuning.models import FineTuningJob
from jobs.services.files import get_file, open_file
from tests.conftest import csrf_token, jsonl
from tests.curation.conftest import upload_lines
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


def reviewed_dataset(name: str, count: int):
    """A curation dataset of ``count`` answers, every one accepted."""
    dataset = curation.create_dataset_from_upload(
        name, io.BytesIO(upload_lines(count)), created_by="ops"
    )
    curation.bulk_action(RecordFilter(dataset=dataset.pk), "accept", actor="ops")
    return dataset


def test_a_job_is_created_from_a_curation_export(
    staff_client, tiny_base, django_capture_on_commit_callbacks
):
    # given a curation dataset whose 12 answers were accepted
    dataset = reviewed_dataset("reviewed answers", 12)
    form = staff_client.get("/fine-tuning").content.decode()
    assert f'<option value="{dataset.pk}">reviewed answers</option>' in form

    # when the form names it (accepted records) instead of a file
    with django_capture_on_commit_callbacks(execute=False):
        response = staff_client.post(
            "/fine-tuning",
            {
                "action": "create",
                "curation_dataset": str(dataset.pk),
                "curation_selection": "accepted",
                "model": TINY,
                "csrfmiddlewaretoken": csrf_token(staff_client),
            },
        )

    # then curation's fine-tuning export ran and the job trains on its file
    assert response.status_code == 302, response.content.decode()[-2000:]
    job = FineTuningJob.objects.get()
    exported = get_file(job.training_file)
    assert exported.purpose == "fine-tune" and exported.owner == ApiKey.console_key()
    with open_file(job.training_file) as handle:
        lines = handle.read().decode().splitlines()
    assert len(lines) == 12
    assert json.loads(lines[0])["messages"][-1] == {"role": "assistant", "content": "answer 0"}
    page = staff_client.get(response["Location"]).content.decode()
    assert "from 12 accepted records of curation dataset &#x27;reviewed answers&#x27;" in page


def test_a_curation_export_that_curation_refuses_says_why(staff_client, tiny_base):
    # given a dataset with accepted records but no gold one
    dataset = reviewed_dataset("no gold", 12)
    response = staff_client.post(
        "/fine-tuning",
        {
            "action": "create",
            "curation_dataset": str(dataset.pk),
            "curation_selection": "gold",
            "model": TINY,
            "csrfmiddlewaretoken": csrf_token(staff_client),
        },
    )
    assert response.status_code == 400
    assert "has no record that is &#x27;gold&#x27;" in response.content.decode()
    assert not FineTuningJob.objects.exists()


def test_two_sources_of_training_data_are_refused(staff_client, tiny_base):
    dataset = reviewed_dataset("both", 12)
    upload = io.BytesIO(jsonl(examples(12)))
    upload.name = "mine.jsonl"
    response = staff_client.post(
        "/fine-tuning",
        {
            "action": "create",
            "training_upload": upload,
            "curation_dataset": str(dataset.pk),
            "model": TINY,
            "csrfmiddlewaretoken": csrf_token(staff_client),
        },
    )
    assert response.status_code == 400
    assert "Choose one source of training data" in response.content.decode()
    assert not FineTuningJob.objects.exists()


def test_a_refused_form_says_why(staff_client, tiny_base):
    response = staff_client.post(
        "/fine-tuning",
        {"action": "create", "model": TINY, "csrfmiddlewaretoken": csrf_token(staff_client)},
    )
    assert response.status_code == 400
    assert "Upload a training file, choose a stored one or a curation dataset to export." in (
        response.content.decode()
    )


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
    # the link opens the runner with the new model and its base chosen (?models=a,b)
    assert f'href="/benchmark-runner?models={quote(job["fine_tuned_model"])},{TINY}"' in page
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
