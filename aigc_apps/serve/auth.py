"""Who is calling, and may they: bearer tokens with scopes.

Scopes are ``<app>:read`` / ``<app>:write`` per app (``support``, ``sentiment``,
``recommend``; the bare app name grants both), ``generate`` for the OpenAI-compatible
routes, and ``admin`` for everything. Routes declare what they need with
``Depends(require_scope("recommend:write"))``; a missing or bad token is 401, a token
without the scope 403, both as OpenAI-shaped JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from aigc_apps.serve.errors import ApiError

ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """The caller of one request: a token's name and its scopes."""

    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        if ADMIN in self.scopes or scope in self.scopes:
            return True
        app, _, _access = scope.partition(":")
        return app in self.scopes  # a bare app name grants read and write


ANONYMOUS = Principal("anonymous", frozenset({ADMIN}))  # auth off: loopback, no token defined


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency that authenticates the request and checks ``scope``."""

    async def dependency(request: Request) -> Principal:
        authenticate = getattr(request.app.state, "authenticate", None)
        principal = ANONYMOUS if authenticate is None else await authenticate(request)
        if not principal.allows(scope):
            raise ApiError(
                403, f"token '{principal.name}' lacks the '{scope}' scope",
                "permission_error", "insufficient_scope",
            )
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency
