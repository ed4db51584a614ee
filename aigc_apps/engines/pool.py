"""One engine per base model per process: every caller of a base shares its weights and batches.

Before the pool, ``aigc serve`` held two copies of a base's weights (the OpenAI routes'
engine, and the support bot's own :class:`~aigc_apps.generation.Generator`) and support
answers never joined a batch. Now the routes' :class:`~aigc_apps.serve.catalog.Catalog`, the
support bot, :class:`~aigc_apps.engines.chat_model.ChatModel` and ``aigc generate`` all ask
:func:`engine_pool` for the engine of a base; adapters are loaded onto it by name on first use.

Thread- and loop-safety: engines are started (and adapters loaded) in the calling thread
under a ``threading.Lock`` per base, never an ``asyncio.Lock`` (bound to one event loop), so
the pool serves coroutines on any loop (:meth:`EnginePool.engine` runs the start in a worker
thread) and plain threads (:meth:`EnginePool.engine_sync`) alike. The engines themselves
answer each request on the requester's loop.

An engine closes when the last of its holders lets go (:meth:`EnginePool.release`): the
server's catalog at shutdown, a support service's ``close``. One nobody holds (a one-off
``ChatModel`` in a CLI command) lives as long as the process; its worker thread is a daemon.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aigc_apps.errors import AigcError

if TYPE_CHECKING:
    from aigc_apps.engines.base import BaseEngine

ENGINES = ("auto", "batch", "continuous")


@dataclass(frozen=True)
class EngineOptions:
    """How the pool builds an engine it starts: ``engine`` (``auto``/``batch``: the
    micro-batcher; ``continuous``: transformers' continuous batching), rows per forward pass,
    the batcher's collecting window, and the device (None: the best one available)."""

    engine: str = "auto"
    max_batch: int = 8
    batch_wait_ms: float = 5.0
    device: str | None = None


EngineFactory = Callable[[str, EngineOptions], "BaseEngine"]


def default_engine_factory(base: str, options: EngineOptions) -> BaseEngine:
    """``options.engine``: ``batch``, ``continuous``, or ``auto`` (the micro-batcher).

    ``auto`` is the micro-batcher on every device: on an H200 (bf16, SmolLM2, 48 new tokens)
    transformers' continuous batching did not beat it (8 clients 71 against 72 tok/s, 32
    clients 270 against 283), and it serves seeds, repetition penalty and adapters on the
    one copy of the weights. ``continuous`` stays selectable for larger models.
    """
    choice = "batch" if options.engine == "auto" else options.engine
    if choice == "continuous":
        from aigc_apps.engines.continuous import ContinuousEngine

        return ContinuousEngine(base, max_batch=options.max_batch,
                                batch_wait_ms=options.batch_wait_ms, device=options.device)
    if choice != "batch":
        raise AigcError(f"unknown engine '{options.engine}': use {', '.join(ENGINES)}")
    from aigc_apps.engines.batcher import BatchingEngine

    return BatchingEngine(base, max_batch=options.max_batch,
                          batch_wait_ms=options.batch_wait_ms, device=options.device)


def base_key(base: str) -> str:
    """What makes two names one base: an alias and the folder it resolves to share a key."""
    from aigc_apps.models import resolve_model

    return str(Path(resolve_model(base)).resolve())


@dataclass(eq=False)
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    engine: BaseEngine | None = None
    source: str = ""
    adapters: dict[str, str] = field(default_factory=dict)  # name -> folder loaded
    holders: set[int] = field(default_factory=set)  # id() of whoever holds the engine


class EnginePool:
    """Started engines by resolved base model; see the module doc.

    ``options`` apply to engines started from then on (``aigc serve`` sets its own with
    :meth:`configure` before anything starts); ``factory`` builds an engine for a base.
    """

    def __init__(self, options: EngineOptions | None = None,
                 factory: EngineFactory | None = None) -> None:
        self.options = options or EngineOptions()
        self._factory = factory or default_engine_factory
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._keys: dict[str, str] = {}  # name as given -> base key

    def configure(self, options: EngineOptions) -> None:
        """Build engines started from now on with ``options`` (running ones keep theirs)."""
        if options.engine not in ENGINES:
            raise AigcError(f"unknown engine '{options.engine}': use {', '.join(ENGINES)}")
        self.options = options

    # -- lookups ------------------------------------------------------------------------

    def key(self, base: str) -> str:
        """The base key of ``base`` (resolved once per name; may load nothing but a path)."""
        with self._lock:
            key = self._keys.get(base)
        if key is None:
            key = base_key(base)
            with self._lock:
                key = self._keys.setdefault(base, key)
        return key

    @property
    def engines(self) -> dict[str, BaseEngine]:
        """Started engines by base key."""
        with self._lock:
            return {k: s.engine for k, s in self._slots.items() if s.engine is not None}

    def held(self, holder: object) -> dict[str, BaseEngine]:
        """The started engines ``holder`` holds, by base key (what a server reports on)."""
        with self._lock:
            return {k: s.engine for k, s in self._slots.items()
                    if s.engine is not None and id(holder) in s.holders}

    def running(self, base: str) -> BaseEngine | None:
        """The started engine of ``base``, if any (starts nothing)."""
        with self._lock:
            slot = self._slots.get(self._keys.get(base, base))
        return slot.engine if slot else None

    # -- getting an engine --------------------------------------------------------------

    def engine_sync(
        self,
        base: str,
        adapter: tuple[str, str] | None = None,
        *,
        holder: object | None = None,
    ) -> BaseEngine:
        """The started engine of ``base`` with ``adapter`` (name, folder) loaded on it.

        Blocks while the weights load (call it from a thread with no running event loop).
        ``holder``: the engine stays up until every holder has called :meth:`release`.
        """
        key = self.key(base)
        with self._lock:
            slot = self._slots.setdefault(key, _Slot(source=base))
        with slot.lock:
            if slot.engine is None:
                engine = self._factory(slot.source, self.options)
                asyncio.run(engine.start())  # start/load work in threads; a short loop is enough
                slot.engine, slot.adapters = engine, {}
            if holder is not None:  # held even if its adapter fails to load below
                slot.holders.add(id(holder))
            if adapter is not None:
                name, folder = adapter
                folder = str(Path(folder).resolve())
                if slot.adapters.get(name) != folder:
                    asyncio.run(slot.engine.load_adapter(name, folder))
                    slot.adapters[name] = folder
            return slot.engine

    async def engine(
        self,
        base: str,
        adapter: tuple[str, str] | None = None,
        *,
        holder: object | None = None,
    ) -> BaseEngine:
        """:meth:`engine_sync` from a coroutine, on any event loop (the start runs in a
        worker thread, so the loop keeps serving meanwhile)."""
        slot = self._slots.get(self._keys.get(base, ""))
        if (
            slot is not None and slot.engine is not None
            and (adapter is None or slot.adapters.get(adapter[0]) == adapter[1])
            and (holder is None or id(holder) in slot.holders)
        ):
            return slot.engine  # the usual case: started, nothing to load
        return await asyncio.to_thread(self.engine_sync, base, adapter, holder=holder)

    # -- letting go ---------------------------------------------------------------------

    async def release(self, holder: object) -> None:
        """``holder`` no longer needs its engines: close those nobody else holds."""
        closing: list[BaseEngine] = []
        with self._lock:
            for key, slot in list(self._slots.items()):
                if id(holder) not in slot.holders:
                    continue
                slot.holders.discard(id(holder))
                if not slot.holders and slot.engine is not None:
                    closing.append(slot.engine)
                    del self._slots[key]
        for engine in closing:
            await engine.close()

    async def close(self) -> None:
        """Close every engine (held or not)."""
        with self._lock:
            slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            if slot.engine is not None:
                await slot.engine.close()


_POOL: EnginePool | None = None
_POOL_LOCK = threading.Lock()


def engine_pool() -> EnginePool:
    """This process's pool (the one every app and the server share)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = EnginePool()
        return _POOL
