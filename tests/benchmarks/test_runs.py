"""Runs end to end on the fake engine: ordinary batches of the console key, results per model."""

from __future__ import annotations

import pytest

from batchserver.errors import Conflict, Invalid
from batchserver.models import ApiKey
from benchmarks import selectors, services, tasks
from benchmarks.models import ModelResult, Run, Sample
from jobs.services.results import get_batch
from jobs.worker.engine.base import ModelLoadError
from jobs.worker.engine.fake import FakeBackend
from models_registry.services import register_model


def test_a_run_goes_through_ordinary_batches_and_stores_results_per_model(
    small_dataset, two_models, run_inline
):
    # given a priced GPU kind and a cloud price
    services.set_gpu_price("cpu-2", "0.36")
    services.set_cloud_price("cloud batch", "0.075", "0.30")

    # when a run of two models, two repetitions each, runs to its end
    run = run_inline(
        small_dataset,
        ["fake-a", "fake-b"],
        repetitions=2,
        max_tokens=16,
        scorers=["exact_match", "contains", "rouge_l"],
        cloud_price="cloud batch",
    )

    # then it completed, with one batch per model and repetition, run one after the other
    assert run.status == "completed" and run.gpu_kind == "cpu-2"
    slots = list(run.batches.order_by("position"))
    assert [(s.model, s.repetition) for s in slots] == [
        ("fake-a", 1),
        ("fake-a", 2),
        ("fake-b", 1),
        ("fake-b", 2),
    ]
    console = ApiKey.console_key()
    for slot in slots:
        batch = get_batch(slot.batch_id)
        assert batch.owner_id == console.pk and batch.status == "completed"
        assert batch.metadata["kind"] == "benchmark"
        assert batch.metadata["benchmark_run"] == str(run.pk)
        assert batch.model == slot.model
    # and each model has its figures: the fake engine echoes "echo: question i"
    for result in run.results.all():
        assert result.status == "completed" and (result.requests, result.completed) == (12, 12)
        assert result.errors == 0 and result.output_tokens > 0
        assert result.output_tokens_per_second > 0 and result.requests_per_second > 0
        assert result.total_tokens_per_second > result.output_tokens_per_second
        assert result.latency_p50_ms is not None and result.latency_p95_ms is not None
        assert result.quality == {
            "exact_match": 0.0,
            "contains": 1.0,
            "rouge_l": pytest.approx(0.8, abs=0.01),
        }
        assert result.gpu_cost == pytest.approx(0.36 * result.wall_seconds / 3600)
        assert result.cloud_cost == pytest.approx(
            (result.input_tokens * 0.075 + result.output_tokens * 0.30) / 1e6
        )
        assert len(result.repetition_figures) == 2
        assert result.samples.count() == 12
    sample = Sample.objects.get(result__model="fake-a", item__item_id="q3", repetition=1)
    assert sample.answer == "echo: question 3" and sample.scores["contains"] == 1.0


def test_sampling_settings_reach_every_request(small_dataset, two_models, run_inline):
    from jobs.services.results import iter_results

    run = run_inline(small_dataset, ["fake-a"], temperature=0.5, max_tokens=7, top_p=0.9, seed=3)
    rows = list(iter_results(run.batches.get().batch_id))
    import json

    body = json.loads(rows[0].body)
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["seed"]) == (
        0.5,
        7,
        0.9,
        3,
    )
    assert body["messages"] == [{"role": "user", "content": "question 0"}]


def test_a_model_that_fails_mid_run_shows_its_error_and_the_other_results_stand(
    settings, small_dataset, two_models, run_inline
):
    # given a model whose engine cannot load it, between two healthy ones
    settings.BATCH_LOAD_BACKOFF_SECONDS = 0
    register_model("fake-broken", extra_args={"fake_fail_load": True})

    run = run_inline(small_dataset, ["fake-a", "fake-broken", "fake-b"], repetitions=2)

    # then the run completed; the broken model failed with the load error, once (its second
    # repetition was never started); the other two have their results
    assert run.status == "completed"
    results = {r.model: r for r in run.results.all()}
    broken = results["fake-broken"]
    assert broken.status == "failed" and "failed to load" in broken.error
    assert broken.completed == 0 and broken.errors == 6
    assert broken.output_tokens_per_second is None
    assert run.batches.get(model="fake-broken", repetition=2).skipped
    assert all(s.error and s.answer is None for s in broken.samples.all())
    for name in ("fake-a", "fake-b"):
        assert results[name].status == "completed" and results[name].completed == 12


