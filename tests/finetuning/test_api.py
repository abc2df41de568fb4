"""The fine-tuning API: OpenAI's objects, per-key isolation, errors naming the parameter."""

from __future__ import annotations

import pytest

from tests.conftest import jsonl
from tests.finetuning.conftest import TINY, example, examples


@pytest.fixture
def training(ft_file, tiny_base) -> str:
    return ft_file(examples(12))


def test_a_job_is_validated_then_queued_with_every_openai_field(create_job, training):
    job = create_job(
        training_file=training,
        suffix="numbers",
        seed=7,
        metadata={"team": "qa"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    )

    assert job["object"] == "fine_tuning.job" and job["id"].startswith("ftjob-")
    assert job["status"] == "queued"
    assert job["model"] == TINY and job["training_file"] == training
    assert job["validation_file"] is None and job["fine_tuned_model"] is None
    assert job["hyperparameters"] == {
        "n_epochs": 2,
        "batch_size": 1,
        "learning_rate_multiplier": 1.0,
    }
    assert job["method"] == {
        "type": "supervised",
        "supervised": {"hyperparameters": job["hyperparameters"]},
    }
    assert (job["seed"], job["metadata"], job["result_files"], job["integrations"]) == (
        7,
        {"team": "qa"},
        [],
        [],
    )
    for key in (
        "created_at",
        "organization_id",
        "error",
        "finished_at",
        "estimated_finish",
        "trained_tokens",
    ):
        assert key in job


def test_the_deprecated_top_level_hyperparameters_are_accepted(create_job, training):
    job = create_job(training_file=training, hyperparameters={"batch_size": 4, "n_epochs": "auto"})
    assert job["hyperparameters"]["batch_size"] == 4
    assert job["hyperparameters"]["n_epochs"] == 3


def test_the_hyphenated_paths_answer_the_same(client_api, create_job, training):
    job = create_job(training_file=training)
    for path in (f"/v1/fine-tuning/jobs/{job['id']}", f"/v1/fine_tuning/jobs/{job['id']}"):
        assert client_api.get(path).json() == job
    listed = client_api.get("/v1/fine-tuning/jobs").json()
    assert [j["id"] for j in listed["data"]] == [job["id"]]


def test_another_key_sees_nothing(create_job, training, other_client):
    job = create_job(training_file=training)
    response = other_client.get(f"/v1/fine_tuning/jobs/{job['id']}")
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "fine_tuning_job_id"
    assert other_client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel").status_code == 404
    assert other_client.get("/v1/fine_tuning/jobs").json()["data"] == []


def test_list_pages_with_after_and_limit_and_filters_by_metadata(client_api, create_job, training):
    ids = [create_job(training_file=training, metadata={"n": str(i)})["id"] for i in range(3)]
    first = client_api.get("/v1/fine_tuning/jobs?limit=2").json()
    assert [j["id"] for j in first["data"]] == ids[::-1][:2] and first["has_more"]
    rest = client_api.get(f"/v1/fine_tuning/jobs?limit=2&after={first['last_id']}").json()
    assert [j["id"] for j in rest["data"]] == [ids[0]] and not rest["has_more"]
    only = client_api.get("/v1/fine_tuning/jobs?metadata[n]=1").json()
    assert [j["id"] for j in only["data"]] == [ids[1]]


def test_events_are_listed_newest_first(client_api, create_job, training):
    job = create_job(training_file=training)
    events = client_api.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()
    messages = [e["message"] for e in events["data"]]
    assert messages[0].startswith("Files validated: 12 examples")
    assert messages[-1] == f"Created fine-tuning job: {job['id']}"
    assert {e["object"] for e in events["data"]} == {"fine_tuning.job.event"}
    assert {e["level"] for e in events["data"]} == {"info"}


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "no-such-model"}, "model", "model_not_found"),
        ({"training_file": "file-nope"}, "training_file", "not_found"),
        ({"suffix": "x" * 65}, "suffix", None),
        ({"method": {"type": "dpo"}}, "method.type", "unsupported_method"),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
            "method.supervised.hyperparameters.n_epochs",
            None,
        ),
        ({"hyperparameters": {"batch_size": "big"}}, "hyperparameters.batch_size", None),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", None),
    ],
)
def test_bad_parameters_are_refused_naming_them(create_job, training, body, param, code):
    error = create_job(
        expect=404 if code == "not_found" else 400, **{"training_file": training, **body}
    )
    assert error["error"]["param"] == param
    if code:
        assert error["error"]["code"] == code


def test_a_file_of_another_purpose_is_refused(create_job, upload, tiny_base):
    batch_file = upload(jsonl([example(0)]))["id"]
    error = create_job(expect=400, training_file=batch_file)["error"]
    assert (error["param"], error["code"]) == ("training_file", "invalid_file_purpose")


def test_an_invalid_training_file_fails_the_job_naming_every_line(create_job, ft_file, tiny_base):
    lines = [
        *examples(10),
        "{not json",
        {"messages": [{"role": "user", "content": "no answer"}]},
        {"messages": [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "x"}]},
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "word " * 600},
            ]
        },
    ]
    job = create_job(training_file=ft_file(jsonl(lines)))

    assert job["status"] == "failed"
    error = job["error"]
    assert (error["code"], error["param"]) == ("invalid_training_file", "training_file")
    assert "line 11: not valid JSON" in error["message"]
    assert "line 12: no assistant message" in error["message"]
    assert "line 13: message 0 has an unknown role 'wizard'" in error["message"]
    assert "line 14: too long" in error["message"] and "the limit is 512" in error["message"]


def test_too_few_examples_fail_the_job(create_job, ft_file, tiny_base):
    job = create_job(training_file=ft_file(examples(9)))
    assert job["status"] == "failed"
    assert "has 9 examples; at least 10 are needed" in job["error"]["message"]


def test_the_same_example_in_training_and_validation_fails_the_job(create_job, ft_file, tiny_base):
    training = ft_file(examples(12))
    validation = ft_file(examples(3, start=11))
    job = create_job(training_file=training, validation_file=validation)
    assert job["status"] == "failed"
    assert job["error"]["param"] == "validation_file"
    assert "line 1: the same example is line 12 of the training file" in job["error"]["message"]


def test_cancel_pause_resume_of_a_queued_job(client_api, create_job, training):
    job = create_job(training_file=training)
    base = f"/v1/fine_tuning/jobs/{job['id']}"
    assert client_api.post(f"{base}/pause").json()["status"] == "paused"
    assert client_api.post(f"{base}/resume").json()["status"] == "queued"
    assert client_api.post(f"{base}/cancel").json()["status"] == "cancelled"
    again = client_api.post(f"{base}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_not_cancellable"
    assert client_api.post(f"{base}/resume").status_code == 409
