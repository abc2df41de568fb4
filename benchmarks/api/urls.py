"""``/v1/benchmarks/…``: the staff API of benchmarks (mounted under /v1/ by the root urls)."""

from django.urls import path

from benchmarks.api import views

urlpatterns = [
    path("benchmarks/runs", views.RunsView.as_view(), name="benchmark-runs"),
    path("benchmarks/runs/<int:run_id>", views.RunDetailView.as_view(), name="benchmark-run"),
    path("benchmarks/runs/<int:run_id>/cancel", views.RunCancelView.as_view()),
    path("benchmarks/runs/<int:run_id>/samples", views.RunSamplesView.as_view()),
    path("benchmarks/compare", views.CompareView.as_view(), name="benchmark-compare"),
    path("benchmarks/datasets", views.DatasetsView.as_view(), name="benchmark-datasets"),
    path("benchmarks/datasets/<int:dataset_id>", views.DatasetDetailView.as_view()),
    path("benchmarks/prices", views.PricesView.as_view(), name="benchmark-prices"),
    path("benchmarks/prices/gpu", views.GpuPriceView.as_view()),
    path("benchmarks/prices/cloud", views.CloudPriceView.as_view()),
    path("benchmarks/scorers", views.ScorersView.as_view(), name="benchmark-scorers"),
]
