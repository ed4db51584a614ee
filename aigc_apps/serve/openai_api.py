"""The OpenAI-compatible routes: ``/v1/models``, ``/v1/chat/completions``,
``/v1/completions`` and ``/v1/embeddings``, for the official clients as they are.

Wiring (done by :func:`aigc_apps.serve.app.create_app`)::

    app.state.catalog = create_catalog(config)     # nothing loads yet
    app.include_router(router)
    ...
    await close_catalog(app)                       # lifespan shutdown: stops the engines

Routes reach the catalog through :func:`get_catalog` (it builds one from
``app.state.config`` if the app has none yet), resolve the request's ``model`` with
:meth:`Catalog.card` (404 ``model_not_found``), and ask :meth:`Catalog.engine` for the started
engine of its base plus the adapter name. Every generation, streamed or not, goes through
that engine's batcher; a client that disconnects mid-stream closes the engine's stream,
which frees its batch slot at the next decoding step.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from aigc_apps.engines.base import (
    BaseEngine,
    EngineError,
    GenerationChunk,
    GenerationRequest,
    GenerationResult,
)
from aigc_apps.errors import AigcError
from aigc_apps.generation import GenerationConfig
from aigc_apps.serve import sse
from aigc_apps.serve.auth import require_scope
from aigc_apps.serve.catalog import Catalog
from aigc_apps.serve.config import ServeConfig
from aigc_apps.serve.errors import ApiError, bad_request, error_body
from aigc_apps.serve.metrics import record_generation
from aigc_apps.serve.openai_schemas import (
    SSE,
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionChoice,
    CompletionRequest,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    Model,
    ModelList,
    Usage,
)
from aigc_apps.settings import Settings

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_scope("generate"))])
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
log = logging.getLogger("aigc.serve")


# -- the catalog ---------------------------------------------------------------------------


def create_catalog(config: ServeConfig | None = None, settings: Settings | None = None) -> Catalog:
    """A worker's catalog on ``settings``' workspace; loads nothing until a request names a
    model."""
    return Catalog(config, settings=settings)


def get_catalog(request: Request) -> Catalog:
    """``request.app.state.catalog``, created from ``app.state.config`` on first use."""
    state = request.app.state
    catalog = getattr(state, "catalog", None)
    if catalog is None:
        catalog = state.catalog = create_catalog(
            getattr(state, "config", None), getattr(state, "settings", None)
        )
    refresh = getattr(state, "metrics_refresh", None)
    if isinstance(refresh, list) and catalog.refresh_metrics not in refresh:
        refresh.append(catalog.refresh_metrics)
    return catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


async def close_catalog(app: FastAPI) -> None:
    """Stop every engine the app's catalog started (lifespan shutdown)."""
    catalog = getattr(app.state, "catalog", None)
    if catalog is not None:
        await catalog.close()


# -- models ----------------------------------------------------------------------------------


@router.get("/models", response_model=ModelList, summary="Models served here")
async def list_models(catalog: CatalogDep) -> dict[str, Any]:
    cards = await run_in_threadpool(catalog.cards)
    return {"object": "list", "data": [c.to_openai() for c in cards]}


@router.get("/models/{model_id:path}", response_model=Model, summary="One model")
async def get_model(model_id: str, catalog: CatalogDep) -> dict[str, Any]:
    card = await run_in_threadpool(catalog.card, model_id)
    return card.to_openai()


# -- generation -----------------------------------------------------------------------------


def _generation_config(
    body: ChatCompletionRequest | CompletionRequest, cap: int, default_max: int
) -> GenerationConfig:
    if body.n not in (None, 1):
        raise bad_request(f"n={body.n} is not served: one choice per prompt", "unsupported_n", "n")
    max_tokens = body.max_tokens
    if isinstance(body, ChatCompletionRequest) and max_tokens is None:
        max_tokens = body.max_completion_tokens
    max_tokens = max_tokens or min(default_max, cap)
    if max_tokens > cap:
        raise bad_request(
            f"max_tokens={max_tokens} is above this server's cap of {cap}",
            "max_tokens_too_large", "max_tokens",
        )
    try:
        return GenerationConfig(
            max_new_tokens=max_tokens,
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            top_k=body.top_k or 0,
            stop=body.stops(),
            seed=body.seed,
        )
    except AigcError as exc:
        raise bad_request(str(exc)) from None


def _unavailable(model: str, exc: AigcError) -> ApiError:
    return ApiError(503, f"model '{model}' cannot be served now: {exc}", "server_error",
                    "model_unavailable")


