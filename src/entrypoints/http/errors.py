"""The one table from errors to HTTP statuses (and WebSocket close codes), and the handlers that use it.

Every error answer has the seed's envelope: ``{"status": "error", "message", "code", "field", "data": null}``.
"""

from __future__ import annotations

import logging
import re

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from application.errors import InvalidToken, KeysUnavailable, SchemaNotMigrated, StorageUnavailable
from application.idempotency import RequestInProgress
from domain import errors as domain
from entrypoints.logs import OncePer

log = logging.getLogger(__name__)
_schema_warnings = OncePer(60.0)

# Most specific first: the first matching class decides.
STATUS_OF: list[tuple[type[Exception], int]] = [
    (domain.ProfileNotFound, HTTP_401_UNAUTHORIZED),  # a valid token for a user we do not know
    (domain.InvalidInput, HTTP_422_UNPROCESSABLE_ENTITY),
    (domain.NotFound, HTTP_404_NOT_FOUND),
    (domain.NotASeeker, HTTP_403_FORBIDDEN),
    (domain.NotAProvider, HTTP_403_FORBIDDEN),
    (domain.NotAnOperator, HTTP_403_FORBIDDEN),
    (domain.NotYourOrder, HTTP_403_FORBIDDEN),
    (domain.ProviderUnavailable, HTTP_409_CONFLICT),
    (domain.TooManyPendingOrders, HTTP_409_CONFLICT),
    (domain.NoProvidersNearby, HTTP_409_CONFLICT),
    (RequestInProgress, HTTP_409_CONFLICT),
    (domain.AlreadyAnswered, HTTP_409_CONFLICT),
    (domain.InvalidTransition, HTTP_409_CONFLICT),
    (domain.DomainError, HTTP_422_UNPROCESSABLE_ENTITY),
]

# WebSocket close codes: 4000 + the HTTP status, as is customary.
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_UNAVAILABLE = 4503
CLOSE_RATE_LIMITED = 4429
CLOSE_REPLACED = 4409  # a newer socket of the same user took this one's place (MAX_SOCKETS_PER_USER)
CLOSE_POLICY_VIOLATION = 1008  # RFC 6455: a message broke the server's policy (here: the message rate)


class RequestRejected(Exception):
    """A request refused before it reaches a use case (media type, encoding, malformed ids), with its answer."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def status_of(error: domain.DomainError) -> int:
    for kind, status in STATUS_OF:
        if isinstance(error, kind):
            return status
    return HTTP_422_UNPROCESSABLE_ENTITY


def error_body(message: str, code: str, field: str | None = None) -> dict:
    return {"status": "error", "message": message, "code": code, "field": field, "data": None}


def _response(status: int, message: str, code: str, field: str | None = None, headers=None) -> Response:
    return Response(error_body(message, code, field), status_code=status, headers=headers)


def on_domain_error(request: Request, error: domain.DomainError) -> Response:
    code = "unknown_user" if isinstance(error, domain.ProfileNotFound) else error.code
    headers = {"Retry-After": "1"} if isinstance(error, RequestInProgress) else None
    return _response(status_of(error), error.message, code, error.field, headers)


def on_invalid_token(request: Request, error: InvalidToken) -> Response:
    return _response(HTTP_401_UNAUTHORIZED, str(error), "not_authenticated", headers={"WWW-Authenticate": "Bearer"})


def on_request_rejected(request: Request, error: RequestRejected) -> Response:
    return _response(error.status, error.message, error.code, error.field)


def on_keys_unavailable(request: Request, error: KeysUnavailable) -> Response:
    if _schema_warnings.due("keys"):
        log.error("cannot check tokens: the auth server's keys (JWT_JWKS_URL) are not available")
    return _response(
        HTTP_503_SERVICE_UNAVAILABLE,
        "tokens cannot be checked right now, try again shortly",
        "auth_unavailable",
        headers={"Retry-After": "10"},
    )


def on_storage_unavailable(request: Request, error: StorageUnavailable) -> Response:
    if isinstance(error, SchemaNotMigrated):
        if _schema_warnings.due("schema"):
            log.error("the database schema is missing or out of date: run `workcast migrate`")
        return _response(
            HTTP_503_SERVICE_UNAVAILABLE,
            "the database schema is not migrated: the operator must run `workcast migrate`",
            "schema_not_migrated",
            headers={"Retry-After": "60"},
        )
    log.error("database unavailable", extra={"path": request.url.path, "error": str(error)})
    return _response(
        HTTP_503_SERVICE_UNAVAILABLE,
        "the service is temporarily unavailable, try again shortly",
        "storage_unavailable",
        headers={"Retry-After": "5"},
    )


_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")
_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`")


def validation_problem(message: str, field: str | None = None) -> tuple[str | None, str]:
    """The field a msgspec/Litestar validation message is about, and the message saying so."""
    missing = _MISSING_FIELD.search(message)
    if missing:
        field = missing.group(1)
    elif field in (None, "data"):
        at = _AT_PATH.search(message)
        field = at.group(1) if at else None
    if field == "data":
        field = None
    message = _AT_PATH.sub("", message)
    return field, f"{field}: {message}" if field else message


def on_validation_error(request: Request, error: ValidationException) -> Response:
    """Litestar/msgspec validation: name the field and the problem."""
    problems = error.extra if isinstance(error.extra, list) else []
    first = problems[0] if problems and isinstance(problems[0], dict) else {}
    message = str(first.get("message") or error.detail)
    field = first.get("key")
    missing = _MISSING_FIELD.search(message)
    if (missing and missing.group(1) == "data") or field == "data" or message == "'data'":
        # Litestar does not decode an empty body at all: the handler's body parameter is missing.
        return _response(HTTP_400_BAD_REQUEST, "the request body is empty: send a JSON object", "malformed_json")
    field, text = validation_problem(message, field)
    return _response(HTTP_422_UNPROCESSABLE_ENTITY, text, "validation_error", field)


def on_http_exception(request: Request, error: HTTPException) -> Response:
    status = error.status_code
    if isinstance(error, NotAuthorizedException):
        return _response(status, error.detail, "not_authenticated", headers={"WWW-Authenticate": "Bearer"})
    if isinstance(error, PermissionDeniedException):
        return _response(status, error.detail, "forbidden")
    if status == HTTP_400_BAD_REQUEST:
        code = "malformed_json" if "JSON" in str(error.detail) else "bad_request"
        return _response(status, str(error.detail), code)
    if status >= HTTP_500_INTERNAL_SERVER_ERROR:
        log.error("server error", extra={"path": request.url.path, "detail": str(error.detail)})
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}
    return _response(status, str(error.detail), code.get(status, f"http_{status}"), headers=error.headers)


def on_unexpected(request: Request, error: Exception) -> Response:
    log.exception("unhandled error", extra={"path": request.url.path, "method": request.method})
    return _response(HTTP_500_INTERNAL_SERVER_ERROR, "internal error", "internal_error")


EXCEPTION_HANDLERS = {
    domain.DomainError: on_domain_error,
    InvalidToken: on_invalid_token,
    KeysUnavailable: on_keys_unavailable,
    RequestRejected: on_request_rejected,
    StorageUnavailable: on_storage_unavailable,
    ValidationException: on_validation_error,
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}
