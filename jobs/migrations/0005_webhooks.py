"""Webhook messages (attempts, dead letters), per-batch webhook options, and the periodic sweep
that sends messages whose one-off retry schedule was lost."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import jobs.models.webhooks

SWEEP = ("batchserver: overdue webhooks", "jobs.tasks.deliver_overdue_webhooks", 1)


def create_sweep(apps, schema_editor):
    name, func, minutes = SWEEP
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=name, defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1}
    )


def remove_sweep(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SWEEP[0]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("jobs", "0004_workers_pause_webhook_correlation"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.CreateModel(
            name="WebhookSubscription",
            fields=[
                ("batch", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name="webhook_subscription", serialize=False, to="jobs.batch")),
                ("progress_percent", models.PositiveSmallIntegerField(help_text="Send batch.progress each time this many more percent of lines are done.")),
            ],
        ),
        migrations.CreateModel(
            name="WebhookDelivery",
            fields=[
                ("id", models.CharField(default=jobs.models.webhooks.new_webhook_id, editable=False, help_text="The webhook-id header: the same on every retry and replay.", max_length=40, primary_key=True, serialize=False)),
                ("event_type", models.CharField(choices=[("batch.completed", "Completed"), ("batch.failed", "Failed"), ("batch.cancelled", "Cancelled"), ("batch.expired", "Expired"), ("batch.progress", "Progress")], max_length=32)),
                ("event_key", models.CharField(max_length=64)),
                ("url", models.URLField(max_length=500)),
                ("payload", models.JSONField()),
                ("status", models.CharField(choices=[("pending", "Pending"), ("delivered", "Delivered"), ("dead", "Dead")], db_index=True, default="pending", max_length=16)),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("last_status_code", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
                ("history", models.JSONField(blank=True, default=list, help_text="One entry per attempt: when, status code, error.")),
                ("next_attempt_at", models.DateTimeField(blank=True, db_index=True, null=True)),
                ("created_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ("delivered_at", models.DateTimeField(blank=True, null=True)),
                ("dead_at", models.DateTimeField(blank=True, null=True)),
                ("batch", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="webhook_deliveries", to="jobs.batch")),
            ],
            options={
                "verbose_name_plural": "webhook deliveries",
                "ordering": ["-created_at"],
                "indexes": [models.Index(fields=["status", "next_attempt_at"], name="jobs_webhoo_status_dd8b84_idx")],
                "constraints": [models.UniqueConstraint(fields=("batch", "event_key"), name="uniq_webhook_event_per_batch")],
            },
        ),
        migrations.RunPython(create_sweep, remove_sweep),
    ]
