"""The support bot's models in the core registry: a tuned encoder and a generator adapter.

``aigc support finetune`` registers what it trains under app ``support``, roles ``encoder``
and ``generator``, and activates it; the service asks the registry for the active one of
each role (``aigc models activate`` switches them). Release 0.1.0 kept these in the support
database's settings table; :func:`import_legacy_models` moves them over once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from aigc_apps.errors import NotFoundError
from aigc_apps.lazy import lazy
from aigc_apps.registry import ModelEntry, ModelRegistry
from aigc_apps.settings import Settings, get_settings
from aigc_apps.store import Database

from .store import APP, Setting, get_setting

if TYPE_CHECKING:
    from aigc_apps.embeddings import Encoder
    from aigc_apps.engines.chat_model import ChatModel, EngineGenerator

ENCODER_ROLE = "encoder"
GENERATOR_ROLE = "generator"
MODEL_ROLES = (ENCODER_ROLE, GENERATOR_ROLE)
# 0.1.0's settings keys: (role, key of the model's folder, key of its base model)
LEGACY_KEYS = {
    ENCODER_ROLE: ("active_encoder", "base_encoder"),
    GENERATOR_ROLE: ("generator_adapter", "generator_base"),
}


def register_model(
    registry: ModelRegistry,
    role: str,
    path: str | Path,
    *,
    base: str,
    metrics: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    activate: bool = True,
) -> ModelEntry:
    """Register the folder ``path`` as a support model of ``role``, named after the folder.

    A name already taken by another folder gets a numbered suffix instead of replacing it.
    """
    resolved = Path(path).resolve()
    stem = f"{APP}-{resolved.name}"
    name, n = stem, 1
    while (taken := _registered(registry, name)) is not None and taken.path != resolved:
        n += 1
        name = f"{stem}-{n}"
    return registry.register(
        name, resolved, app=APP, role=role, base=base, metrics=metrics, info=info,
        activate=activate,
    )


def _registered(registry: ModelRegistry, name: str) -> ModelEntry | None:
    try:
        return registry.get(name)
    except NotFoundError:
        return None


def import_legacy_models(
    db: Database, registry: ModelRegistry, settings: Settings
) -> list[ModelEntry]:
    """Register the models a 0.1.0 database names in its settings, then delete those keys.

    Idempotent: a folder already registered is not registered twice, and once the keys are
    gone nothing is read from them again. An imported model becomes active only where the
    registry has no active support model of that role yet (one registry serves every
    support database of a workspace; the first to arrive keeps its choice).
    """
    with db.session() as s:
        legacy = {
            key: get_setting(s, key)
            for keys in LEGACY_KEYS.values()
            for key in keys
            if s.get(Setting, key) is not None
        }
    if not legacy:
        return []
    imported = []
    for role, (path_key, base_key) in LEGACY_KEYS.items():
        path = legacy.get(path_key)
        if not path:
            continue
        default_llm = settings.default_llm
        default_base = default_llm if role == GENERATOR_ROLE else str(path)
        folder = Path(path).resolve()
        existing = next((e for e in registry.list(APP, role) if e.path == folder), None)
        imported.append(
            existing
            or register_model(
                registry,
                role,
                path,
                base=str(legacy.get(base_key) or default_base),
                info={"imported_from": f"support_settings.{path_key}"},
                activate=registry.active(APP, role) is None,
            )
        )
    with db.session() as s:
        for row in s.scalars(select(Setting).where(Setting.key.in_(legacy))):
            s.delete(row)
    return imported


class SupportModels:
    """The encoder and the generator of one support service, resolved and loaded on first use.

    A given ``encoder`` (a name, or a loaded :class:`~aigc_apps.embeddings.Encoder` to
    share) or ``llm`` wins; else the registry's active support model of that role; else
    the default of ``settings`` (the environment's ``AIGC_SUPPORT_ENCODER``, else
    ``AIGC_ENCODER``, else ``mpnet-base``; ``AIGC_LLM``), read when first needed.
    ``registry`` is called once a model is first resolved; ``lock`` is the owner's, so that
    loads which reach into the owner (the registry opens with its database) cannot deadlock.

    The generator loads no weights of its own: it is the process's shared engine of the
    base model (:func:`~aigc_apps.engines.pool.engine_pool`) with the registry's adapter
    loaded on it by name, so under ``aigc serve`` the bot's answers and
    ``/v1/chat/completions`` on that base share one copy of the weights and their batches.
    :meth:`close` lets go of the engine.
    """

    def __init__(
        self,
        registry: Callable[[], ModelRegistry],
        *,
        encoder: str | Encoder | None = None,
        llm: str | None = None,
        settings: Settings | None = None,
        lock: threading.RLock | None = None,
    ) -> None:
        self._registry = registry
        self._settings = settings or get_settings()
        self._encoder_choice = encoder
        self._llm_choice = llm
        self._lock = lock or threading.RLock()

    @lazy
    def encoder_entry(self) -> ModelEntry | None:
        """The active support encoder in the registry (None when one was given)."""
        if self._encoder_choice is not None:
            return None
        return self._registry().active(APP, ENCODER_ROLE)

    @property
    def encoder_name(self) -> str:
        choice = self._encoder_choice
        if choice is not None:
            return choice if isinstance(choice, str) else str(choice.name)
        entry = self.encoder_entry
        return str(entry.path) if entry else self._defaults().support_encoder_name

    @lazy
    def encoder(self) -> Encoder:
        if self._encoder_choice is not None and not isinstance(self._encoder_choice, str):
            return self._encoder_choice  # already loaded (shared, or a test double)
        from aigc_apps.embeddings import Encoder

        return Encoder.from_pretrained(self.encoder_name, settings=self._settings)

    @lazy
    def generator_entry(self) -> ModelEntry | None:
        """The active support generator adapter in the registry (None when ``llm`` was given)."""
        return None if self._llm_choice else self._registry().active(APP, GENERATOR_ROLE)

    @property
    def llm(self) -> str:
        """The generator's base model."""
        entry = self.generator_entry
        return self._llm_choice or (entry.base if entry else self._defaults().default_llm)

    @property
    def adapter(self) -> str | None:
        """The generator's LoRA adapter folder, when a tuned one is active."""
        entry = self.generator_entry
        return str(entry.path) if entry else None

    @lazy
    def chat_model(self) -> ChatModel:
        """The engines' front door for this service (the holder of the engines it uses)."""
        from aigc_apps.engines.chat_model import ChatModel

        return ChatModel(settings=self._settings)

    @lazy
    def generator(self) -> EngineGenerator:
        """``generate(messages, max_new_tokens=)`` and ``stream(...)`` on the shared engine of
        the generator's base, with the active adapter (by its registry name) when there is one."""
        from aigc_apps.engines.chat_model import EngineGenerator, Target

        entry = self.generator_entry  # an adapter brings its own base model
        adapter = (entry.name, str(entry.path.resolve())) if entry else None
        return EngineGenerator(self.chat_model, Target(self.llm, adapter))

    def close(self) -> None:
        """Let go of the generator's engine (it closes once nobody in the process holds
        it); the next answer takes it again."""
        with self._lock:
            self.__dict__.pop("generator", None)
            chat_model = self.__dict__.pop("chat_model", None)
        if chat_model is not None:
            chat_model.close()

    def _defaults(self) -> Settings:
        return self._settings

    def reload(self, *roles: str) -> None:
        """Forget the models of ``roles`` (default: both) and their overrides."""
        with self._lock:
            for role in roles or MODEL_ROLES:
                if role == ENCODER_ROLE:
                    self._encoder_choice = None
                    names: tuple[str, ...] = ("encoder_entry", "encoder")
                elif role == GENERATOR_ROLE:
                    self._llm_choice = None
                    names = ("generator_entry", "generator")
                else:
                    raise ValueError(f"unknown role {role!r} (use one of {MODEL_ROLES})")
                for name in names:
                    self.__dict__.pop(name, None)
