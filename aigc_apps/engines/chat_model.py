"""The front door to generation: ``chat``, ``stream_chat`` and ``generate``, sync and async.

In the spirit of LLaMA-Factory's ``ChatModel`` (``src/llamafactory/chat/chat_model.py``):
the async methods run on the caller's event loop; the sync ones hand the same coroutines to
one background event-loop thread per process and wait, so sync code (the CLI, the support
bot's worker threads) and async code (the server's routes) reach the same engines.

Each call picks its base model and adapter (``model=``, ``adapter=``: a registered adapter's
name or an adapter folder; defaults: the ChatModel's own) and takes that base's engine from
the process's :func:`~aigc_apps.engines.pool.engine_pool`: one copy of the weights per base,
and requests from every app of the process share its batches.

>>> chat = ChatModel("smollm2-135m-instruct")          # nothing loaded yet
>>> chat.chat("How do I return a jacket?").text         # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Generator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aigc_apps.engines.base import GenerationChunk, GenerationRequest, GenerationResult, join_stream
from aigc_apps.errors import AigcError, NotFoundError
from aigc_apps.generation import GenerationConfig, Prompt

if TYPE_CHECKING:
    from aigc_apps.engines.base import BaseEngine
    from aigc_apps.engines.pool import EnginePool
    from aigc_apps.registry import ModelRegistry
    from aigc_apps.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """What answers a request: a base model and the adapter (name, folder) on it, if any."""

    base: str
    adapter: tuple[str, str] | None = None


class _LoopThread:
    """One event loop in a daemon thread, for the sync calls of every ChatModel."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="aigc-chat-loop",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise AigcError("a sync ChatModel call from its own event loop: await the a* method")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


_LOOP: _LoopThread | None = None
_LOOP_LOCK = threading.Lock()


def background_loop() -> _LoopThread:
    """The process's background loop (started on the first sync call)."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None:
            _LOOP = _LoopThread()
        return _LOOP


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop and wait for it (from any other thread)."""
    return background_loop().run(coro)


def iterate_sync(stream: AsyncIterator[T]) -> Generator[T, None, None]:
    """Iterate an async stream from sync code, each step on the background loop; stopping
    early closes the stream there (the engine frees the request's batch slot)."""
    loop = background_loop()
    try:
        while True:
            try:
                item = loop.run(_anext(stream))
            except StopAsyncIteration:
                return
            yield item
    finally:
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            loop.run(closer())


async def _anext(stream: AsyncIterator[T]) -> T:
    return await stream.__anext__()


