"""Exports of a dataset as Files API files (the SDK downloads them): fine-tuning chat JSONL,
in-context-learning packs, gold evaluation sets (the benchmark format, optionally straight into
a benchmark dataset), DPO preference pairs, and every plugin's export format.

Records are read as plain values through a server-side cursor (slices of 2,000, the prompt's
JSON parsed by orjson, no model instance), written line by line to a temporary file, which is
then stored as a file: memory stays flat whatever the dataset's size. ``progress`` hears how
many of the selected records have been read.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from django.apps import apps
from django.db.models import F, TextField
from django.db.models.functions import Cast

from batchserver.errors import Invalid
from batchserver.models import ApiKey
from benchmarks import services as benchmarks
from curation import formats
from curation.models import Dataset, Membership, Record, RecordQuerySet
from curation.services.progress import Progress, counted
from jobs.services import files
from plugins import services as plugins

FORMATS = {
    "finetune": ("OpenAI fine-tuning chat JSONL", "fine-tune", "accepted"),
    "icl": ("In-context-learning pack (k best per label)", "user_data", "accepted"),
    "gold": ("Gold evaluation set (benchmark dataset format)", "evals", "gold"),
    "dpo": ("Preference pairs (DPO JSONL)", "fine-tune", "all"),
}
SELECTIONS = ("accepted", "gold", "all", "not_rejected")
MIN_FINETUNE_EXAMPLES = 10  # what fine-tuning validation requires (issue #12)
READ_SLICE = 2000


@dataclass
class ExportResult:
    """The stored file and what else the export made."""

    file_id: str
    filename: str
    lines: int
    skipped: int = 0
    benchmark_dataset_id: int | None = None
    fine_tuning_url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def available_formats() -> list[dict[str, str]]:
    """Curation's own formats, then every enabled plugin's (``plugin:<id>``)."""
    own = [
        {"id": key, "name": name, "purpose": purpose, "default_selection": sel, "plugin": ""}
        for key, (name, purpose, sel) in FORMATS.items()
    ]
    extra = [
        {
            "id": f"plugin:{f.id}",
            "name": f.name,
            "purpose": "user_data",
            "default_selection": "all",
            "plugin": f.plugin,
        }
        for f in plugins.export_formats()
    ]
    return own + extra


def selection(dataset: Dataset, only: str, split: str = "") -> RecordQuerySet:
    """The records of ``dataset`` an export takes."""
    if only not in SELECTIONS:
        raise Invalid(f"only must be one of {', '.join(SELECTIONS)}.", param="only")
    members = Membership.objects.filter(dataset=dataset)
    if split:
        if split not in Membership.Split.values:
            raise Invalid("split must be train or validation.", param="split")
        members = members.filter(split=split)
    records = Record.objects.filter(id__in=members.values("record_id"))
    if only == "accepted":
        records = records.filter(status=Record.Status.ACCEPTED)
    elif only == "gold":
        records = records.filter(gold=True)
    elif only == "not_rejected":
        records = records.exclude(status=Record.Status.REJECTED)
    return records


class _Reader:
    """The selected records, in an order, as ``ExportRecord``s, counted for ``progress``."""

    def __init__(self, records: RecordQuerySet, total: int, progress: Progress | None) -> None:
        self.records, self.total, self.progress = records, total, progress

    def __call__(self, *order: Any) -> Iterator[formats.ExportRecord]:
        rows = (
            self.records.order_by(*order)
            .annotate(messages_json=Cast("content__messages", TextField()))
            .values_list(*formats.EXPORT_COLUMNS)
            .iterator(chunk_size=READ_SLICE)
        )
        return counted(map(formats.ExportRecord.from_row, rows), self.total, self.progress)


def _lines(fmt: str, read: _Reader, k: int, counts: dict[str, int]) -> Iterator[bytes]:
    if fmt == "finetune":
        for record in read("id"):
            found = formats.finetune_line(record)
            if found is None:
                counts["skipped"] += 1
                continue
            yield formats.line(found)
    elif fmt == "gold":
        for record in read("id"):
            yield formats.line(formats.gold_line(record))
    elif fmt == "icl":
        best_first = read(F("gold").desc(), F("rating").desc(nulls_last=True), "id")
        for pack in formats.icl_packs(best_first, k):
            yield formats.line(pack)
    elif fmt == "dpo":
        by_prompt = groupby(read("prompt_hash", "id"), lambda r: r.prompt_hash)
        for pair in formats.dpo_pairs(list(g) for _, g in by_prompt):
            yield formats.line(pair)


def check_export(fmt: str, k: int = 3, only: str | None = None, split: str = "") -> None:
    """Refuse a bad format, k, selection or split before any work (``Invalid``)."""
    if fmt not in FORMATS and not fmt.startswith("plugin:"):
        ids = ", ".join([*FORMATS, *(f["id"] for f in available_formats()[len(FORMATS) :])])
        raise Invalid(f"Unknown export format '{fmt}'; one of: {ids}.", param="format")
    if fmt.startswith("plugin:"):
        plugins.get_export_format(fmt.removeprefix("plugin:"))  # NotFound(param="format")
    if fmt == "icl" and not 1 <= k <= 50:
        raise Invalid("k must be between 1 and 50.", param="k")
    if only is not None and only not in SELECTIONS:
        raise Invalid(f"only must be one of {', '.join(SELECTIONS)}.", param="only")
    if split and split not in Membership.Split.values:
        raise Invalid("split must be train or validation.", param="split")


def export_dataset(
    dataset: Dataset,
    fmt: str,
    *,
    only: str | None = None,
    split: str = "",
    k: int = 3,
    owner: ApiKey | None = None,
    benchmark_name: str = "",
    progress: Progress | None = None,
) -> ExportResult:
    """Write the export to a new file owned by ``owner`` (the dataset's key, else the console's).

    An empty selection, or a fine-tuning file that fine-tuning would refuse (fewer than 10
    examples), is refused with a message that says why; nothing is stored then.
    """
    check_export(fmt, k, only, split)
    default = FORMATS[fmt][2] if fmt in FORMATS else "all"
    records = selection(dataset, only or default, split)
    total = records.count()
    if not total:
        raise Invalid(
            f"Nothing to export: dataset '{dataset.name}' has no record that is "
            f"'{only or default}'{' in ' + split if split else ''}.",
            param="only",
            code="empty_selection",
        )
    counts = {"lines": 0, "skipped": 0}
    extension = "jsonl"
    read = _Reader(records, total, progress)
    with tempfile.TemporaryFile() as out:
        if fmt.startswith("plugin:"):
            export_format = plugins.get_export_format(fmt.removeprefix("plugin:"))
            extension = export_format.extension.lstrip(".") or "dat"
            plugins.export(export_format.id, map(formats.plugin_record, read("id")), out)
            counts["lines"] = total
        else:
            for data in _lines(fmt, read, k, counts):
                out.write(data)
                counts["lines"] += 1
        _check_written(fmt, counts)
        filename = f"{_slug(dataset.name)}-{fmt.replace(':', '-')}.{extension}"
        purpose = FORMATS[fmt][1] if fmt in FORMATS else "user_data"
        stored = files.create_file_from_stream(
            owner or dataset.owner or ApiKey.console_key(),
            out,  # type: ignore[arg-type]
            purpose=purpose,
            filename=filename,
            line_count=counts["lines"],
        )
    result = ExportResult(stored.id, filename, counts["lines"], counts["skipped"])
    if fmt == "gold" and benchmark_name:
        result.benchmark_dataset_id = benchmarks.create_dataset_from_file(
            stored.id, benchmark_name, description=f"Gold set of curation dataset {dataset.name}"
        ).pk
    if fmt == "finetune" and apps.is_installed("finetuning"):
        result.fine_tuning_url = f"/fine-tuning?training_file={stored.id}"
    return result


def _check_written(fmt: str, counts: dict[str, int]) -> None:
    if fmt == "finetune" and counts["lines"] < MIN_FINETUNE_EXAMPLES:
        raise Invalid(
            f"A fine-tuning file needs at least {MIN_FINETUNE_EXAMPLES} examples; this "
            f"selection gives {counts['lines']} (skipped {counts['skipped']} with turns "
            "fine-tuning cannot take). Accept more records first.",
            param="only",
            code="too_few_examples",
        )
    if counts["lines"] == 0:
        raise Invalid(
            "Nothing to export: the selection gives no line in this format "
            "(no correction or differing ratings for preference pairs).",
            param="format",
            code="empty_selection",
        )


def _slug(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.strip())
    return cleaned.strip("-")[:60] or "dataset"
