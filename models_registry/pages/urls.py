"""The registry pages at their console paths (staff only)."""

urlpatterns: list = []
