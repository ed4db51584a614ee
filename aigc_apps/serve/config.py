"""How ``aigc serve`` runs: one dataclass, filled from CLI options (or by an embedding app).

With ``--workers N`` uvicorn starts each worker from an import string, so the config travels
to them as JSON in the ``AIGC_SERVE_CONFIG`` environment variable
(:func:`aigc_apps.serve.app.create_app_from_env`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from aigc_apps.engines.pool import ENGINES
from aigc_apps.errors import AigcError
from aigc_apps.serve.clients import TrustedProxies, is_loopback

CONFIG_ENV = "AIGC_SERVE_CONFIG"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass
class ServeConfig:
    """Limits are per worker process (the rate limit too, unless ``rate_limit_redis``).

    ``max_body_bytes``: larger request bodies get 413. ``max_tokens_cap``: the most new
    tokens one generation may ask for. ``rate_limit``: requests per minute per token (0 =
    off), answered 429 with ``Retry-After``; ``rate_limit_redis``: a Redis URL where every
    worker (and machine) spends from one bucket per caller. ``request_timeout_s``: a request
    that has not started its response after that gets 504 (0 = off; a stream that has started
    runs on).
    ``batch_wait_ms`` / ``max_batch``: how long the micro-batcher collects concurrent
    generation requests and how many rows one forward pass takes. ``engine``: ``auto`` or
    ``batch`` (the micro-batcher, on every device) or ``continuous`` (transformers'
    continuous batching). ``auth_cache_s``: how long a worker trusts what it read about tokens,
    i.e. the most time a revoked token keeps working (and a new one waits).
    ``forwarded_allow_ips``: the reverse proxies (addresses, networks, or ``*``) whose
    ``X-Forwarded-For`` names the client; None: the header is never believed.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    insecure_no_auth: bool = False
    max_body_bytes: int = 1_000_000
    max_tokens_cap: int = 512
    rate_limit: int = 600
    rate_limit_redis: str | None = None
    request_timeout_s: float = 120.0
    batch_wait_ms: float = 5.0
    max_batch: int = 8
    engine: str = "auto"
    llm: str | None = None  # default chat model; None: Settings.default_llm
    auth_cache_s: float = 2.0
    forwarded_allow_ips: str | None = None

    @property
    def loopback(self) -> bool:
        """Whether ``host`` is reachable from this machine only."""
        return is_loopback(self.host)

    def check(self) -> ServeConfig:
        """Refuse values that cannot work, in one line each."""
        if self.engine not in ENGINES:
            raise AigcError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        for name in ("workers", "max_tokens_cap", "max_batch"):
            if getattr(self, name) < 1:
                raise AigcError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("max_body_bytes", "rate_limit", "request_timeout_s", "batch_wait_ms",
                     "auth_cache_s"):
            if getattr(self, name) < 0:
                raise AigcError(f"{name} must not be negative, not {getattr(self, name)}")
        if self.rate_limit_redis and not self.rate_limit_redis.startswith(REDIS_SCHEMES):
            raise AigcError(f"rate_limit_redis must be a Redis URL ({', '.join(REDIS_SCHEMES)}"
                            f"...), not {self.rate_limit_redis!r}")
        if self.forwarded_allow_ips is not None:
            TrustedProxies(self.forwarded_allow_ips)  # a bad entry is refused at start
        if not 0 <= self.port <= 65535:
            raise AigcError(f"port must be 0-65535, not {self.port}")
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        """The config written by :meth:`to_json`; unknown keys are ignored."""
        data: dict[str, Any] = json.loads(text or "{}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known}).check()
