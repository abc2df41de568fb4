"""The OpenAI error envelope `{"error": {"message", "type", "param", "code"}}` for every error."""

from __future__ import annotations

from typing import Any

from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from batchserver.errors import DomainError


class ApiError(exceptions.APIException):
    """An error a client caused (or a service state it must know of), answered in OpenAI's shape."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status_code: int = status.HTTP_400_BAD_REQUEST,
        type_: str = "invalid_request_error",
    ) -> None:
        super().__init__(detail=message)
        self.status_code = status_code
        self.message = message
        self.param = param
        self.error_code = code
        self.type = type_


class NotFoundError(ApiError):
    """A missing id and another key's id answer exactly alike."""

    def __init__(self, kind: str, object_id: str, param: str = "id") -> None:
        super().__init__(
            f"No such {kind}: '{object_id}'",
            param=param,
            code="not_found",
            status_code=status.HTTP_404_NOT_FOUND,
        )


def from_domain(exc: DomainError) -> ApiError:
    """The API's answer to a service's refusal: same message, param and code."""
    return ApiError(exc.message, param=exc.param, code=exc.code, status_code=exc.status)


def envelope(
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def json_error(status_code: int, message: str, **kwargs: Any) -> JsonResponse:
    return JsonResponse(envelope(message, **kwargs), status=status_code)


def _first_validation_error(detail: Any, path: str = "") -> tuple[str | None, str, str | None]:
    """The first (param, message, code) of a DRF ValidationError, with a dotted param path."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = path if key == "non_field_errors" else (f"{path}.{key}" if path else str(key))
            return _first_validation_error(value, name)
    if isinstance(detail, list) and detail:
        if isinstance(detail[0], (dict, list)):
            return _first_validation_error(detail[0], path)
        item = detail[0]
        return path or None, str(item), getattr(item, "code", None)
    return path or None, str(detail), getattr(detail, "code", None)


_CODES = {
    exceptions.NotAuthenticated: ("invalid_api_key", "invalid_request_error"),
    exceptions.AuthenticationFailed: ("invalid_api_key", "invalid_request_error"),
    exceptions.PermissionDenied: ("permission_denied", "invalid_request_error"),
    exceptions.NotFound: ("not_found", "invalid_request_error"),
    exceptions.MethodNotAllowed: ("method_not_allowed", "invalid_request_error"),
    exceptions.ParseError: ("invalid_json", "invalid_request_error"),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", "invalid_request_error"),
    exceptions.Throttled: ("rate_limit_exceeded", "rate_limit_error"),
    exceptions.NotAcceptable: ("not_acceptable", "invalid_request_error"),
}


def openai_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler that answers every error in the OpenAI envelope."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DomainError):
        exc = from_domain(exc)
    response = exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django answer 500 (and log it)
    if isinstance(exc, ApiError):
        body = envelope(exc.message, exc.type, exc.param, exc.error_code)
    elif isinstance(exc, exceptions.ValidationError):
        param, message, code = _first_validation_error(exc.detail)
        if code in (None, "invalid"):
            code = "invalid_value"
        body = envelope(message, "invalid_request_error", param, code)
    else:
        code, type_ = next(
            (v for k, v in _CODES.items() if isinstance(exc, k)), ("error", "api_error")
        )
        body = envelope(str(getattr(exc, "detail", exc)), type_, None, code)
    response.data = body
    return response
