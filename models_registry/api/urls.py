from django.urls import path

from models_registry.api import views

urlpatterns = [
    path("models", views.ModelListView.as_view(), name="model-list"),
    path("models/<path:model_id>", views.ModelDetailView.as_view(), name="model-detail"),
]