async def _engine(catalog: Catalog, model: str) -> tuple[BaseEngine, str | None]:
    card = await run_in_threadpool(catalog.card, model)
    try:
        return await catalog.engine(card)
    except AigcError as exc:
        raise _unavailable(model, exc) from None


@contextmanager
def _engine_errors() -> Iterator[None]:
    """The request's fault as a 400; the engine's as a 500."""
    try:
        yield
    except AigcError as exc:
        raise bad_request(str(exc)) from None
    except EngineError as exc:  # its message carries no internals (they are logged)
        raise ApiError(500, str(exc), "server_error", "engine_error") from None


async def _run(engine: BaseEngine, request: GenerationRequest) -> GenerationResult:
    with _engine_errors():
        return await engine.generate(request)


async def _open_stream(
    engine: BaseEngine, request: GenerationRequest
) -> tuple[GenerationChunk, AsyncIterator[GenerationChunk]]:
    """The stream and its first chunk: a refused request is still a plain JSON error."""
    stream = aiter(engine.stream(request))
    with _engine_errors():
        return await anext(stream), stream


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


@router.post(
    "/chat/completions", response_model=ChatCompletion, summary="Chat completion",
    responses={200: {"content": SSE, "description": "JSON, or server-sent events with stream"}},
)
async def chat_completions(
    body: ChatCompletionRequest, catalog: CatalogDep
) -> Any:
    if not body.messages:
        raise bad_request("messages must hold at least one message", "empty_messages", "messages")
    config = _generation_config(body, catalog.config.max_tokens_cap, catalog.config.max_tokens_cap)
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        for m in body.messages
    ]
    engine, adapter = await _engine(catalog, body.model)
    request = GenerationRequest(messages, config, adapter=adapter, chat=True)
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        first, stream = await _open_stream(engine, request)
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse.EventStream(_chat_events(first, stream, ident, created, body.model, usage))
    result = await _run(engine, request)
    record_generation(body.model, result.prompt_tokens, result.completion_tokens)
    return ChatCompletion(
        id=ident, created=created, model=body.model,
        choices=[ChatChoice(index=0, message=AssistantMessage(content=result.text),
                            finish_reason=result.finish_reason)],  # type: ignore[arg-type]
        usage=Usage(**_usage(result.prompt_tokens, result.completion_tokens)),
    )


