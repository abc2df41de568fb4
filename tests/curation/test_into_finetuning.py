"""A curation export goes straight into fine-tuning: its own validator accepts the file, and the
"start a fine-tuning job" link opens the fine-tuning form with the file chosen."""

from __future__ import annotations

import re

from curation import services
from curation.filters import RecordFilter
from finetuning import validation
from jobs.services.files import open_file


def _words(messages: list[dict]) -> int:
    return sum(len(m["content"].split()) for m in messages)


def test_the_finetuning_validator_accepts_the_export_of_accepted_records(upload_dataset):
    # given a reviewed dataset: every record accepted, one corrected
    dataset = upload_dataset(12)
    services.bulk_action(RecordFilter(dataset=dataset.pk), "accept", actor="ops")

    # when it is exported for fine-tuning
    result = services.export_dataset(dataset, "finetune")

    # then the fine-tuning app's own check of a training file finds every line an example
    with open_file(result.file_id) as handle:
        report = validation.check_file(handle.read().splitlines(), _words, max_tokens=2048)
    assert report.problems == [] and report.examples == 12


def test_the_link_opens_the_fine_tuning_form_with_the_export_chosen(upload_dataset, staff_client):
    # given a fine-tuning export made by staff (owned by the console key)
    dataset = upload_dataset(12)
    services.bulk_action(RecordFilter(dataset=dataset.pk), "accept", actor="ops")
    result = services.export_dataset(dataset, "finetune")

    # when staff follow its link
    page = staff_client.get(result.fine_tuning_url)

    # then the form offers the file, already selected
    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(rf'<option value="{result.file_id}"[^>]*selected', html), html[:3000]
