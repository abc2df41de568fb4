from django.urls import path

from jobs.api import ops_views, views, webhook_views

urlpatterns = [
    path("files", views.FileListCreateView.as_view(), name="file-list"),
    path("files/<str:file_id>", views.FileDetailView.as_view(), name="file-detail"),
    path("files/<str:file_id>/content", views.FileContentView.as_view(), name="file-content"),
    path("batches", views.BatchListCreateView.as_view(), name="batch-list"),
    # Before batches/<batch_id>, which would otherwise take "dry_run" for an id.
    path("batches/dry_run", ops_views.BatchDryRunView.as_view(), name="batch-dry-run"),
    path("batches/<str:batch_id>", views.BatchDetailView.as_view(), name="batch-detail"),
    path("batches/<str:batch_id>/pause", ops_views.BatchPauseView.as_view(), name="batch-pause"),
    path("batches/<str:batch_id>/resume", ops_views.BatchResumeView.as_view(), name="batch-resume"),
    path(
        "batches/<str:batch_id>/priority",
        ops_views.BatchPriorityView.as_view(),
        name="batch-priority",
    ),
    path("queue", ops_views.QueueView.as_view(), name="queue"),
    path("worker/status", ops_views.WorkerStatusView.as_view(), name="worker-status"),
    path("jobs/history", ops_views.JobHistoryView.as_view(), name="job-history"),
    path("batches/<str:batch_id>/cancel", views.BatchCancelView.as_view(), name="batch-cancel"),
    path("batches/<str:batch_id>/retry", views.BatchRetryView.as_view(), name="batch-retry"),
    path(
        "batches/<str:batch_id>/partial_output",
        views.BatchPartialOutputView.as_view(),
        name="batch-partial-output",
    ),
    path(
        "batches/<str:batch_id>/partial_errors",
        views.BatchPartialErrorsView.as_view(),
        name="batch-partial-errors",
    ),
    path(
        "webhooks/deliveries",
        webhook_views.WebhookDeliveryListView.as_view(),
        name="webhook-delivery-list",
    ),
    path(
        "webhooks/deliveries/<str:delivery_id>",
        webhook_views.WebhookDeliveryDetailView.as_view(),
        name="webhook-delivery-detail",
    ),
    path(
        "webhooks/deliveries/<str:delivery_id>/replay",
        webhook_views.WebhookDeliveryReplayView.as_view(),
        name="webhook-delivery-replay",
    ),
]
