"""Requeue work whose worker is gone and settle batches that nothing is carrying."""

from django.core.management.base import BaseCommand

from jobs.services.recovery import FINALIZING_GRACE_SECONDS, reset_stuck_jobs


class Command(BaseCommand):
    help = (
        "Requeue chunks leased to workers whose heartbeat stopped (or whose lease ran out), "
        "finish batches stuck in finalizing, settle batches with nothing left to run, and "
        "restart the work. Safe to run at any time: no line is lost or written twice."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--finalizing-grace",
            type=float,
            default=FINALIZING_GRACE_SECONDS,
            help="Seconds a batch may be finalizing before it counts as stuck "
            f"(default {FINALIZING_GRACE_SECONDS:g}).",
        )

    def handle(self, *args, finalizing_grace: float, **options):
        report = reset_stuck_jobs(finalizing_grace=finalizing_grace)
        self.stdout.write(report.summary())
        if report.failed:
            self.stderr.write(f"could not settle: {', '.join(report.failed)}")
