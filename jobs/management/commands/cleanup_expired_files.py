"""Remove every stored file past its ``expires_at`` (its row and its bytes)."""

from django.core.management.base import BaseCommand

from jobs.services.files import cleanup_expired_files


class Command(BaseCommand):
    help = "Delete files whose expires_at has passed, and report what was freed."

    def handle(self, *args, **options):
        report = cleanup_expired_files()
        self.stdout.write(f"Removed {report.files} expired files, {report.bytes} bytes freed.")
