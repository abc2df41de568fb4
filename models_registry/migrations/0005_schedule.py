"""The periodic safety net of model tests: finish any test whose batch signal was lost."""

from django.db import migrations

NAME = "models_registry: finish ended model tests"


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=NAME,
        defaults={"func": "models_registry.tasks.finish_ended_tests", "schedule_type": "I",
                  "minutes": 1, "repeats": -1},
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("models_registry", "0004_tests_imports_usage"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(create, remove)]
