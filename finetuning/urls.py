"""The fine-tuning page at its console path (staff only)."""

from django.urls import path

from finetuning import views

urlpatterns = [path("fine-tuning", views.page, name="fine-tuning")]
