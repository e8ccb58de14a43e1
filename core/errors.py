"""The one exception tree of ModelReins.

Every failure inside the engine is a :class:`ModelReinsError` subclass carrying its wire
``code`` and HTTP status (DESIGN.md §5). Edges (REST, MCP, CLI) map them once; nothing
inside the engine knows about HTTP responses or tool results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "Conflict",
    "Forbidden",
    "Gone",
    "ModelReinsError",
    "NoWorker",
    "NotFound",
    "PayloadTooLarge",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "error_class",
    "error_from_wire",
    "field_error",
]


class ModelReinsError(Exception):
    """Root of every error ModelReins raises on purpose."""

    code: ClassVar[str] = "INTERNAL"
    http_status: ClassVar[int] = 500
    #: Whether dispatch may try a fallback provider after this failure.
    retriable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        retry_after: float | None = None,
        details: list[dict[str, Any]] | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.retry_after = retry_after
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The inner object of the wire error body ``{"error": {...}}``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.provider is not None:
            body["provider"] = self.provider
        if self.retry_after is not None:
            body["retryAfter"] = self.retry_after
        if self.details is not None:
            body["details"] = self.details
        return body

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ValidationFailed(ModelReinsError):
    """Missing or invalid input; ``details`` lists ``{"path", "problem"}`` per field."""

    code = "VALIDATION_ERROR"
    http_status = 400


class Unauthorized(ModelReinsError):
    code = "UNAUTHORIZED"
    http_status = 401


class Forbidden(ModelReinsError):
    code = "FORBIDDEN"
    http_status = 403


class NotFound(ModelReinsError):
    code = "NOT_FOUND"
    http_status = 404


class Conflict(ModelReinsError):
    code = "CONFLICT"
    http_status = 409


class Gone(ModelReinsError):
    code = "GONE"
    http_status = 410


class PayloadTooLarge(ModelReinsError):
    """A request body or upload over its size limit."""

    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class RateLimited(ModelReinsError):
    code = "RATE_LIMITED"
    http_status = 429
    retriable = True


class ProviderError(ModelReinsError):
    """Upstream failure. ``retriable`` is False for upstream 4xx (the request itself is bad)."""

    code = "PROVIDER_ERROR"
    http_status = 502

    def __init__(self, message: str, *, retriable: bool = True, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retriable = retriable


class NoWorker(ModelReinsError):
    code = "NO_WORKER"
    http_status = 503


class ProviderTimeout(ModelReinsError):
    code = "PROVIDER_TIMEOUT"
    http_status = 504
    retriable = True


class Unavailable(ModelReinsError):
    """ModelReins itself cannot be reached (remote mode): refused, timed out, or the address
    does not answer like a ModelReins server. Never sent by a server; raised by clients."""

    code = "UNAVAILABLE"
    http_status = 503


def _subclasses(cls: type[ModelReinsError]) -> list[type[ModelReinsError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _subclasses(child))]


def error_class(code: str) -> type[ModelReinsError]:
    """The exception class that carries ``code`` (the root for an unknown code), found by
    walking the tree, so a new subclass is known here as soon as it is defined."""
    for cls in _subclasses(ModelReinsError):
        if cls.code == code:
            return cls
    return ModelReinsError


def error_from_wire(error: Mapping[str, Any]) -> ModelReinsError:
    """The exception for the inner object of a §5 error body, ``{"code", "message", …}``.

    An unknown code becomes the root class with the code kept in the message."""
    code = str(error.get("code") or "INTERNAL")
    message = str(error.get("message") or code)
    cls = error_class(code)
    if cls is ModelReinsError and code != ModelReinsError.code:
        message = f"{code}: {message}"
    retry_after = error.get("retryAfter")
    provider = error.get("provider")
    details = error.get("details")
    return cls(
        message,
        provider=provider if isinstance(provider, str) else None,
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
        details=details if isinstance(details, list | dict) else None,
    )


def field_error(path: str, problem: str) -> ValidationFailed:
    """A VALIDATION_ERROR about one field, with the path in both message and details."""
    return ValidationFailed(f"{path}: {problem}", details=[{"path": path, "problem": problem}])
