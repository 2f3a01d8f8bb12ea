"""Errors that become RFC 9457 ``application/problem+json`` responses.

Every client mistake is raised as :class:`ProblemError` with the field at fault, so the API layer can
turn it into a 4xx body without guessing. Nothing a client sends may surface as a 500.
"""

from __future__ import annotations

from typing import Any


class ProblemError(Exception):
    """A client error with an HTTP status, a title and the field (or query option) at fault."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.headers = headers  # sent with the response (Retry-After, Allow), not in the body
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.errors = errors
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://cityhub.hanoi/problems/{self.title.lower().replace(' ', '-')}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.field is not None:
            body["field"] = self.field
        if self.errors is not None:
            body["errors"] = self.errors
        if instance is not None:
            body["instance"] = instance
        body.update(self.extra)
        return body


def bad_request(detail: str, field: str | None = None, **extra: Any) -> ProblemError:
    return ProblemError(400, "Bad Request", detail, field=field, **extra)


def not_found(detail: str, field: str | None = None) -> ProblemError:
    return ProblemError(404, "Not Found", detail, field=field)


def conflict(detail: str, field: str | None = None, **extra: Any) -> ProblemError:
    return ProblemError(409, "Conflict", detail, field=field, **extra)


def unprocessable(detail: str, field: str | None = None, **extra: Any) -> ProblemError:
    return ProblemError(422, "Unprocessable Content", detail, field=field, **extra)
