"""Who is calling, and may they: bearer tokens with scopes.

Scopes are ``<app>:read`` / ``<app>:write`` per app (``support``, ``sentiment``,
``recommend``; the bare app name grants both), ``generate`` for the OpenAI-compatible
routes, and ``admin`` for everything. Routes declare what they need with
``Depends(require_scope("recommend:write"))``; a missing or bad token is 401, a token
without the scope 403, both as OpenAI-shaped JSON.

Auth is on as soon as one unrevoked token exists in the core database (``aigc tokens
create``), and off while none does, on a loopback address only: a server on another address
stays closed (401) when its last token is revoked, it never opens up. ``--insecure-no-auth``
turns auth off whatever the address and the tokens. Each
worker caches what it read about tokens for ``ServeConfig.auth_cache_s`` (2 s): a revoked
token keeps working for at most that long, and a new token (or the first one, which turns
auth on) takes effect within it, with no restart.

A ``<app>:chat`` scope is public: its token is published in a web page (the chat widget),
so anyone may hold it. Such a token is rate-limited per client address, and per
conversation on a route that names one, never as one bucket (one visitor would spend every
customer's budget); any other token has one bucket of its own, wherever it is used from.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from aigc_apps.serve.clients import client_address, is_proxied
from aigc_apps.serve.errors import ApiError
from aigc_apps.serve.principal import ADMIN, ANONYMOUS, PUBLIC_ACCESS, Principal

if TYPE_CHECKING:
    from aigc_apps.serve.limits import RateLimiter
    from aigc_apps.serve.tokens import TokenStore

__all__ = [  # ADMIN, ANONYMOUS, PUBLIC_ACCESS and Principal live in .principal
    "ADMIN", "ANONYMOUS", "CONVERSATION_PARAMS", "MAX_CONVERSATION_KEY", "PUBLIC_ACCESS",
    "Authenticator", "Principal", "bearer_token", "buckets", "require_scope",
]

CONVERSATION_PARAMS = ("session_id",)  # route parameters that name a conversation
MAX_CONVERSATION_KEY = 64  # a longer id is refused by its route; no bucket for it


def require_scope(scope: str, *alternatives: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency that authenticates the request and checks ``scope`` (or any of
    ``alternatives``: a customer's narrow ``support:chat`` token next to ``support:write``)."""
    accepted = (scope, *alternatives)

    async def dependency(request: Request) -> Principal:
        authenticate = getattr(request.app.state, "authenticate", None)
        principal = ANONYMOUS if authenticate is None else await authenticate(request)
        if not any(principal.allows(s) for s in accepted):
            wanted = "' or '".join(accepted)
            raise ApiError(
                403, f"token '{principal.name}' lacks the '{wanted}' scope",
                "permission_error", "insufficient_scope",
            )
        return principal

    dependency.__name__ = "require_" + "_or_".join(s.replace(":", "_") for s in accepted)
    return dependency


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None when the header is absent, ""
    when it is not that shape. RFC 7235 puts one or more spaces after the scheme; any
    whitespace is taken, since hand-written clients often send a tab."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    parts = header.split(None, 1)
    return parts[1].strip() if len(parts) == 2 and parts[0].lower() == "bearer" else ""


def _unauthorized(message: str, code: str) -> ApiError:
    return ApiError(401, message, "authentication_error", code,
                    headers={"WWW-Authenticate": "Bearer"})


def buckets(principal: Principal, request: Request, client: str) -> list[str]:
    """The rate-limit buckets a token's request spends from: the token's own, or for a
    public token the (token, client address) one and the (token, conversation) one."""
    own = f"token:{principal.name}"
    if not principal.public:
        return [own]
    keys = [f"{own}:{client}"]  # the address first: a refused one creates no other bucket
    for param in CONVERSATION_PARAMS:
        conversation = request.path_params.get(param)
        if isinstance(conversation, str) and 0 < len(conversation) <= MAX_CONVERSATION_KEY:
            keys.append(f"{own}:conversation:{conversation}")
    return keys


class Authenticator:
    """``app.state.authenticate``: the request's :class:`Principal`, or 401, or 429.

    Auth is on as soon as one unrevoked token exists (``insecure_no_auth`` turns it off);
    with ``open_without_tokens=False`` (a non-loopback address) it is on even with none.
    What the database says is cached for ``cache_s`` seconds per worker, so a token created
    or revoked by the CLI (or through another worker) takes effect within that delay
    without a restart, and a busy server does not query the database on every request.
    Each caller (token name, or client address when auth is off or the token is bad; see
    :func:`buckets` for a public token) spends from its own rate-limit bucket. While no
    token is needed, a request that came through a proxy is refused: the server is open to
    local clients, not to whoever the proxy lets in.
    """

    MAX_CACHED = 4096

    def __init__(self, store: TokenStore, *, insecure_no_auth: bool = False,
                 cache_s: float = 2.0, limiter: RateLimiter,
                 open_without_tokens: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.insecure, self.cache_s = store, insecure_no_auth, cache_s
        self.clock = clock  # seconds, monotonic; a test steps its own to cross the cache delay
        self.open_without_tokens = open_without_tokens
        self.limiter = limiter
        self._required: tuple[float, bool] | None = None
        self._principals: dict[bytes, tuple[float, Principal | None]] = {}

    async def required(self) -> bool:
        """Whether requests need a token now (cached for ``cache_s``)."""
        if self.insecure:
            return False
        if not self.open_without_tokens:
            return True  # revoking a public server's last token must not open it to all
        now = self.clock()
        if self._required is None or now - self._required[0] >= self.cache_s:
            count = await run_in_threadpool(self.store.active_count)
            self._required = (now, count > 0)  # read after now: never trusted longer
        return self._required[1]

    async def principal(self, token: str) -> Principal | None:
        if len(token) > 200:  # ours are 48 characters; never look up (or keep) a huge one
            return None
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = self.clock()
        cached = self._principals.get(key)
        if cached is None or now - cached[0] >= self.cache_s:
            found = await run_in_threadpool(self.store.verify, token)
            if len(self._principals) >= self.MAX_CACHED:
                self._principals.clear()
            cached = self._principals[key] = (now, found)
        return cached[1]

    async def __call__(self, request: Request) -> Principal:
        known = getattr(request.state, "principal", None)
        if known is not None:
            return known  # several scope checks on one request authenticate once
        client = f"ip:{client_address(request)}"
        if not await self.required():
            await self.limiter.acquire(client)
            if not self.insecure and is_proxied(request):
                raise _unauthorized(
                    "this server needs no token from local clients only; through a proxy, "
                    "create one with `aigc tokens create`", "missing_token")
            principal = ANONYMOUS
        else:
            token = bearer_token(request)
            if not token:
                await self.limiter.acquire(client)
                if token is None:
                    raise _unauthorized(
                        "missing API token: send 'Authorization: Bearer <token>' "
                        "(create one with `aigc tokens create`)", "missing_token")
                raise _unauthorized(
                    "malformed Authorization header: expected 'Bearer <token>'",
                    "malformed_authorization")
            found = await self.principal(token)
            if found is None:
                await self.limiter.acquire(client)
                raise _unauthorized("invalid or revoked API token", "invalid_token")
            principal = found
            for bucket in buckets(principal, request, client):
                await self.limiter.acquire(bucket)
        request.state.principal = principal
        return principal