def test_a_model_whose_engine_dies_part_way_shows_the_error_in_its_column_and_the_others_stand(
    settings, small_dataset, two_models, run_inline, staff_client, monkeypatch
):
    # given a model whose engine answers one chunk (two prompts) and then cannot run it any
    # more, however often it is loaded again (its weights went away under it)
    settings.BATCH_CHUNK_SIZE = 2
    settings.BATCH_LOAD_BACKOFF_SECONDS = 0
    register_model("fake-dies")
    answered: list[str] = []
    engine_run = FakeBackend.run

    def run_or_die(self, requests):
        if self.spec and self.spec.name == "fake-dies":
            if answered:
                raise ModelLoadError("fake engine: the weights of fake-dies are gone")
            answered.extend(r.custom_id for r in requests)
        return engine_run(self, requests)

    monkeypatch.setattr(FakeBackend, "run", run_or_die)

    # when it is benchmarked between two healthy models, two repetitions each
    run = run_inline(small_dataset, ["fake-a", "fake-dies", "fake-b"], repetitions=2)

    # then the run completed; the dying model failed with the error, keeping its two answers
    # (scored), and was not started again for its second repetition
    assert run.status == "completed"
    results = {r.model: r for r in run.results.all()}
    dies = results["fake-dies"]
    assert dies.status == "failed" and "the weights of fake-dies are gone" in dies.error
    assert (dies.requests, dies.completed, dies.errors) == (6, 2, 4)
    assert dies.quality["contains"] == 1.0  # over its two answers
    assert run.batches.get(model="fake-dies", repetition=2).skipped
    # and its column of the matrix holds its answers, then the error on every other prompt
    found = selectors.comparison([run.pk])
    column = [c.result.model for c in found.columns].index("fake-dies")
    cells = [row["cells"][column] for row in found.rows]
    assert [c.answer for c in cells[:2]] == ["echo: question 0", "echo: question 1"]
    assert all(c.answer is None and "weights of fake-dies are gone" in c.error for c in cells[2:])
    page = staff_client.get(f"/model-comparison?runs={run.pk}").content.decode()
    assert 'data-model="fake-dies" data-status="failed"' in page
    assert page.count("the weights of fake-dies are gone") >= 5  # its summary and 4 cells
    # and the other models' results stand, every prompt answered in both repetitions
    for name in ("fake-a", "fake-b"):
        result = results[name]
        assert (result.status, result.completed, result.errors) == ("completed", 12, 0)
        assert result.error == "" and result.output_tokens_per_second > 0


def test_when_every_model_fails_the_run_fails(settings, small_dataset, run_inline):
    settings.BATCH_LOAD_BACKOFF_SECONDS = 0
    register_model("fake-broken", extra_args={"fake_fail_load": True})
    run = run_inline(small_dataset, ["fake-broken"])
    assert run.status == "failed"


def test_failed_requests_are_counted_as_errors_and_not_scored(two_models, run_inline):
    import io
    import json

    lines = [
        {"messages": [{"role": "user", "content": "fine"}], "reference": "fine"},
        {"messages": [{"role": "user", "content": "boom [[fail]]"}], "reference": "x"},
    ]
    dataset = services.create_dataset_from_upload(
        "with-failure", io.BytesIO("".join(json.dumps(x) + "\n" for x in lines).encode())
    )
    run = run_inline(dataset, ["fake-a"], scorers=["contains"])
    result = run.results.get()
    assert (result.status, result.completed, result.errors) == ("completed", 1, 1)
    assert result.quality == {"contains": 1.0}  # over the answered prompt only
    failed = result.samples.get(item__item_id="2")
    assert "[[fail]]" in failed.error and failed.scores == {}


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (["no-such-model"], "Unknown model 'no-such-model'"),
        ([], "at least one model"),
        (["fake-a", "fake-a"], "named twice"),
    ],
)
def test_bad_model_lists_are_refused_before_anything_starts(
    small_dataset, two_models, models, message
):
    with pytest.raises(Invalid, match=message) as caught:
        services.start_run(small_dataset, models)
    assert caught.value.param == "models"
    assert not Run.objects.exists()


