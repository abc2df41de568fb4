"""Cursor lists as OpenAI pages them: `after`, `limit`, `order`, `has_more`, first and last id."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from batchserver.api.errors import ApiError


def parse_limit(value: str | None, default: int = 20, maximum: int = 100) -> int:
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except ValueError:
        raise ApiError("limit must be an integer.", param="limit", code="invalid_value") from None
    if not 1 <= limit <= maximum:
        raise ApiError(
            f"limit must be between 1 and {maximum}.", param="limit", code="invalid_value"
        )
    return limit


def cursor_page(
    queryset: QuerySet,
    params: Any,
    *,
    default_limit: int = 20,
    maximum: int = 100,
    default_order: str = "desc",
) -> tuple[list[Any], bool]:
    """One page of ``queryset`` (ordered by creation, then id) after the object named by ``after``.

    An ``after`` id that is unknown to this key gives an empty page, like OpenAI; it never
    reveals whether the id exists for someone else.
    """
    limit = parse_limit(params.get("limit"), default_limit, maximum)
    order = params.get("order") or default_order
    if order not in ("asc", "desc"):
        raise ApiError("order must be 'asc' or 'desc'.", param="order", code="invalid_value")
    sign = "-" if order == "desc" else ""
    queryset = queryset.order_by(f"{sign}created_at", f"{sign}id")
    after = params.get("after")
    if after:
        anchor = queryset.filter(id=after).values("created_at", "id").first()
        if anchor is None:
            return [], False
        later = "lt" if order == "desc" else "gt"
        queryset = queryset.filter(
            **{f"created_at__{later}": anchor["created_at"]}
        ) | queryset.filter(created_at=anchor["created_at"], **{f"id__{later}": anchor["id"]})
        queryset = queryset.order_by(f"{sign}created_at", f"{sign}id")
    rows = list(queryset[: limit + 1])
    return rows[:limit], len(rows) > limit


def list_body(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
