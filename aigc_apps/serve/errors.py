"""Every error a client sees is JSON in OpenAI's shape, with the right status code.

``{"error": {"message": ..., "type": ..., "code": ...}}``: the shape OpenAI's clients already
parse, used by the app routes too so that one client-side handler fits the whole service.
No traceback ever reaches a client; unexpected exceptions are logged and answered with 500.
"""

from __future__ import annotations

from typing import Any


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


def not_found(what: str, code: str = "not_found") -> ApiError:
    return ApiError(404, what, "not_found_error", code)


def bad_request(message: str, code: str = "invalid_request", param: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", code, param=param)
