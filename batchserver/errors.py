"""Domain errors: what a service raises when a caller asks for something it cannot have.

Services never speak HTTP. They raise one of these, with a message a person can read, the
parameter at fault and a machine-readable code; the API's exception handler
(``batchserver.api.errors``) turns them into OpenAI's error envelope with the matching status,
and a page, a command or a plugin that calls the same service shows ``message`` as it is.
"""

from __future__ import annotations


class DomainError(Exception):
    """A request a service refuses; ``status`` is only a hint for the API layer."""

    status = 400
    default_code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code


class Invalid(DomainError):
    """The input is wrong: a bad value, a file that breaks the rules."""

    status = 400
    default_code = "invalid_value"


class NotFound(DomainError):
    """No such object for this caller: a missing id and another key's id answer alike."""

    status = 404
    default_code = "not_found"

    def __init__(self, kind: str, object_id: str, *, param: str = "id") -> None:
        super().__init__(f"No such {kind}: '{object_id}'", param=param)
        self.kind = kind
        self.object_id = object_id


class Conflict(DomainError):
    """The object exists but its state forbids the action (cancel a completed batch)."""

    status = 409
    default_code = "conflict"


class TooLarge(DomainError):
    """The input exceeds a configured size limit."""

    status = 413
    default_code = "too_large"


class Unavailable(DomainError):
    """A service the request needs (the file store) is down for now: try again later."""

    status = 503
    default_code = "service_unavailable"
