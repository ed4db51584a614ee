"""Assertions shared by the HTTP tests: OpenAI's error shape, documented routes, the shape
of a reply (what the CLI's `--json` must match)."""

from __future__ import annotations

from typing import Any


def assert_error(
    response: Any, status: int, type_: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The error object, once status, content type and OpenAI's shape are checked."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["message"] and "\n" not in error["message"]
    assert type_ is None or error["type"] == type_
    assert code is None or error["code"] == code
    assert "Traceback" not in response.text
    return error


def error(response: Any, status: int, type_: str | None = None, code: str | None = None) -> str:
    """The error's message, once :func:`assert_error` holds."""
    return str(assert_error(response, status, type_, code)["message"])


def assert_documented(openapi: dict[str, Any], tag: str, routes: set[tuple[str, str]]) -> None:
    """Each (method, path) is in the OpenAPI document with a summary, description, tag."""
    for method, path in routes:
        operation = openapi["paths"][path][method]
        assert operation["summary"] and operation["description"], (method, path)
        assert operation["tags"] == [tag], (method, path)


def keys_of(value: Any) -> Any:
    """The shape of a JSON value: each object's keys, down through objects and lists (a
    list's items each), leaves as None; two edges that print one model have equal shapes."""
    if isinstance(value, dict):
        return {k: keys_of(v) for k, v in value.items()}
    if isinstance(value, list):
        return [keys_of(v) for v in value]
    return None
