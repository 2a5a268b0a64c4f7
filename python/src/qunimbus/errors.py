"""Typed errors of the QuNimbus HTTP API.

Every error the node answers is JSON: ``{"error": {"code", "message",
"field"?, "items"?}}``. :class:`Client` raises the subclass of
:class:`ApiError` that matches the HTTP status, carrying the node's error
code, message, the field at fault and, for a refused batch, every item.
"""

from __future__ import annotations

from typing import Any, Optional


class QunimbusError(Exception):
    """Base class of every error this package raises about a node."""


class TransportError(QunimbusError):
    """The node could not be reached, or did not answer in time."""


class ApiError(QunimbusError):
    """The node answered with an error status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: Optional[str] = None,
        items: Optional[list[dict[str, Any]]] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.items = items or []
        self.retry_after = retry_after


class BadRequest(ApiError):
    """400: the request could not be parsed (e.g. ``malformed_json``)."""


class Unauthorized(ApiError):
    """401: no valid token."""


class Forbidden(ApiError):
    """403: the token lacks the scope, or a policy rule refused the request."""


class NotFound(ApiError):
    """404: no such resource."""


class Conflict(ApiError):
    """409: the change conflicts with the node's state."""


class PayloadTooLarge(ApiError):
    """413: the body is over the node's limit."""


class Unprocessable(ApiError):
    """422: a value is invalid; :attr:`field` names it."""


class TooManyRequests(ApiError):
    """429: a rate limit or the write queue; :attr:`retry_after` says when to retry."""


class ServerError(ApiError):
    """5xx: the node failed or is unavailable (:attr:`retry_after` when it said)."""


_BY_STATUS = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
    429: TooManyRequests,
}


def error_for(status: int, body: Any, retry_after: Optional[float]) -> ApiError:
    """The typed error for an error answer (``body`` parsed JSON, or text)."""
    detail = body.get("error") if isinstance(body, dict) else None
    if not isinstance(detail, dict):
        detail = {"code": "unexpected_answer", "message": str(body)[:500]}
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(
        status,
        str(detail.get("code", "unknown")),
        str(detail.get("message", "")),
        detail.get("field"),
        detail.get("items"),
        retry_after,
    )
