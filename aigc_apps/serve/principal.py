"""Who a request acts as: a token's name, its scopes and the agent it stands for.

The shared word between the two sides of auth: :mod:`aigc_apps.serve.tokens` makes a
:class:`Principal` from a stored token, :mod:`aigc_apps.serve.auth` checks its scopes on a
request. Kept apart from both so that neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass

ADMIN = "admin"
PUBLIC_ACCESS = "chat"  # <app>:chat tokens are published in web pages


@dataclass(frozen=True)
class Principal:
    """The caller of one request: a token's name, its scopes, and the agent it acts as.

    ``agent`` is the person a token stands for where an app acts in someone's name (a
    support agent taking a conversation): set by ``aigc tokens create --agent``, the
    token's name by default. It is None only without a token (auth off), where nobody's
    identity is known and the request itself names the agent, as the local CLI does.
    """

    name: str
    scopes: frozenset[str]
    agent: str | None = None

    def allows(self, scope: str) -> bool:
        if ADMIN in self.scopes or scope in self.scopes:
            return True
        app, _, _access = scope.partition(":")
        return app in self.scopes  # a bare app name grants read and write

    @property
    def public(self) -> bool:
        """Whether the token may be published (it has a ``<app>:chat`` scope)."""
        return any(s.partition(":")[2] == PUBLIC_ACCESS for s in self.scopes)


ANONYMOUS = Principal("anonymous", frozenset({ADMIN}))  # auth off: loopback, no token defined
