"""Curation: records (one answer of a batch, an upload or a benchmark run), datasets of them,
their review state, every reviewer's judgement and the history of every change.

A record is the answer, not a copy per dataset: a dataset holds records through ``Membership``
rows, so adding the same batch to a second dataset, merging or splitting copies no text. A record
made from a batch keeps only what review needs (the prompt's messages, the answer's text, tokens)
and a reference to the batch's row, so it survives the batch's deletion (``batch_deleted``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from batchserver.models import ApiKey

LABEL_SEP = ","


def labels_text(labels: list[str]) -> str:
    """Labels as stored: ``,a,b,`` (sorted, unique), so one LIKE finds a label on any database
    and a bulk label is one UPDATE."""
    unique = sorted({label for label in labels if label})
    return LABEL_SEP + LABEL_SEP.join(unique) + LABEL_SEP if unique else ""


def labels_list(text: str) -> list[str]:
    return [label for label in (text or "").split(LABEL_SEP) if label]


class Dataset(models.Model):
    """A named set of records; ``owner`` is the API key it belongs to (None: staff only)."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="curation_datasets"
    )
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # A long operation (import, scoring, export, merge, split, de-duplication) shows its
    # progress here: done of total since it started; its outcome stays in ``task_result``.
    task = models.CharField(max_length=32, blank=True, help_text="The operation running, if any.")
    task_done = models.PositiveIntegerField(default=0)
    task_total = models.PositiveIntegerField(default=0)
    task_started_at = models.DateTimeField(null=True, blank=True)
    # Written with every progress report: a claim whose operation has reported nothing for
    # CURATION_TASK_STALE_SECONDS (its worker was killed, say) may be taken by a new one.
    task_reported_at = models.DateTimeField(null=True, blank=True)
    task_error = models.TextField(blank=True)
    task_result = models.JSONField(
        default=dict, blank=True, help_text="What the last operation made (an export's file)."
    )
    records = models.ManyToManyField("Record", through="Membership", related_name="datasets")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def task_percent(self) -> int:
        return int(100 * self.task_done / self.task_total) if self.task_total else 0

    @property
    def task_eta_seconds(self) -> float | None:
        """Seconds left at the pace so far; None before the first progress is known."""
        if not self.task or not self.task_started_at or not self.task_done or not self.task_total:
            return None
        elapsed = (timezone.now() - self.task_started_at).total_seconds()
        return max(0.0, elapsed * (self.task_total - self.task_done) / self.task_done)

    def start_task(self, task: str, total: int = 0) -> bool:
        """Claim the dataset for ``task`` unless another operation runs (compare-and-swap).

        An operation that has reported no progress for ``CURATION_TASK_STALE_SECONDS`` is
        taken to be dead (its process was killed) and its claim may be taken over.
        """
        now = timezone.now()
        stale = now - timedelta(seconds=settings.CURATION_TASK_STALE_SECONDS)
        fields = {
            "task": task,
            "task_done": 0,
            "task_total": total,
            "task_started_at": now,
            "task_reported_at": now,
            "task_error": "",
            "task_result": {},
        }
        free = Q(task="") | Q(task_reported_at__lt=stale) | Q(task_reported_at__isnull=True)
        claimed = Dataset.objects.filter(free, pk=self.pk).update(**fields)
        if claimed:
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(claimed)

    def report_task(self, done: int, total: int) -> None:
        """How far the running operation is (written as it goes, outside its transaction)."""
        Dataset.objects.filter(pk=self.pk, task=self.task).update(
            task_done=done, task_total=total, task_reported_at=timezone.now()
        )
        self.task_done, self.task_total = done, total

    def end_task(self, *, result: dict[str, Any] | None = None, error: str = "") -> None:
        """The operation is over: its outcome (or why it failed) stays on the dataset."""
        fields: dict[str, Any] = {"task": "", "task_error": error[:2000]}
        if result is not None:
            fields["task_result"] = result
        Dataset.objects.filter(pk=self.pk, task=self.task).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)


class RecordQuerySet(models.QuerySet):
    def visible_to(self, owner: ApiKey | None) -> RecordQuerySet:
        """Records of the datasets ``owner`` owns (None: staff, every record)."""
        if owner is None:
            return self
        # The key's dataset ids as constants (a key has few): the planner then knows how many
        # memberships they hold, instead of guessing a handful through the join.
        mine = list(Dataset.objects.filter(owner=owner).values_list("id", flat=True))
        return self.filter(
            id__in=Membership.objects.filter(dataset_id__in=mine).values("record_id")
        )

    def in_dataset(self, dataset_id: int) -> RecordQuerySet:
        return self.filter(
            id__in=Membership.objects.filter(dataset_id=dataset_id).values("record_id")
        )

    def matching(self, text: str) -> RecordQuerySet:
        """Records whose prompt, answer or correction contains ``text`` (any case); on
        PostgreSQL a trigram index answers it."""
        return self.filter(content__search__contains=text.lower())

    def with_label(self, label: str) -> RecordQuerySet:
        return self.filter(labels__contains=f"{LABEL_SEP}{label}{LABEL_SEP}")

    def reviewed(self) -> RecordQuerySet:
        return self.exclude(
            Q(status=Record.Status.PENDING) & Q(rating__isnull=True) & Q(thumb__isnull=True)
        )


