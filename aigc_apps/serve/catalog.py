"""Which model names the ``/v1`` routes serve, and what serves each one.

Names, in the order they win when two clash:

- the bundled aliases whose package is installed (``smollm2-135m-instruct`` for chat and
  completions, ``minilm-l6`` for embeddings);
- the configured default chat model (``ServeConfig.llm``, else ``AIGC_LLM``) and default
  encoder (``AIGC_ENCODER``). An alias is served under its alias. A local folder is served
  under its folder name (``AIGC_LLM=/srv/models/acme-chat`` is model ``acme-chat``); the
  exact string configured is accepted as well, so a client may also send the path;
- every model in the :class:`~aigc_apps.registry.ModelRegistry` by its registry name:
  LoRA adapters for a causal LM (``aigc finetune`` SFT runs, the support bot's generator)
  for chat and completions, tuned encoders (role ``encoder``) for embeddings.

An adapter's name resolves to (the engine of its base, the adapter): one engine per base
model, started on first use and shared by every request and every adapter of that base,
and by the apps in the same process (the support bot): the engines come from the process's
:func:`~aigc_apps.engines.pool.engine_pool`.
Registry names are looked up in the database on every request that names one, so an
adapter registered (or re-pointed, or deleted) by another process or worker is served
without a restart.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from aigc_apps.engines.base import UnsupportedRequest
from aigc_apps.errors import AigcError, NotFoundError
from aigc_apps.lazy import lazy
from aigc_apps.models import MODEL_ALIASES, available_models, model_kind
from aigc_apps.serve.config import ServeConfig
from aigc_apps.serve.errors import ApiError
from aigc_apps.settings import Settings, get_settings

if TYPE_CHECKING:
    from aigc_apps.embeddings import Encoder
    from aigc_apps.engines.base import BaseEngine
    from aigc_apps.engines.pool import EngineOptions, EnginePool
    from aigc_apps.registry import ModelEntry, ModelRegistry

Kind = Literal["chat", "embedding"]
EngineFactory = Callable[[str, ServeConfig], "BaseEngine"]
STARTED = int(time.time())


@dataclass(frozen=True)
class ModelCard:
    """One servable name: what it is (``chat`` or ``embedding``) and what to load for it.

    ``source`` is what the engine or encoder loads (an alias or a folder); for an adapter
    it is the base model, and ``adapter`` the adapter's folder.
    """

    id: str
    kind: Kind
    source: str
    owned_by: str = "aigc-apps"
    created: int = STARTED
    adapter: str | None = None

    def to_openai(self) -> dict[str, object]:
        return {"id": self.id, "object": "model", "created": self.created,
                "owned_by": self.owned_by}


def model_not_found(name: str, hint: str = "") -> ApiError:
    message = f"the model '{name}' does not exist or is not served here (GET /v1/models lists them)"
    return ApiError(404, message + (f": {hint}" if hint else ""), "invalid_request_error",
                    "model_not_found", param="model")


def engine_options(config: ServeConfig) -> EngineOptions:
    """The pool's engine options from the server's config."""
    from aigc_apps.engines.pool import EngineOptions

    return EngineOptions(config.engine, config.max_batch, config.batch_wait_ms)


class Catalog:
    """Model names to engines (chat) and encoders (embeddings), for one worker process.

    Blocking methods (:meth:`cards`, :meth:`card`, :meth:`encoder`) read the registry or
    load weights: call them from a thread (``run_in_threadpool``). Engines are started with
    :meth:`engine`, on the event loop.

    Engines come from ``pool`` (default: the process's, set to this config's engine
    options), so the apps of this process share them; :meth:`close` lets go of them (an
    engine closes once no app holds it). A given ``engine_factory`` gets a private pool.
    """

    def __init__(
        self,
        config: ServeConfig | None = None,
        *,
        settings: Settings | None = None,
        registry: ModelRegistry | None = None,
        engine_factory: EngineFactory | None = None,
        pool: EnginePool | None = None,
    ) -> None:
        from aigc_apps.engines.pool import EnginePool, engine_pool

        self.config = config or ServeConfig()
        self.settings = settings or get_settings()
        self._own_registry = registry is None
        if registry is not None:
            self.registry = registry
        if engine_factory is not None:
            factory = engine_factory
            self.pool = pool or EnginePool(
                engine_options(self.config), lambda base, _: factory(base, self.config)
            )
        else:
            self.pool = pool or engine_pool()
            self.pool.configure(engine_options(self.config))
        self._encoders: dict[str, Encoder] = {}
        self._lock = threading.RLock()  # also the lazy attributes' (aigc_apps.lazy)

    # -- names --------------------------------------------------------------------------

    @lazy
    def registry(self) -> ModelRegistry:
        """The registry given, else the workspace's (opened once; read without a lock)."""
        from aigc_apps.registry import ModelRegistry

        return ModelRegistry(settings=self.settings)

    @property
    def default_llm(self) -> str:
        return self.config.llm or self.settings.default_llm

    def _static_cards(self) -> dict[str, ModelCard]:
        """Aliases and configured defaults, by every name a client may send."""
        cards: dict[str, ModelCard] = {}
        for info in available_models(self.settings):
            if info.available:
                kind: Kind = "chat" if info.kind == "causal-lm" else "embedding"
                created = _mtime(info.location)
                cards[info.name] = ModelCard(info.name, kind, info.name, created=created)
        defaults: list[tuple[str, Kind]] = [
            (self.default_llm, "chat"), (self.settings.default_encoder, "embedding")
        ]
        for configured, kind in defaults:
            if configured in cards or configured in MODEL_ALIASES:
                continue
            folder = Path(configured).expanduser()
            if folder.is_dir():
                card = ModelCard(folder.name, kind, str(folder), "local", _mtime(str(folder)))
                cards.setdefault(folder.name, card)
                cards.setdefault(configured, card)
            else:  # a Hugging Face id served from the local cache
                cards.setdefault(configured, ModelCard(configured, kind, configured, "huggingface"))
        return cards

    def cards(self) -> list[ModelCard]:
        """Every servable model once (``GET /v1/models``), aliases first, then the registry."""
        static = self._static_cards()
        seen = {c.id for c in static.values()}
        listed = list({c.id: c for c in static.values()}.values())
        for entry in self.registry.list():
            card = _entry_card(entry)
            if card is not None and card.id not in seen:
                seen.add(card.id)
                listed.append(card)
        return listed

    def card(self, name: str) -> ModelCard:
        """The card for ``name``, else an OpenAI-shaped 404 ``model_not_found``."""
        card = self._static_cards().get(name)
        if card is not None:
            return card
        alias = MODEL_ALIASES.get(name)
        if alias is not None:
            raise model_not_found(name, f"its package is not installed ({alias.install})")
        try:
            entry = self.registry.get(name)
        except NotFoundError:
            raise model_not_found(name) from None
        card = _entry_card(entry)
        if card is None:
            raise model_not_found(
                name, f"it is a registered {entry.app} {entry.role} model, not a chat "
                "adapter or encoder",
            )
        return card

    # -- what serves a name -------------------------------------------------------------

    async def engine(self, card: ModelCard) -> tuple[BaseEngine, str | None]:
        """The started engine of ``card``'s base and the adapter to ask it for (None: base)."""
        if card.kind != "chat":
            raise ApiError(400, f"model '{card.id}' is an encoder: use /v1/embeddings",
                           code="model_not_supported", param="model")
        if self.pool.running(card.source) is None:  # a name that cannot load: 503, not 500
            await asyncio.to_thread(_engine_key, self.pool, card.source)
        adapter = (card.id, card.adapter) if card.adapter is not None else None
        try:
            engine = await self.pool.engine(card.source, adapter, holder=self)
        except UnsupportedRequest as exc:  # an adapter on an engine that serves none
            raise ApiError(400, f"model '{card.id}': {exc}", code="model_not_supported",
                           param="model") from None
        return engine, card.adapter and card.id

    def encoder(self, card: ModelCard) -> Encoder:
        """The loaded encoder of an embedding card (loaded once per process)."""
        if card.kind != "embedding":
            raise ApiError(400, f"model '{card.id}' generates text: use /v1/chat/completions",
                           code="model_not_supported", param="model")
        with self._lock:
            encoder = self._encoders.get(card.source)
        if encoder is None:
            from aigc_apps.embeddings import Encoder

            encoder = Encoder.from_pretrained(
                card.source, device=self.settings.device, settings=self.settings
            )
            with self._lock:
                encoder = self._encoders.setdefault(card.source, encoder)
        return encoder

    # -- lifecycle and figures ----------------------------------------------------------

    @property
    def engines(self) -> dict[str, BaseEngine]:
        """Started engines by resolved base model (for ``/metrics`` and ``/readyz``)."""
        return self.pool.held(self)

    @property
    def queue_depth(self) -> int:
        return sum(e.queue_depth for e in self.engines.values())

    def health(self) -> dict[str, str]:
        """``ready`` for each started engine (by base model); none started is fine."""
        return {Path(key).name: "ready" for key in self.engines}

    def refresh_metrics(self) -> None:
        """Set the queue-depth gauge of every started engine (before ``/metrics`` renders)."""
        from aigc_apps.serve.metrics import set_queue_depth

        for key, engine in self.engines.items():
            set_queue_depth(Path(key).name, engine.queue_depth)

    async def start(self) -> None:
        """Nothing is loaded up front: engines start on the first request naming them."""

    async def close(self) -> None:
        """Let go of the engines (each closes once no other app of the process holds it)."""
        await self.pool.release(self)
        self._encoders.clear()
        if self._own_registry and "registry" in self.__dict__:
            self.__dict__.pop("registry").close()


def _engine_key(pool: EnginePool, source: str) -> str:
    """One engine per base: an alias and the folder it resolves to share it."""
    try:
        return pool.key(source)
    except AigcError as exc:
        raise ApiError(503, f"model '{source}' cannot be loaded here: {exc}", "server_error",
                       "model_unavailable") from None


def _entry_card(entry: ModelEntry) -> ModelCard | None:
    """A registry entry as a servable card: chat adapters and encoders, nothing else."""
    created = int(entry.created_at.timestamp()) if entry.created_at else STARTED
    if entry.role == "encoder":
        return ModelCard(entry.name, "embedding", str(entry.path), entry.app, created)
    config = entry.path / "adapter_config.json"
    try:
        peft = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a merged folder, a classifier's head, a recommender model, a gone folder
    if not isinstance(peft, dict) or peft.get("task_type") != "CAUSAL_LM":
        return None
    try:
        if model_kind(entry.base) != "causal-lm":
            return None
    except AigcError:
        return None
    return ModelCard(entry.name, "chat", entry.base, entry.app, created,
                     adapter=str(entry.path.resolve()))


def _mtime(location: str | None) -> int:
    try:
        return int(Path(location).stat().st_mtime) if location else STARTED
    except OSError:
        return STARTED
