from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_view

from finetuning.api import views


def alias(view: type) -> type:
    """The same view under the hyphenated path, left out of the schema (one operation each)."""
    methods = {m: extend_schema(exclude=True) for m in ("get", "post") if hasattr(view, m)}
    return extend_schema_view(**methods)(type(f"Hyphenated{view.__name__}", (view,), {}))


def routes(prefix: str, name: str, wrap=lambda view: view) -> list:
    jobs = f"{prefix}/jobs"
    job = f"{jobs}/<str:job_id>"
    return [
        path(jobs, wrap(views.JobListCreateView).as_view(), name=f"{name}-jobs"),
        path(job, wrap(views.JobDetailView).as_view(), name=f"{name}-job"),
        path(f"{job}/cancel", wrap(views.JobCancelView).as_view(), name=f"{name}-cancel"),
        path(f"{job}/pause", wrap(views.JobPauseView).as_view(), name=f"{name}-pause"),
        path(f"{job}/resume", wrap(views.JobResumeView).as_view(), name=f"{name}-resume"),
        path(f"{job}/events", wrap(views.JobEventsView).as_view(), name=f"{name}-events"),
        path(
            f"{job}/checkpoints",
            wrap(views.JobCheckpointsView).as_view(),
            name=f"{name}-checkpoints",
        ),
        path(
            f"{job}/checkpoints/<str:checkpoint_id>/register",
            wrap(views.CheckpointRegisterView).as_view(),
            name=f"{name}-checkpoint-register",
        ),
    ]


# OpenAI's paths (fine_tuning), and the hyphenated ones of the system this replaces, alike.
urlpatterns = routes("fine_tuning", "ft") + routes("fine-tuning", "ft-hyphen", alias)
