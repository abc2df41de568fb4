from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Files, batches, their requests and the worker pipeline that runs them."""

    name = "jobs"
    verbose_name = "Batch jobs"
