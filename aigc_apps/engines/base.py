"""One interface for every generation engine, so routes never depend on how tokens are made.

Modelled on LLaMA-Factory's ``BaseEngine``: the routes call :meth:`BaseEngine.generate` or
:meth:`BaseEngine.stream` with a :class:`GenerationRequest`; the in-house dynamic
micro-batcher (CPU default), transformers' continuous batching (GPU) or, later, vLLM sit
behind it.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aigc_apps.errors import AigcError
from aigc_apps.generation import GenerationConfig, Generator, Prompt


class EngineError(RuntimeError):
    """The engine failed on its side (a failed forward pass, a shutdown), not because of the
    request: answered as a server error, with the details in the server log only."""


class UnsupportedRequest(AigcError):
    """A request this engine cannot serve as asked (an adapter, a seed, a repetition penalty
    on the continuous engine): the caller's choice to change, answered 400."""


@dataclass
class GenerationRequest:
    """One prompt to answer: a string or chat messages, how to decode, which adapter.

    ``adapter`` is the name of a LoRA adapter loaded on the engine's base model (``None``:
    the bare base). ``chat`` says whether ``prompt`` goes through the chat template.
    """

    prompt: Prompt
    config: GenerationConfig = field(default_factory=GenerationConfig)
    adapter: str | None = None
    chat: bool = True


@dataclass
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (EOS or a stop string) or "length" (max_new_tokens)


@dataclass
class GenerationChunk:
    """A piece of a streamed reply; the last one carries ``finish_reason`` and the counts."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


async def join_stream(stream: AsyncIterator[GenerationChunk]) -> GenerationResult:
    """A whole reply from its streamed pieces."""
    pieces: list[str] = []
    last = GenerationChunk("")
    async for chunk in stream:
        pieces.append(chunk.text)
        last = chunk
    return GenerationResult(
        "".join(pieces), last.prompt_tokens, last.completion_tokens, last.finish_reason or "stop"
    )


class BaseEngine(ABC):
    """Answers generation requests for one base model and its adapters.

    Implementations must be safe to call from many concurrent requests (that is their
    point: concurrent requests share forward passes) and must free a request's batch slot
    when its consumer stops iterating :meth:`stream` (a client that disconnected).
    """

    @abstractmethod
    async def start(self) -> None:
        """Load weights and start background work; called once before the first request."""

    @abstractmethod
    async def close(self) -> None:
        """Stop background work and release the model."""

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """The whole reply: the pieces of :meth:`stream` joined."""
        return await join_stream(self.stream(request))

    @abstractmethod
    def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """The reply in pieces; the pieces join to what :meth:`generate` returns."""

    @property
    @abstractmethod
    def queue_depth(self) -> int:
        """Requests waiting or running (for ``/metrics`` and ``/readyz``)."""

    @property
    @abstractmethod
    def adapters(self) -> list[str]:
        """Names of the adapters this engine can switch to."""

    async def load_adapter(self, name: str, path: str) -> None:
        """Make the LoRA adapter in folder ``path`` available as ``name`` (replacing one of
        that name). Engines that cannot switch adapters refuse in one line."""
        raise UnsupportedRequest(
            f"this engine ({type(self).__name__}) cannot serve LoRA adapters (use the "
            "micro-batcher: engine 'batch')"
        )


async def load_generator(model: str | Generator, device: str | None) -> Generator:
    """The model an engine was given, or the one it was named by loaded in a worker thread
    (loading takes seconds; the event loop keeps serving meanwhile)."""
    if isinstance(model, Generator):
        return model
    return await asyncio.to_thread(Generator.from_pretrained, model, device=device)
