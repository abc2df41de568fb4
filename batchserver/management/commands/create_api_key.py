"""Issue an API key; the raw key is printed alone on the last line."""

from django.core.management.base import BaseCommand

from batchserver.models import ApiKey


class Command(BaseCommand):
    help = "Create an API key. The key is printed alone on the last line and never stored."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Who or what the key is for.")

    def handle(self, *args, name: str, **options):
        key, raw = ApiKey.issue(name)
        self.stdout.write(f"Created API key {key.name!r} (prefix {key.prefix}). Store it now:")
        self.stdout.write(raw)
