"""A default webhook URL and a webhook signing secret per API key.

Existing keys each get their own secret (a callable default in AddField would give them all the
same one).
"""

from django.db import migrations, models

import batchserver.models


def fill_secrets(apps, schema_editor):
    ApiKey = apps.get_model("batchserver", "ApiKey")
    for key in ApiKey.objects.filter(webhook_secret=""):
        key.webhook_secret = batchserver.models.new_webhook_secret()
        key.save(update_fields=["webhook_secret"])


class Migration(migrations.Migration):

    dependencies = [
        ("batchserver", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="webhook_url",
            field=models.URLField(
                blank=True, help_text="Default webhook URL for this key's batches.", max_length=500
            ),
        ),
        migrations.AddField(
            model_name="apikey",
            name="webhook_secret",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(fill_secrets, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="apikey",
            name="webhook_secret",
            field=models.CharField(
                default=batchserver.models.new_webhook_secret, editable=False, max_length=64
            ),
        ),
    ]
