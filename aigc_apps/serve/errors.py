"""Every error a client sees is JSON in OpenAI's shape, with the right status code.

``{"error": {"message": ..., "type": ..., "code": ...}}``: the shape OpenAI's clients already
parse, used by the app routes too so that one client-side handler fits the whole service.
No traceback ever reaches a client; unexpected exceptions are logged and answered with 500.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aigc_apps.errors import (
    AigcError,
    ConflictError,
    CorruptDatabaseError,
    ModelNotFoundError,
    NotFoundError,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("aigc.serve")


class ApiError(Exception):
    """An error answered to the client as-is: raise it from any route or dependency.

    ``type`` follows OpenAI's vocabulary (``invalid_request_error``,
    ``authentication_error``, ``permission_error``, ``not_found_error``,
    ``rate_limit_error``, ``server_error``); ``code`` is a short machine-readable reason.
    """

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type, code
        self.headers = headers or {}
        self.param = param

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code, self.param)


def error_body(
    message: str, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": type, "code": code, "param": param}}


def bad_request(message: str, code: str = "invalid_request", param: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", code, param=param)


def json_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error object, declared in the OpenAPI document for every error status."""

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Bad request (not JSON, or a value the service refuses)",
    401: "Missing, unknown or revoked API token",
    403: "The token lacks the scope this route needs",
    404: "Not found",
    409: "The state of the thing forbids the change (e.g. another agent holds it)",
    413: "Request body too large",
    422: "A field is missing or has the wrong type",
    429: "Rate limit reached (see Retry-After)",
    500: "Internal error (details are in the server log only)",
    504: "The request did not answer in time",
}
# Passed as ``responses=`` for every router, so clients (and schemathesis) know the shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text} for status, text in _DESCRIPTIONS.items()
}

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def json_response(status: int, body: dict[str, Any],
                  headers: dict[str, str] | None = None) -> Response:
    """A whole JSON response (also an ASGI app, for middleware to answer with)."""
    return Response(json_bytes(body), status, headers=headers, media_type="application/json")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response(exc.status, exc.body(), exc.headers)


async def _aigc_error(request: Request, exc: Exception) -> Response:
    """Errors a user can fix, raised by the services: one line, 404 for a missing thing. A
    damaged database is for the operator (the log), not the client: 500."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, CorruptDatabaseError):
        log.error("%s %s: %s", request.method, request.url.path, message)
        return _internal_error()
    if isinstance(exc, ModelNotFoundError):
        return json_response(404, error_body(message, "not_found_error", "model_not_found"))
    if isinstance(exc, NotFoundError):
        return json_response(404, error_body(message, "not_found_error", "not_found"))
    if isinstance(exc, ConflictError):
        return json_response(409, error_body(message, "invalid_request_error", exc.code))
    return json_response(400, error_body(message, "invalid_request_error", "invalid_request"))


def _field(loc: tuple[Any, ...]) -> str | None:
    """``("body", "messages", 0, "content")`` -> ``messages.0.content``; None: the whole body."""
    where = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    return ".".join(str(part) for part in where) or None


async def _validation_error(request: Request, exc: Exception) -> Response:
    """422 naming the first bad field (``param``); a body that is not JSON is 400."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        return json_response(400, error_body("request body is not valid JSON",
                                             "invalid_request_error", "invalid_json"))
    if loc == ("body",) and isinstance(first.get("input"), bytes | bytearray):
        return json_response(400, error_body(
            "request body must be JSON (Content-Type: application/json)",
            "invalid_request_error", "invalid_json"))
    param = _field(loc)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = f"{loc[0]} field '{param}'" if param else "request body"
    message = f"{where}: {first.get('msg', 'invalid')}{more}"
    return json_response(422, error_body(message, "invalid_request_error", "invalid_value", param))


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown path, wrong method...) in the same shape."""
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404:
        message = f"no route {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    body = error_body(message, _TYPES.get(status, "invalid_request_error" if status < 500
                                          else "server_error"), _CODES.get(status))
    return json_response(status, body, dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    """A bug: the traceback goes to the log, the client gets one neutral line."""
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return _internal_error()


def _internal_error() -> Response:
    return json_response(500, error_body("internal error", "server_error", "internal_error"))


class StartWatch:
    """An ASGI ``send`` that remembers whether the response has started (after which a
    middleware can no longer answer with an error of its own)."""

    def __init__(self, send: Send) -> None:
        self.send, self.started = send, False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


class CatchAllMiddleware:
    """The last net: an exception no handler took becomes a 500 answer here, and is not
    re-raised to the server (uvicorn would then close the client's keep-alive connection,
    failing its next request too). A stream that already started is cut instead."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watched = StartWatch(send)
        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if watched.started:
                raise
            log.error("unhandled error in %s %s", scope.get("method"), scope.get("path"),
                      exc_info=exc)
            await _internal_error()(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Every error a client can see becomes OpenAI-shaped JSON with the right status."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(AigcError, _aigc_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
