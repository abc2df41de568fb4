import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("models_registry", "0002_default_model")]

    operations = [
        migrations.AddField(
            model_name="model", name="description", field=models.TextField(blank=True)
        ),
        migrations.AddField(
            model_name="model",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="children",
                to="models_registry.model",
            ),
        ),
        migrations.AddField(
            model_name="model", name="version", field=models.PositiveIntegerField(default=1)
        ),
        migrations.AddField(
            model_name="model",
            name="origin",
            field=models.CharField(
                choices=[
                    ("added", "Added (a folder or a hub download)"),
                    ("converted", "Converted (from a GGUF file)"),
                    ("fine-tuned", "Fine-tuned (a LoRA merged into its parent)"),
                    ("variant", "Variant (the parent's weights, other engine settings)"),
                ],
                default="added",
                max_length=16,
            ),
        ),
    ]