async def _chat_events(
    first: GenerationChunk, stream: AsyncIterator[GenerationChunk], ident: str, created: int,
    model: str, include_usage: bool,
) -> AsyncIterator[str]:
    head = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def event(delta: dict[str, str], finish: str | None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse.data(head | {"choices": [choice]} | extra)

    yield event({"role": "assistant", "content": ""}, None)
    async with _errors_as_events() as failed:
        async for chunk in _chained(first, stream):
            if chunk.text:
                yield event({"content": chunk.text}, None)
            if chunk.finish_reason is not None:
                yield event({}, chunk.finish_reason)
                record_generation(model, chunk.prompt_tokens, chunk.completion_tokens)
                if include_usage:
                    usage = _usage(chunk.prompt_tokens, chunk.completion_tokens)
                    yield sse.data(head | {"choices": [], "usage": usage})
    if failed:
        yield failed[0]
    yield sse.DONE


@router.post(
    "/completions", response_model=Completion, summary="Text completion (one choice per prompt)",
    responses={200: {"content": SSE, "description": "JSON, or server-sent events with stream"}},
)
async def completions(body: CompletionRequest, catalog: CatalogDep) -> Any:
    prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    config = _generation_config(body, catalog.config.max_tokens_cap, COMPLETIONS_DEFAULT_MAX_TOKENS)
    engine, adapter = await _engine(catalog, body.model)
    requests = [GenerationRequest(p, config, adapter=adapter, chat=False) for p in prompts]
    ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        opened: list[tuple[GenerationChunk, AsyncIterator[GenerationChunk]]] = []
        try:
            for request in requests:
                opened.append(await _open_stream(engine, request))
        except BaseException:
            for _, stream in opened:
                await stream.aclose()  # type: ignore[attr-defined]
            raise
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse.EventStream(_completion_events(opened, ident, created, body.model, usage))
    results = await asyncio.gather(*(_run(engine, r) for r in requests))
    prompt_tokens = sum(r.prompt_tokens for r in results)
    completion_tokens = sum(r.completion_tokens for r in results)
    record_generation(body.model, prompt_tokens, completion_tokens)
    return Completion(
        id=ident, created=created, model=body.model,
        choices=[CompletionChoice(index=i, text=r.text, finish_reason=r.finish_reason)  # type: ignore[arg-type]
                 for i, r in enumerate(results)],
        usage=Usage(**_usage(prompt_tokens, completion_tokens)),
    )


async def _completion_events(
    opened: list[tuple[GenerationChunk, AsyncIterator[GenerationChunk]]], ident: str,
    created: int, model: str, include_usage: bool,
) -> AsyncIterator[str]:
    head = {"id": ident, "object": "text_completion", "created": created, "model": model}
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    totals = [0, 0]
    async with _errors_as_events() as failed:
        async for index, chunk in _merged([_chained(first, rest) for first, rest in opened]):
            if chunk.text or chunk.finish_reason is not None:
                choice = {"index": index, "text": chunk.text, "logprobs": None,
                          "finish_reason": chunk.finish_reason}
                yield sse.data(head | {"choices": [choice]} | extra)
            if chunk.finish_reason is not None:
                totals[0] += chunk.prompt_tokens
                totals[1] += chunk.completion_tokens
    record_generation(model, totals[0], totals[1])
    if failed:
        yield failed[0]
    if include_usage:
        yield sse.data(head | {"choices": [], "usage": _usage(*totals)})
    yield sse.DONE


# -- embeddings -----------------------------------------------------------------------------


@router.post("/embeddings", response_model=EmbeddingList, summary="Embeddings")
async def embeddings(body: EmbeddingRequest, catalog: CatalogDep) -> Any:
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    card = await run_in_threadpool(catalog.card, body.model)
    if card.kind != "embedding":
        raise bad_request(f"model '{body.model}' generates text: use /v1/chat/completions",
                          "model_not_supported", "model")

    def encode() -> tuple[Any, int]:
        encoder = catalog.encoder(card)
        if body.dimensions is not None and body.dimensions != encoder.dim:
            raise bad_request(f"model '{body.model}' has {encoder.dim} dimensions, not "
                              f"{body.dimensions}", "unsupported_dimensions", "dimensions")
        tokens = sum(len(ids) for ids in encoder.tokenizer(
            texts, truncation=True, max_length=encoder.max_length)["input_ids"])
        return encoder.encode(texts), tokens

    try:
        vectors, tokens = await run_in_threadpool(encode)
    except AigcError as exc:
        raise _unavailable(body.model, exc) from None
    data = [
        Embedding(index=i, embedding=base64.b64encode(v.astype("<f4").tobytes()).decode()
                  if body.encoding_format == "base64" else v.tolist())
        for i, v in enumerate(vectors)
    ]
    return EmbeddingList(data=data, model=body.model, usage=Usage(prompt_tokens=tokens,
                                                                  total_tokens=tokens))


# -- server-sent events ---------------------------------------------------------------------


@asynccontextmanager
async def _errors_as_events() -> AsyncIterator[list[str]]:
    """A failure after the stream started cannot change the status any more: it becomes an
    ``error`` event (what OpenAI sends, and what its clients raise on), then ``[DONE]``."""
    failed: list[str] = []
    try:
        yield failed
    except AigcError as exc:
        failed.append(sse.data(error_body(str(exc), "invalid_request_error", "invalid_request")))
    except Exception:
        log.exception("generation failed mid-stream")
        failed.append(sse.data(error_body("generation failed (see the server log)",
                                          "server_error", "server_error")))


async def _chained(
    first: GenerationChunk, rest: AsyncIterator[GenerationChunk]
) -> AsyncIterator[GenerationChunk]:
    try:
        yield first
        if first.finish_reason is None:
            async for chunk in rest:
                yield chunk
    finally:
        await rest.aclose()  # type: ignore[attr-defined]  # frees the batch slot


async def _merged(
    streams: list[AsyncIterator[GenerationChunk]],
) -> AsyncIterator[tuple[int, GenerationChunk]]:
    """Chunks of several streams as they come, tagged with the stream's index."""
    queue: asyncio.Queue[tuple[int, GenerationChunk | BaseException | None]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[GenerationChunk]) -> None:
        try:
            async for chunk in stream:
                await queue.put((index, chunk))
        except Exception as exc:
            await queue.put((index, exc))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        await queue.put((index, None))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        running = len(tasks)
        while running:
            index, item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def __getattr__(name: str) -> Any:
    """``EventStream`` moved to :mod:`aigc_apps.serve.sse`; the old path works (with a
    warning) for one release."""
    if name == "EventStream":
        import warnings

        warnings.warn("import EventStream from aigc_apps.serve.sse (aigc_apps.serve.openai_api "
                      "re-exports it for one release)", DeprecationWarning, stacklevel=2)
        return sse.EventStream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
