"""Request bodies as JSON text, and lz4 for the two large columns of a request row.

Loading a 200 MB batch was dominated by PostgreSQL parsing every body into jsonb and compressing
it with pglz; text needs no parsing, and lz4 compresses several times faster than pglz. lz4 is
used where the server was built with it (PostgreSQL 14 and later, as Debian's is).
"""

from django.db import migrations, models

COLUMNS = ("body", "response_body")


def use_lz4(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings"
            " WHERE name = 'default_toast_compression'"
        )
        row = cursor.fetchone()
        if not (row and row[0]):
            return
        for column in COLUMNS:
            cursor.execute(
                f"ALTER TABLE jobs_batchrequest ALTER COLUMN {column} SET COMPRESSION lz4"
            )


def use_default(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for column in COLUMNS:
                cursor.execute(
                    f"ALTER TABLE jobs_batchrequest ALTER COLUMN {column} SET COMPRESSION default"
                )


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0005_webhooks"),
    ]

    operations = [
        migrations.AlterField(
            model_name="batchrequest",
            name="body",
            field=models.TextField(),
        ),
        migrations.RunPython(use_lz4, use_default),
    ]
