from django.urls import path

from plugins.api import views

urlpatterns = [
    path("plugins", views.PluginListView.as_view(), name="plugin-list"),
    path("plugins/by-type/<str:hook_type>", views.PluginsByTypeView.as_view(), name="plugin-type"),
    path("plugins/<str:plugin_id>", views.PluginDetailView.as_view(), name="plugin-detail"),
    path("plugins/<str:plugin_id>/enable", views.PluginEnableView.as_view(), name="plugin-enable"),
    path(
        "plugins/<str:plugin_id>/disable", views.PluginDisableView.as_view(), name="plugin-disable"
    ),
    path(
        "plugins/<str:plugin_id>/ui-components",
        views.PluginComponentsView.as_view(),
        name="plugin-components",
    ),
    path(
        "plugins/<str:plugin_id>/render-component",
        views.PluginRenderComponentView.as_view(),
        name="plugin-render-component",
    ),
]