def test_an_embedding_model_cannot_be_benchmarked_on_chat(small_dataset):
    register_model("embedder", kind="embed")
    with pytest.raises(Invalid, match="does not answer chat"):
        services.start_run(small_dataset, ["embedder"])


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"repetitions": 0}, "repetitions"),
        ({"max_tokens": "many"}, "max_tokens"),
        ({"temperature": 5}, "temperature"),
        ({"scorers": ["nope"]}, "scorers"),
        ({"regex": "(["}, "regex"),
        ({"gpu_kind": "H100"}, "gpu_kind"),
    ],
)
def test_bad_settings_are_refused_naming_the_parameter(small_dataset, two_models, options, param):
    with pytest.raises(Invalid) as caught:
        services.start_run(small_dataset, ["fake-a"], **options)
    assert caught.value.param == param


def test_a_run_is_cancelled_between_its_batches(small_dataset, two_models):
    # given a run whose first batch has been created but not run (tasks are not executed)
    run = services.start_run(small_dataset, ["fake-a", "fake-b"])
    services.advance_run(run.pk)
    run.refresh_from_db()
    first = run.batches.get(position=0)
    assert run.status == "running" and first.batch_id

    # when it is cancelled
    services.cancel_run(run)

    # then its batch is cancelled, the next never starts, and the run ends cancelled
    assert get_batch(first.batch_id).status in ("cancelling", "cancelled")
    from jobs import tasks as job_tasks

    job_tasks.settle_batch(first.batch_id)
    tasks.advance_run(run.pk)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert run.batches.get(position=1).skipped and not run.batches.get(position=1).batch_id
    assert {r.status for r in run.results.all()} == {"cancelled"}
    with pytest.raises(Conflict):
        services.cancel_run(run)


def test_the_periodic_task_moves_on_a_run_whose_signal_was_lost(small_dataset, two_models):
    run = services.start_run(small_dataset, ["fake-a"])
    assert tasks.advance_active_runs() == 1
    run.refresh_from_db()
    assert run.status == "running" and run.batches.get().batch_id


def test_a_results_recompute_replaces_its_samples(small_dataset, two_models, run_inline):
    run = run_inline(small_dataset, ["fake-a"])
    result = run.results.get()
    services.compute_result(result)
    assert result.samples.count() == 6
    assert ModelResult.objects.get(pk=result.pk).computed_at is not None


def test_changing_a_price_reprices_stored_results(small_dataset, two_models, run_inline):
    services.set_gpu_price("cpu-2", "1")
    run = run_inline(small_dataset, ["fake-a"])
    before = run.results.get().gpu_cost
    services.set_gpu_price("cpu-2", "2")
    assert run.results.get().gpu_cost == pytest.approx(2 * before)


def test_a_model_whose_every_request_fails_shows_why(two_models, run_inline):
    import io
    import json

    line = {"messages": [{"role": "user", "content": "always [[fail]]"}], "reference": "x"}
    dataset = services.create_dataset_from_upload(
        "all-fail", io.BytesIO((json.dumps(line) + "\n").encode())
    )
    run = run_inline(dataset, ["fake-a"])
    result = run.results.get()
    assert result.status == "failed" and "[[fail]]" in result.error
    assert run.status == "failed"


def test_a_batch_deleted_under_a_run_ends_its_model_with_a_message(small_dataset, two_models):
    from jobs.services.results import get_batch as fetch

    run = services.start_run(small_dataset, ["fake-a"])
    services.advance_run(run.pk)
    fetch(run.batches.get().batch_id).delete()  # an operator deleted it in the admin
    services.advance_run(run.pk)
    run.refresh_from_db()
    result = run.results.get()
    assert run.status == "failed" and "was deleted" in result.error
