"""The daily retention purge (it does nothing while BATCH_RETENTION_DAYS is 0)."""

from django.db import migrations

SCHEDULES = [("batchserver: purge old batches", "jobs.tasks.purge_old_batches", 24 * 60)]


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func, minutes in SCHEDULES:
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1},
        )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(
        name__in=[name for name, _, _ in SCHEDULES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("jobs", "0010_batch_purge")]
    operations = [migrations.RunPython(create, remove)]
