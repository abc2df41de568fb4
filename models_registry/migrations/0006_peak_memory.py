"""The engine's sampled peak memory: per model since its last load, per test, and the memory
once ready beside it on a test."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('models_registry', '0005_schedule'),
    ]

    operations = [
        migrations.AddField(
            model_name='model',
            name='last_peak_memory_bytes',
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='modeltest',
            name='ready_memory_bytes',
            field=models.BigIntegerField(blank=True, null=True),
        ),
    ]
