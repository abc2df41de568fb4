"""The staff API of plugins (the paths of the system we replace): list, read, enable, disable,
components, render a component, list by hook type. Session + CSRF + ``is_staff`` only."""

from __future__ import annotations

from django.middleware.csrf import get_token
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from batchserver.api.staff import StaffAPIView
from plugins import services
from plugins.api import serializers as s
from plugins.types import HOOK_TYPES

TAGS = ["plugins (staff: admin session + CSRF, never an API key)"]


def _listed(items: list[dict]) -> dict:
    return {"object": "list", "data": items}


class PluginListView(StaffAPIView):
    @extend_schema(operation_id="listPlugins", tags=TAGS, responses=s.PluginListSerializer)
    def get(self, request):
        """Every plugin found: enabled, disabled, switched off automatically, or refused."""
        return Response(s.PluginListSerializer(_listed(services.list_plugins())).data)


class PluginDetailView(StaffAPIView):
    @extend_schema(operation_id="retrievePlugin", tags=TAGS, responses=s.PluginSerializer)
    def get(self, request, plugin_id: str):
        """One plugin: manifest, status (and why), settings, hook types, components, errors."""
        return Response(s.PluginSerializer(services.get_plugin(plugin_id)).data)


class PluginEnableView(StaffAPIView):
    @extend_schema(
        operation_id="enablePlugin", tags=TAGS, request=None, responses=s.PluginSerializer
    )
    def post(self, request, plugin_id: str):
        """Switch a plugin on in every process (within ``PLUGINS_CHECK_SECONDS``)."""
        return Response(s.PluginSerializer(services.enable(plugin_id)).data)


class PluginDisableView(StaffAPIView):
    @extend_schema(
        operation_id="disablePlugin", tags=TAGS, request=None, responses=s.PluginSerializer
    )
    def post(self, request, plugin_id: str):
        """Switch a plugin off in every process (within ``PLUGINS_CHECK_SECONDS``)."""
        return Response(s.PluginSerializer(services.disable(plugin_id)).data)


class PluginComponentsView(StaffAPIView):
    @extend_schema(
        operation_id="listPluginComponents", tags=TAGS, responses=s.ComponentListSerializer
    )
    def get(self, request, plugin_id: str):
        """The UI components an enabled plugin declares (none while it is off)."""
        data = _listed(services.ui_components(plugin_id))
        return Response(s.ComponentListSerializer(data).data)


class PluginRenderComponentView(StaffAPIView):
    @extend_schema(
        operation_id="renderPluginComponent",
        tags=TAGS,
        request=s.RenderRequestSerializer,
        responses=s.RenderedSerializer,
    )
    def post(self, request, plugin_id: str):
        """Render one component with ``data`` on the server; every value is escaped."""
        body = s.RenderRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        component = body.validated_data["component"]
        html = services.render_component(
            plugin_id, component, body.validated_data["data"], get_token(request)
        )
        return Response(
            s.RenderedSerializer({"plugin": plugin_id, "component": component, "html": html}).data
        )


class PluginsByTypeView(StaffAPIView):
    @extend_schema(
        operation_id="listPluginsByType",
        tags=TAGS,
        parameters=[OpenApiParameter("hook_type", str, "path", enum=list(HOOK_TYPES))],
        responses=s.PluginListSerializer,
    )
    def get(self, request, hook_type: str):
        """The plugins whose manifest declares this hook type."""
        return Response(s.PluginListSerializer(_listed(services.list_plugins(hook_type))).data)
