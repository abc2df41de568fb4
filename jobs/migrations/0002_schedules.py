"""The periodic safety net (expiry, stuck work, resume) and the expired-file clean-up."""

from django.db import migrations

SCHEDULES = [
    ("batchserver: tick", "jobs.tasks.tick", 1),
    ("batchserver: cleanup expired files", "jobs.tasks.cleanup_expired_files", 60),
]


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func, minutes in SCHEDULES:
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": "I", "minutes": minutes,
                                 "repeats": -1},
        )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(
        name__in=[name for name, _, _ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("jobs", "0001_initial"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]
    operations = [migrations.RunPython(create, remove)]
