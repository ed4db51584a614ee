"""Workspace settings, each overridable by an ``AIGC_*`` environment variable.

The environment is read in one place, :meth:`Settings.from_env` (which :func:`get_settings`
calls): a :class:`Settings` built by hand is exactly what it says and reads no variable
itself, so code given one (a service, a test) never mixes it with the process's environment.
Settings are read afresh every time :func:`get_settings` is called, so tests and embedding
applications can point the SDK at another workspace without restarting; the edges (the CLI,
``create_app``, a service's first use) read them once and pass them down.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aigc_apps.errors import AigcError

DEFAULT_HOME = Path(".aigc")
DEFAULT_ENCODER = "minilm-l6"
SUPPORT_ENCODER = "mpnet-base"
# Stores renamed after 0.1.0: new name -> old name (its SQLite file and env var still work).
RENAMED_STORES = {"recommend": "recommender"}
VECTOR_BACKENDS = ("faiss", "pgvector")


@dataclass(frozen=True)
class Settings:
    """Where the SDK keeps its state and which models it uses by default.

    ``home`` holds converted models, adapters, FAISS indexes and the SQLite files;
    ``store_urls`` the database of single stores by store name (``AIGC_<STORE>_DB_URL``),
    which win over the shared ``database_url``.
    """

    home: Path = DEFAULT_HOME
    device: str = "auto"
    default_llm: str = "smollm2-135m-instruct"
    default_encoder: str = DEFAULT_ENCODER
    support_encoder: str | None = None  # see support_encoder_name
    database_url: str | None = None
    models_cache: Path | None = None
    vector_backend: str = "faiss"
    store_urls: Mapping[str, str] = field(default_factory=dict, hash=False)
    # how long a user's cached recommendations are served at most (0: no cache); events and
    # withdrawn items make an entry stale at once whatever this says
    recommend_cache_ttl: float = 24 * 3600.0
    # which weights score sentiment: "auto" (int8 where its saved validation rule chose it),
    # "full" (always full precision) or "int8" (the saved int8 weights, to measure them)
    sentiment_precision: str = "auto"

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            home=Path(env.get("AIGC_HOME", str(DEFAULT_HOME))).expanduser(),
            device=env.get("AIGC_DEVICE", "auto"),
            default_llm=env.get("AIGC_LLM", "smollm2-135m-instruct"),
            default_encoder=env.get("AIGC_ENCODER", "minilm-l6"),
            support_encoder=env.get("AIGC_SUPPORT_ENCODER") or env.get("AIGC_ENCODER") or None,
            database_url=env.get("AIGC_DATABASE_URL") or None,
            models_cache=Path(env["AIGC_MODELS_DIR"]) if env.get("AIGC_MODELS_DIR") else None,
            vector_backend=(env.get("AIGC_VECTOR_BACKEND") or "faiss").strip().lower(),
            store_urls=store_urls_from_env(env),
            recommend_cache_ttl=_seconds(env, "AIGC_RECOMMEND_CACHE_TTL", 24 * 3600.0),
            sentiment_precision=_choice(env, "AIGC_SENTIMENT_PRECISION", ("auto", "full", "int8")),
        )

    @property
    def support_encoder_name(self) -> str:
        """The support bot's encoder: ``AIGC_SUPPORT_ENCODER``, else a default encoder the
        user chose (``AIGC_ENCODER``), else the base-size ``mpnet-base``. The bot matches
        customers' own words against a few examples per answer, where the larger encoder
        answers far more questions right (``benchmarks/support_faq.py``); the other apps
        keep the faster MiniLM."""
        if self.support_encoder:
            return self.support_encoder
        return self.default_encoder if self.default_encoder != DEFAULT_ENCODER else SUPPORT_ENCODER

    @property
    def models_dir(self) -> Path:
        """Converted bundled models; ``AIGC_MODELS_DIR`` shares one cache across workspaces."""
        return self.models_cache or self.home / "models"

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"

    @property
    def indexes_dir(self) -> Path:
        return self.home / "indexes"

    def db_url(self, name: str) -> str:
        """Database URL for the store called ``name`` (one per app).

        The store's own URL (``store_urls``: ``AIGC_<NAME>_DB_URL``) wins, then
        ``database_url`` (``AIGC_DATABASE_URL``: a shared server, tables namespaced per
        app), then a SQLite file ``<home>/<name>.db``. A renamed store (``recommend``, once
        ``recommender``) keeps its old file and variable. Reads no environment variable:
        :meth:`from_env` did.
        """
        specific = self.store_urls.get(name)
        old = RENAMED_STORES.get(name)
        if not specific and old and self.store_urls.get(old):
            warnings.warn(
                f"AIGC_{old.upper()}_DB_URL is deprecated; use AIGC_{name.upper()}_DB_URL",
                FutureWarning,  # shown to CLI users, unlike DeprecationWarning
                stacklevel=2,
            )
            specific = self.store_urls[old]
        if specific:
            return specific
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / f'{old or name}.db').resolve()}"

    def check_vector_backend(self, db_url: str, backend: str | None = None) -> str:
        """``backend`` (default ``AIGC_VECTOR_BACKEND``) if it can serve a database at
        ``db_url``: pgvector keeps the vectors in that database, so it must be PostgreSQL."""
        from aigc_apps.errors import AigcError

        backend = (backend or self.vector_backend).strip().lower()
        if backend not in VECTOR_BACKENDS:
            raise AigcError(
                f"AIGC_VECTOR_BACKEND={backend!r}: expected one of {', '.join(VECTOR_BACKENDS)}"
            )
        if backend == "pgvector" and not db_url.startswith(("postgresql", "postgres:")):
            scheme = db_url.split(":", 1)[0]
            raise AigcError(
                f"AIGC_VECTOR_BACKEND=pgvector needs the app's database on PostgreSQL, not "
                f"{scheme} (set AIGC_DATABASE_URL=postgresql+psycopg://..., or use faiss)"
            )
        return backend


def store_urls_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """``{"support": url, ...}`` of every non-empty ``AIGC_<STORE>_DB_URL`` in ``env``."""
    urls: dict[str, str] = {}
    for key, value in env.items():
        if key.startswith("AIGC_") and key.endswith("_DB_URL") and value:
            store = key[len("AIGC_"):-len("_DB_URL")].lower()
            if store:
                urls[store] = value
    return urls


def sample_data_dir() -> Path:
    """The project's bundled sample sets (``data/``); ``AIGC_DATA_DIR`` overrides."""
    preset = os.environ.get("AIGC_DATA_DIR")
    if preset:
        return Path(preset)
    beside_package = Path(__file__).resolve().parents[1] / "data"
    return beside_package if beside_package.is_dir() else Path.cwd() / "data"


def get_settings() -> Settings:
    """Current settings, freshly read from the environment."""
    return Settings.from_env()


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A duration in seconds from ``env[name]`` (unset: ``default``), or a one-line error."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise AigcError(f"{name} must be a number of seconds >= 0, got {raw!r}")
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """``env[name]`` (unset: the first of ``allowed``), or a one-line error."""
    value = (env.get(name) or "").strip().lower() or allowed[0]
    if value not in allowed:
        raise AigcError(f"{name}={value!r}: use one of {', '.join(allowed)}")
    return value