class ChatModel:
    """Generation for the SDK, the apps and the CLI, over the process's shared engines.

    ``model``: the default base model (alias, folder or Hugging Face id; default:
    ``Settings.default_llm``). ``adapter``: the default LoRA adapter, a registered name or a
    folder (it brings its own base). ``config``: the default :class:`GenerationConfig`;
    keyword overrides per call (``max_new_tokens=64``) change it for that call only.
    ``pool``: where engines come from (default: the process's). :meth:`close` lets go of
    the engines this object used (each closes once nobody in the process holds it).
    """

    def __init__(
        self,
        model: str | None = None,
        adapter: str | None = None,
        *,
        config: GenerationConfig | None = None,
        pool: EnginePool | None = None,
        settings: Settings | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        from aigc_apps.settings import get_settings

        self.model, self.adapter = model, adapter
        self.config = config or GenerationConfig()
        self._pool = pool
        self._settings = settings or get_settings()
        self._registry = registry
        self._own_registry = registry is None
        self._lock = threading.Lock()

    @property
    def pool(self) -> EnginePool:
        if self._pool is None:
            from aigc_apps.engines.pool import engine_pool

            self._pool = engine_pool()
        return self._pool

    # -- choosing the base and adapter --------------------------------------------------

    def target(self, model: str | None = None, adapter: str | None = None) -> Target:
        """The base and adapter a call with these options runs on (may read the registry)."""
        model = model if model is not None else self.model
        adapter = adapter if adapter is not None else self.adapter
        if adapter is None:
            return Target(model or self._defaults().default_llm)
        if Path(adapter).expanduser().is_dir():
            from aigc_apps.generation import adapter_base

            folder = str(Path(adapter).expanduser().resolve())
            return Target(adapter_base(model, folder), (folder, folder))
        try:
            entry = self._opened_registry().get(adapter)
        except NotFoundError:
            raise AigcError(
                f"adapter '{adapter}' is neither a folder nor a registered model "
                "(see `aigc models list`)"
            ) from None
        base = model or entry.base
        if model is not None and self.pool.key(model) != self.pool.key(entry.base):
            raise AigcError(f"adapter '{adapter}' was trained on '{entry.base}', not "
                            f"'{model}': leave the model out (the adapter brings its base)")
        return Target(base, (entry.name, str(entry.path.resolve())))

    def _defaults(self) -> Settings:
        return self._settings

    def _opened_registry(self) -> ModelRegistry:
        with self._lock:
            if self._registry is None:
                from aigc_apps.registry import ModelRegistry

                self._registry = ModelRegistry(settings=self._settings)
            return self._registry

    def request(self, prompt: Prompt, *, chat: bool = True,
                config: GenerationConfig | None = None, **overrides: Any) -> GenerationRequest:
        config = config or self.config
        return GenerationRequest(prompt, config.replace(**overrides) if overrides else config,
                                 chat=chat)

    # -- async --------------------------------------------------------------------------

    async def engine(self, target: Target) -> BaseEngine:
        """The started engine of ``target``'s base, its adapter loaded."""
        return await self.pool.engine(target.base, target.adapter, holder=self)

    async def astream_target(self, target: Target,
                             request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        """The engine's chunks for ``request`` on ``target`` (the primitive under the rest)."""
        engine = await self.engine(target)
        if target.adapter is not None:
            request.adapter = target.adapter[0]
        stream = engine.stream(request)
        async with aclosing(stream):  # type: ignore[type-var]  # leaving early frees the row
            async for chunk in stream:
                yield chunk

    async def _astream(self, prompt: Prompt, chat: bool, model: str | None,
                       adapter: str | None, config: GenerationConfig | None,
                       overrides: dict[str, Any]) -> AsyncGenerator[GenerationChunk, None]:
        target = await asyncio.to_thread(self.target, model, adapter)
        request = self.request(prompt, chat=chat, config=config, **overrides)
        async with aclosing(self.astream_target(target, request)) as stream:
            async for chunk in stream:
                yield chunk

    async def achat(self, messages: Prompt, *, model: str | None = None,
                    adapter: str | None = None, config: GenerationConfig | None = None,
                    **overrides: Any) -> GenerationResult:
        """The reply to chat ``messages`` (or one user turn, as a string)."""
        return await join_stream(self._astream(messages, True, model, adapter, config,
                                               overrides))

    async def astream_chat(self, messages: Prompt, *, model: str | None = None,
                           adapter: str | None = None, config: GenerationConfig | None = None,
                           **overrides: Any) -> AsyncGenerator[str, None]:
        """The reply to chat ``messages`` in pieces (they join to :meth:`achat`'s text)."""
        stream = self._astream(messages, True, model, adapter, config, overrides)
        async with aclosing(stream):
            async for chunk in stream:
                if chunk.text:
                    yield chunk.text

    async def agenerate(self, prompt: str, *, model: str | None = None,
                        adapter: str | None = None, config: GenerationConfig | None = None,
                        **overrides: Any) -> GenerationResult:
        """The continuation of plain text ``prompt`` (no chat template, like
        ``/v1/completions``)."""
        return await join_stream(self._astream(prompt, False, model, adapter, config,
                                               overrides))

    async def aclose(self) -> None:
        """Let go of the engines this object used; close its registry if it opened one."""
        if self._pool is not None:
            await self._pool.release(self)
        with self._lock:
            registry, self._registry = self._registry, None
        if registry is not None and self._own_registry:
            registry.close()

    # -- sync (the same coroutines, on the background loop) -----------------------------

    def chat(self, messages: Prompt, **options: Any) -> GenerationResult:
        """:meth:`achat` from sync code."""
        return run_sync(self.achat(messages, **options))

    def stream_chat(self, messages: Prompt, **options: Any) -> Generator[str, None, None]:
        """:meth:`astream_chat` from sync code."""
        return iterate_sync(self.astream_chat(messages, **options))

    def generate(self, prompt: str, **options: Any) -> GenerationResult:
        """:meth:`agenerate` from sync code."""
        return run_sync(self.agenerate(prompt, **options))

    def close(self) -> None:
        """:meth:`aclose` from sync code."""
        run_sync(self.aclose())

    def __enter__(self) -> ChatModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EngineGenerator:
    """``generate(prompt, max_new_tokens=...)`` and ``stream(...)`` like
    :class:`~aigc_apps.generation.Generator`, answered by the shared engine of one base and
    adapter: code written for a Generator (the support bot's sentence gate) joins the
    process's batches without a copy of the weights of its own."""

    def __init__(self, chat_model: ChatModel, target: Target) -> None:
        self.chat_model, self.target = chat_model, target

    def _request(self, prompt: Prompt, config: GenerationConfig | None,
                 overrides: dict[str, Any]) -> GenerationRequest:
        return self.chat_model.request(prompt, config=config, **overrides)

    def generate(self, prompt: Prompt, config: GenerationConfig | None = None,
                 **overrides: Any) -> str:
        request = self._request(prompt, config, overrides)
        return run_sync(join_stream(self.chat_model.astream_target(self.target, request))).text

    def stream(self, prompt: Prompt, config: GenerationConfig | None = None,
               **overrides: Any) -> Generator[str, None, None]:
        request = self._request(prompt, config, overrides)
        return iterate_sync(_texts(self.chat_model.astream_target(self.target, request)))

    def close(self) -> None:
        """Let go of the engine (it closes once nobody else in the process holds it)."""
        self.chat_model.close()


async def _texts(chunks: AsyncGenerator[GenerationChunk, None]) -> AsyncGenerator[str, None]:
    async with aclosing(chunks):
        async for chunk in chunks:
            if chunk.text:
                yield chunk.text
