"""Request shapes and response bodies of the curation API (values are checked by the services,
which name the parameter at fault)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from curation.models import Dataset, Event, Judgement, Record
from curation.selectors import Progress


class DatasetCreate(serializers.Serializer):
    name = serializers.CharField(allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    batch_ids = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        default=list,
        help_text="Ended batches whose answers become the records (imported by a task).",
    )


class DatasetUpload(serializers.Serializer):
    name = serializers.CharField(allow_blank=True)
    file = serializers.FileField(
        help_text="JSONL: {messages, answer, model?, custom_id?} per line."
    )
    description = serializers.CharField(required=False, allow_blank=True, default="")


class FromBenchmark(serializers.Serializer):
    run_id = serializers.IntegerField()
    name = serializers.CharField(required=False, allow_blank=True, default="")


class Merge(serializers.Serializer):
    dataset_ids = serializers.ListField(child=serializers.IntegerField(), min_length=2)
    name = serializers.CharField(allow_blank=True)


class AddBatches(serializers.Serializer):
    batch_ids = serializers.ListField(child=serializers.CharField())


class Split(serializers.Serializer):
    validation_fraction = serializers.FloatField(default=0.1)
    seed = serializers.IntegerField(default=0)


class ExportRequest(serializers.Serializer):
    format = serializers.CharField(help_text="finetune, icl, gold, dpo or plugin:<id>.")
    only = serializers.ChoiceField(
        choices=["accepted", "gold", "all", "not_rejected"], required=False, allow_null=True
    )
    split = serializers.ChoiceField(choices=["", "train", "validation"], default="")
    k = serializers.IntegerField(default=3, help_text="icl: examples per label.")
    benchmark_name = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="gold: also make a benchmark dataset of this name.",
    )


class ReviewRequest(serializers.Serializer):
    version = serializers.IntegerField(help_text="The version the change was made on.")
    rating = serializers.IntegerField(required=False, allow_null=True)
    thumb = serializers.IntegerField(required=False, allow_null=True)
    labels = serializers.ListField(child=serializers.CharField(), required=False)
    add_labels = serializers.ListField(child=serializers.CharField(), required=False)
    remove_labels = serializers.ListField(child=serializers.CharField(), required=False)
    correction = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, trim_whitespace=False
    )
    gold = serializers.BooleanField(required=False)
    status = serializers.CharField(required=False)
    note = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


class BulkRequest(serializers.Serializer):
    filter = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        default=dict,
        help_text="dataset, batch, model, rating, label, status, gold, q (as the records list).",
    )
    action = serializers.CharField(
        help_text="label, unlabel, accept, reject, reset, gold, ungold, add_to_dataset."
    )
    value = serializers.CharField(required=False, allow_blank=True, default="")
    dataset_id = serializers.IntegerField(required=False, help_text="add_to_dataset: the target.")


def dataset_data(dataset: Dataset, found: Progress) -> dict[str, Any]:
    return {
        "id": dataset.pk,
        "object": "curation.dataset",
        "name": dataset.name,
        "description": dataset.description,
        "created_at": int(dataset.created_at.timestamp()),
        "created_by": dataset.created_by,
        "task": dataset.task or None,
        "task_progress": {
            "done": dataset.task_done,
            "total": dataset.task_total,
            "eta_seconds": dataset.task_eta_seconds,
        },
        "task_error": dataset.task_error or None,
        "task_result": dataset.task_result or None,
        "progress": found.as_dict(),
    }


def judgement_data(j: Judgement) -> dict[str, Any]:
    return {
        "reviewer": j.reviewer,
        "rating": j.rating,
        "thumb": j.thumb,
        "status": j.status,
        "gold": j.gold,
        "labels": j.label_list,
    }


def record_data(record: Record, detail: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": record.pk,
        "object": "curation.record",
        "version": record.version,
        "source": record.source,
        "batch_id": record.batch_id or None,
        "batch_deleted": record.batch_deleted,
        "custom_id": record.custom_id,
        "model": record.model,
        "messages": record.messages,
        "answer": record.answer,
        "correction": record.correction,
        "corrected_by": record.corrected_by or None,
        "corrected_at": int(record.corrected_at.timestamp()) if record.corrected_at else None,
        "rating": record.rating,
        "thumb": record.thumb,
        "labels": record.label_list,
        "gold": record.gold,
        "status": record.status,
        "note": record.note,
        "reviewed_by": record.reviewed_by or None,
        "plugin_scores": record.plugin_scores,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
    }
    if detail:
        data["judgements"] = [judgement_data(j) for j in record.judgements.order_by("reviewer")]
    return data


def event_data(event: Event) -> dict[str, Any]:
    return {
        "actor": event.actor,
        "at": event.at.isoformat(),
        "field": event.field,
        "before": event.before,
        "after": event.after,
        "bulk": event.bulk,
    }
