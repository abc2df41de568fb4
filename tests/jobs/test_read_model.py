"""One read model: the pages, the API and the metrics agree on the same batch."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from jobs.models import Batch, Worker
from tests.conftest import request_line


def test_history_page_and_api_show_the_same_requests_per_second(
    create_batch, client_api, staff_client
):
    # given a finished batch that ran for exactly 4 seconds
    batch = create_batch([request_line(i) for i in range(8)])
    start = timezone.now() - timedelta(seconds=10)
    Batch.objects.filter(pk=batch["id"]).update(
        in_progress_at=start,
        finalizing_at=start + timedelta(seconds=3),
        completed_at=start + timedelta(seconds=4),
    )

    # when the API and the page show its history
    entry = client_api.get("/v1/jobs/history").json()["data"][0]
    page = staff_client.get("/history").content.decode()

    # then both say 8 requests in 4 s
    assert entry["requests_per_second"] == 2.0 and entry["duration_seconds"] == 4.0
    row = page[page.index(f'data-batch="{batch["id"]}"') :]
    assert "<td>2.00</td>" in row[: row.index("</tr>")]


def test_a_stopped_worker_is_not_alive_anywhere(db, client_api):
    Worker.objects.create(worker_id="h:1", hostname="h", pid=1, state=Worker.State.STOPPED)
    assert not Worker.objects.alive().exists()
    assert Worker.objects.get().is_alive is False
    assert client_api.get("/v1/worker/status").json()["data"][0]["alive"] is False
    assert client_api.get("/v1/queue").json()["workers_alive"] == 0


def test_the_history_page_charts_several_batches(create_batch, staff_client):
    ended = timezone.now()
    for _ in range(2):
        batch = create_batch([request_line(0)])
        Batch.objects.filter(pk=batch["id"]).update(completed_at=ended)
    response = staff_client.get("/history")
    assert response.status_code == 200
    assert response.content.decode().count('class="history-row"') == 2
