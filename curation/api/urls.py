"""``/v1/curation/…`` (mounted under /v1/ by the root urls)."""

from django.urls import path

from curation.api import views

P = "curation/"
urlpatterns = [
    path(P + "datasets", views.DatasetsView.as_view(), name="curation-datasets"),
    path(P + "datasets/upload", views.DatasetUploadView.as_view()),
    path(P + "datasets/from-benchmark", views.FromBenchmarkView.as_view()),
    path(P + "datasets/merge", views.MergeView.as_view()),
    path(P + "datasets/<int:dataset_id>", views.DatasetDetailView.as_view()),
    path(P + "datasets/<int:dataset_id>/batches", views.AddBatchesView.as_view()),
    path(P + "datasets/<int:dataset_id>/split", views.SplitView.as_view()),
    path(P + "datasets/<int:dataset_id>/dedupe", views.DedupeView.as_view()),
    path(P + "datasets/<int:dataset_id>/score", views.ScoreView.as_view()),
    path(P + "datasets/<int:dataset_id>/exports", views.ExportView.as_view()),
    path(P + "export-formats", views.FormatsView.as_view()),
    path(P + "records", views.RecordsView.as_view(), name="curation-records"),
    path(P + "records/bulk", views.BulkView.as_view()),
    path(P + "records/<int:record_id>", views.RecordDetailView.as_view()),
    path(P + "records/<int:record_id>/history", views.HistoryView.as_view()),
]
