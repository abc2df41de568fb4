from django.apps import AppConfig


class CurationConfig(AppConfig):
    """Datasets of batch answers, their review (ratings, labels, corrections, gold), exports."""

    name = "curation"
    verbose_name = "Curation"
    default_auto_field = "django.db.models.BigAutoField"