class Record(models.Model):
    """One answer to review: the prompt, the model's answer, and the review state beside it.

    The review fields are the record's current state (what filters and exports read); who set
    them is in ``Judgement`` (one per reviewer) and every change is an ``Event``. Each change
    bumps ``version``: a save that names an older version is refused (``Record.apply``).
    """

    class Source(models.TextChoices):
        BATCH = "batch"
        UPLOAD = "upload"
        BENCHMARK = "benchmark"

    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        REJECTED = "rejected"

    source = models.CharField(max_length=16, choices=Source.choices, default=Source.BATCH)
    # Indexed through the unique (batch_id, custom_id) constraint.
    batch_id = models.CharField(max_length=40, blank=True)
    request_row = models.BigIntegerField(null=True, blank=True, help_text="The batch's row id.")
    custom_id = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True, db_index=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    batch_deleted = models.BooleanField(default=False)
    prompt_hash = models.CharField(max_length=32, blank=True, db_index=True)
    content_hash = models.CharField(max_length=32, blank=True, help_text="prompt + answer")
    # Review state. Not indexed on purpose: a bulk action then rewrites 50,000 rows in place
    # (HOT updates, no index entry per row); filters narrow by dataset first.
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    thumb = models.SmallIntegerField(null=True, blank=True, help_text="1 up, -1 down.")
    labels = models.TextField(blank=True, default="", help_text="',a,b,' (see labels_text).")
    correction = models.TextField(null=True, blank=True)
    corrected_by = models.CharField(max_length=150, blank=True)
    corrected_at = models.DateTimeField(null=True, blank=True)
    gold = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    note = models.TextField(blank=True)
    reviewed_by = models.CharField(max_length=150, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    plugin_scores = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)

    objects = RecordQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["batch_id", "custom_id"],
                condition=~Q(batch_id=""),
                name="curation_record_one_per_batch_line",
            )
        ]

    def __str__(self) -> str:
        return f"record {self.pk} ({self.custom_id or self.source})"

    # The content lives in RecordContent (see there); these read it.
    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.content.messages

    @property
    def prompt(self) -> str:
        return self.content.prompt

    @property
    def answer(self) -> str:
        return self.content.answer

    @property
    def label_list(self) -> list[str]:
        return labels_list(self.labels)

    @property
    def final_answer(self) -> str:
        """The answer an export trains on: the correction when there is one."""
        return self.correction if self.correction is not None else self.answer

    def apply(self, version: int, changes: dict[str, Any]) -> bool:
        """Write ``changes`` only if the record is still at ``version`` (compare-and-swap)."""
        updated = Record.objects.filter(pk=self.pk, version=version).update(
            **changes, version=F("version") + 1
        )
        if updated:
            for name, value in changes.items():
                setattr(self, name, value)
            self.version = version + 1
        return bool(updated)


class RecordContent(models.Model):
    """What a record says: the prompt and the answer, and the text the filter searches.

    Apart from ``Record`` on purpose: a bulk action rewrites 50,000 narrow review rows, never
    these wide ones nor their trigram index; they change only when a correction does (search).
    """

    record = models.OneToOneField(
        Record, on_delete=models.CASCADE, primary_key=True, related_name="content"
    )
    messages = models.JSONField(help_text="The prompt: chat messages.")
    prompt = models.TextField(blank=True, help_text="The prompt's messages as text.")
    answer = models.TextField(blank=True)
    search = models.TextField(blank=True, help_text="Lower-case prompt, answer and correction.")

    def __str__(self) -> str:
        return f"content of record {self.record_id}"


CONTENT_FIELDS = ("messages", "prompt", "answer", "search")


class Membership(models.Model):
    """A record in a dataset, with the split it belongs to there (train / validation)."""

    class Split(models.TextChoices):
        NONE = "", "none"
        TRAIN = "train"
        VALIDATION = "validation"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="memberships")
    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="memberships")
    split = models.CharField(max_length=16, choices=Split.choices, default="", blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "record"], name="curation_one_membership")
        ]
        indexes = [models.Index(fields=["record", "dataset"])]

    def __str__(self) -> str:
        return f"{self.record_id} in {self.dataset_id}"


class Judgement(models.Model):
    """One reviewer's own judgement of a record (the record shows everyone's, and agreement).

    Written by a review of the record and by a bulk action on a selection that holds it; a
    field the reviewer never judged stays empty (``status`` ""; the others None). ``labels`` are
    the record's labels as this reviewer last left them.
    """

    # Found by the unique (record, reviewer) index: one index less to write per judgement that
    # a bulk action upserts.
    record = models.ForeignKey(
        Record, on_delete=models.CASCADE, related_name="judgements", db_index=False
    )
    reviewer = models.CharField(max_length=150)
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    thumb = models.SmallIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, blank=True)
    gold = models.BooleanField(null=True, blank=True)
    labels = models.TextField(null=True, blank=True, help_text="',a,b,' (see labels_text).")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["record", "reviewer"], name="curation_one_judgement")
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} on {self.record_id}"

    @property
    def label_list(self) -> list[str] | None:
        return None if self.labels is None else labels_list(self.labels)


class Event(models.Model):
    """One change of one field of a record: who, when, before and after (as text)."""

    # Indexed by (record, at) below; one index less to write per event of a bulk action.
    record = models.ForeignKey(
        Record, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    actor = models.CharField(max_length=150)
    at = models.DateTimeField(default=timezone.now)
    field = models.CharField(max_length=32)
    before = models.TextField(null=True, blank=True)
    after = models.TextField(null=True, blank=True)
    bulk = models.BooleanField(default=False)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["record", "at"])]

    def __str__(self) -> str:
        return f"{self.actor} {self.field} on {self.record_id}"
