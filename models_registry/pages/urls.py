"""The registry pages at their console paths (staff only)."""

from django.urls import path

from models_registry.pages import views

urlpatterns = [
    path("model-management", views.management, name="model-management"),
    path("add-model", views.add_model, name="add-model"),
    path("models/<path:name>", views.model_page, name="model-page"),
]
