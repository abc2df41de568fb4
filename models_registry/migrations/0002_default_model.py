"""Register the embedded default model, so a fresh install can run a batch at once."""

from django.db import migrations

NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"


def register(apps, schema_editor):
    Model = apps.get_model("models_registry", "Model")
    Model.objects.get_or_create(
        name=NAME,
        defaults={
            "kind": "generate",
            "path": "builtin:smollm2-135m-instruct",
            "owned_by": "HuggingFaceTB",
            "dtype": "float32",
            "enforce_eager": True,
            "max_model_len": 2048,
            "cpu_kvcache_space_gib": 2,
        },
    )


def unregister(apps, schema_editor):
    apps.get_model("models_registry", "Model").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("models_registry", "0001_initial")]
    operations = [migrations.RunPython(register, unregister)]
