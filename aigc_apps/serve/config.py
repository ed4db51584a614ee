"""How ``aigc serve`` runs: one dataclass, filled from CLI options (or by an embedding app)."""

from __future__ import annotations

from dataclasses import dataclass

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeConfig:
    """Limits are per worker process.

    ``max_body_bytes``: larger request bodies get 413. ``max_tokens_cap``: the most new
    tokens one generation may ask for. ``rate_limit``: requests per minute per token (0 =
    off), answered 429 with ``Retry-After``. ``request_timeout_s``: a request still running
    after it gets 504. ``batch_wait_ms`` / ``max_batch``: how long the micro-batcher collects
    concurrent generation requests and how many rows one forward pass takes. ``engine``:
    ``auto`` (micro-batcher on CPU, transformers' continuous batching on CUDA), ``batch``
    or ``continuous``.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    insecure_no_auth: bool = False
    max_body_bytes: int = 1_000_000
    max_tokens_cap: int = 512
    rate_limit: int = 600
    request_timeout_s: float = 120.0
    batch_wait_ms: float = 5.0
    max_batch: int = 8
    engine: str = "auto"
    llm: str | None = None  # default chat model; None: Settings.default_llm

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK
