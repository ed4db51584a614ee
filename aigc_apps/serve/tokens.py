"""API tokens: created once by ``aigc tokens create``, kept only as a SHA-256 hash.

A token is ``aigc_`` plus 32 random bytes (URL-safe base64), so a hash lookup is enough:
there is nothing to brute-force and no need for a slow password hash. Rows live in the core
(registry) store, table ``aigc_tokens``, so every worker and every machine that shares the
database sees a new or revoked token (after the server's short cache, see
:class:`~aigc_apps.serve.auth.Authenticator`).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from aigc_apps.errors import AigcError, NotFoundError
from aigc_apps.registry import RegistryStore, TokenRow
from aigc_apps.serve.principal import ADMIN, Principal
from aigc_apps.store import as_utc, utcnow

PREFIX = "aigc_"
BUILTIN_APPS = ("support", "sentiment", "recommend")
GENERATE = "generate"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is a hint, not an audit log


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


def known_apps() -> list[str]:
    """The built-in apps plus every app with a router (``aigc.routers``; names only)."""
    names = set(BUILTIN_APPS) | {ep.name for ep in entry_points(group="aigc.routers")}
    return sorted(names)


def known_scopes() -> list[str]:
    """``admin``, ``generate``, ``<app>``, ``<app>:read``, ``<app>:write`` per app, and the
    narrower scopes apps declare in the ``aigc.scopes`` entry points (``support:chat``)."""
    scopes = [ADMIN, GENERATE]
    for app in known_apps():
        scopes += [app, f"{app}:read", f"{app}:write"]
    for ep in sorted(entry_points(group="aigc.scopes"), key=lambda e: e.name):
        try:
            scopes += [s for s in ep.load() if s not in scopes]
        except Exception:  # a broken plugin must not stop token management
            continue
    return scopes


def check_agent_name(agent: str) -> str:
    """The agent a token acts as: 1-200 printable characters (spaces allowed, trimmed)."""
    agent = (agent or "").strip()
    if not agent or len(agent) > 200 or not agent.isprintable():
        raise AigcError(f"bad agent name {agent[:60]!r}: use 1 to 200 printable characters")
    return agent


def check_scopes(scopes: list[str]) -> list[str]:
    """The scopes, deduplicated in order; an unknown one is refused in one line."""
    if not scopes:
        raise AigcError("a token needs at least one scope (e.g. --scope admin)")
    known = set(known_scopes())
    unknown = [s for s in scopes if s not in known]
    if unknown:
        raise AigcError(
            f"unknown scope {unknown[0]!r}; known scopes: {', '.join(known_scopes())}"
        )
    return list(dict.fromkeys(scopes))


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: everything but the token itself."""

    name: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    agent: str = ""  # who it acts as (the name unless ``--agent`` said otherwise)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "name": self.name,
            "scopes": list(self.scopes),
            "agent": self.agent or self.name,
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at),
            "revoked_at": iso(self.revoked_at),
            "active": self.active,
        }

    @classmethod
    def _from_row(cls, row: TokenRow) -> TokenInfo:
        return cls(
            name=row.name,
            scopes=list(json.loads(row.scopes or "[]")),
            created_at=_utc(row.created_at) or utcnow(),
            last_used_at=_utc(row.last_used_at),
            revoked_at=_utc(row.revoked_at),
            agent=row.agent or row.name,
        )


def _utc(value: datetime | None) -> datetime | None:
    """A stored time as aware UTC (:func:`aigc_apps.store.as_utc`), None kept."""
    return as_utc(value) if value is not None else None


class TokenStore(RegistryStore):
    """Create, list, revoke and verify API tokens; the database opens on first use."""

    def create(self, name: str, scopes: list[str],
               agent: str | None = None) -> tuple[TokenInfo, str]:
        """A new token ``name`` with ``scopes``: its info and the plaintext (shown once).

        ``agent`` is who the token acts as where an app acts in a person's name (support
        agents): default the token's name. It is stored, so a request cannot choose it.
        """
        if not NAME_RE.match(name or ""):
            raise AigcError(
                f"bad token name {name!r}: use 1-100 letters, digits, '.', '_', '@' or '-'"
            )
        scopes = check_scopes(scopes)
        agent = check_agent_name(name if agent is None else agent)
        plaintext = PREFIX + secrets.token_urlsafe(32)
        row = TokenRow(
            name=name,
            token_hash=hash_token(plaintext),
            scopes=json.dumps(scopes),
            agent=agent,
            created_at=utcnow(),
        )
        try:
            with self.db.session() as s:
                if s.scalars(select(TokenRow).where(TokenRow.name == name)).first():
                    raise AigcError(f"a token named {name!r} exists (see `aigc tokens list`)")
                s.add(row)
                s.flush()  # a concurrent creator of the same name fails here
                info = TokenInfo._from_row(row)
        except IntegrityError:
            raise AigcError(f"a token named {name!r} exists (see `aigc tokens list`)") from None
        return info, plaintext

    def list(self) -> list[TokenInfo]:
        """Every token, revoked ones included, oldest first."""
        with self.db.session() as s:
            rows = s.scalars(select(TokenRow).order_by(TokenRow.created_at, TokenRow.id))
            return [TokenInfo._from_row(r) for r in rows]

    def revoke(self, name: str) -> TokenInfo:
        """Revoke ``name`` (idempotent: a revoked token keeps its first revocation time)."""
        with self.db.session() as s:
            row = s.scalars(select(TokenRow).where(TokenRow.name == name)).first()
            if row is None:
                raise NotFoundError(f"no token named {name!r} (see `aigc tokens list`)")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            s.flush()
            return TokenInfo._from_row(row)

    def active_count(self) -> int:
        """How many unrevoked tokens exist (auth is on when there is at least one)."""
        query = select(func.count()).select_from(TokenRow).where(TokenRow.revoked_at.is_(None))
        with self.db.session() as s:
            return int(s.scalar(query) or 0)

    def verify(self, plaintext: str) -> Principal | None:
        """The principal of an unrevoked token, None for anything else."""
        if not plaintext.startswith(PREFIX) or len(plaintext) > 200:
            return None
        digest = hash_token(plaintext)
        with self.db.session() as s:
            row = s.scalars(select(TokenRow).where(TokenRow.token_hash == digest)).first()
            if row is None or row.revoked_at is not None:
                return None
            now = utcnow()
            last = _utc(row.last_used_at)
            if last is None or now - last > LAST_USED_EVERY:
                row.last_used_at = now
            return Principal(row.name, frozenset(json.loads(row.scopes or "[]")),
                             agent=row.agent or row.name)
