"""The API's expected failures, shared by GraphQL resolvers and REST routes.

- :class:`InputError`: an argument is invalid; ``field`` names it (``first``, ``input.name``).
- :class:`NotFoundError`: no such thing *in the caller's tenant* (another tenant's ids are
  indistinguishable from ids that do not exist, so nothing leaks).
- :class:`RateLimited`: the client's cost budget is spent; ``retry_after`` says when to retry.
- :class:`~creatorpulse.graphql.auth.AuthError` / :class:`~creatorpulse.graphql.auth.Forbidden`:
  not authenticated / role too weak.

Each maps to a GraphQL error ``code`` in ``extensions`` (:func:`error_code`); anything else is
unexpected and masked in responses.
"""

from __future__ import annotations

from creatorpulse.graphql.auth import AuthError, Forbidden


class ApiError(Exception):
    """Base of the expected failures whose message the caller may see."""

    code = "BAD_REQUEST"


class InputError(ApiError):
    """An argument is invalid; ``field`` is its path in the operation's arguments."""

    code = "BAD_USER_INPUT"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotFoundError(ApiError):
    code = "NOT_FOUND"


class RateLimited(ApiError):
    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_code(exc: BaseException) -> str | None:
    """The public code of an expected failure; None for an unexpected one (to be masked)."""
    if isinstance(exc, ApiError):
        return exc.code
    if isinstance(exc, AuthError):
        return "UNAUTHENTICATED"
    if isinstance(exc, Forbidden):
        return "FORBIDDEN"
    return None
