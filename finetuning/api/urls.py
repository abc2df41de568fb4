from django.urls import path

from finetuning.api import views

# OpenAI's paths (fine_tuning) and the hyphenated ones of the system this replaces, alike.
urlpatterns = [
    route
    for prefix, name in (("fine_tuning", "ft"), ("fine-tuning", "ft-hyphen"))
    for route in (
        path(f"{prefix}/jobs", views.JobListCreateView.as_view(), name=f"{name}-jobs"),
        path(f"{prefix}/jobs/<str:job_id>", views.JobDetailView.as_view(), name=f"{name}-job"),
        path(
            f"{prefix}/jobs/<str:job_id>/cancel",
            views.JobCancelView.as_view(),
            name=f"{name}-cancel",
        ),
        path(
            f"{prefix}/jobs/<str:job_id>/pause", views.JobPauseView.as_view(), name=f"{name}-pause"
        ),
        path(
            f"{prefix}/jobs/<str:job_id>/resume",
            views.JobResumeView.as_view(),
            name=f"{name}-resume",
        ),
        path(
            f"{prefix}/jobs/<str:job_id>/events",
            views.JobEventsView.as_view(),
            name=f"{name}-events",
        ),
        path(
            f"{prefix}/jobs/<str:job_id>/checkpoints",
            views.JobCheckpointsView.as_view(),
            name=f"{name}-checkpoints",
        ),
        path(
            f"{prefix}/jobs/<str:job_id>/checkpoints/<str:checkpoint_id>/register",
            views.CheckpointRegisterView.as_view(),
            name=f"{name}-checkpoint-register",
        ),
    )
]
