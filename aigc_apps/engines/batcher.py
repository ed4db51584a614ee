"""The in-house dynamic micro-batcher: concurrent requests share every forward pass.

One background thread owns the model and a :class:`~aigc_apps.engines.decoder.BatchDecoder`.
When it is idle, the first request starts a window of ``batch_wait_ms`` in which more
requests are collected (up to ``max_batch``); they are prefilled together and decoded
token by token, one forward pass per step for every row. Requests arriving while a batch
runs join it at the next step (prefilled together, their cache left-padded to the running
one's), so nobody waits for the longest reply of the batch; on models whose cache cannot
be merged that way (sliding-window layers) they wait until the batch drains. Finished rows
leave at once. Each row streams its text to its own asyncio queue
(``loop.call_soon_threadsafe``); a consumer that stops iterating :meth:`stream` (a client
that disconnected) marks its row, and the worker drops it from the batch at the next step.

LoRA adapters are loaded onto the one base model by name (PEFT ``load_adapter``) and rows
of different adapters share a batch through PEFT's mixed-batch ``adapter_names``; rows
without an adapter run the bare base.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aigc_apps.engines.base import (
    BaseEngine,
    EngineError,
    GenerationChunk,
    GenerationRequest,
    load_generator,
)
from aigc_apps.errors import AdapterError, AigcError

if TYPE_CHECKING:
    from aigc_apps.engines.decoder import BatchDecoder, Row, Update
    from aigc_apps.generation import Generator

log = logging.getLogger("aigc.engines")
_STOP = object()


@dataclass(eq=False)
class _Reply:
    """Where a row's chunks go: an asyncio queue on the requester's event loop."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[GenerationChunk | BaseException] = field(default_factory=asyncio.Queue)
    cancelled: bool = False  # set by the consumer; read by the worker between steps

    def put(self, item: GenerationChunk | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the requester's loop is gone
            self.cancelled = True


def make_row(generator: Generator, request: GenerationRequest, adapter: str | None = None) -> Row:
    """Tokenize and check one request (call it in a worker thread: long prompts take a
    while). ``adapter`` is the name the model knows the request's adapter by."""
    from aigc_apps.engines.decoder import Row

    config = request.config
    if not request.chat:
        config = config.replace(use_chat_template=False)
    try:
        ids = generator.prompt_ids(request.prompt, config)
    except AigcError:
        raise
    except Exception as exc:  # a chat template refusing the messages (jinja2 errors)
        raise AigcError(f"the chat template refused these messages: {exc}") from None
    if not ids:
        raise AigcError("the prompt is empty")
    limit = getattr(generator.model.config, "max_position_embeddings", None)
    if limit and len(ids) + config.max_new_tokens > limit:
        raise AigcError(
            f"the prompt has {len(ids)} tokens; with max_tokens={config.max_new_tokens} "
            f"that is more than this model's context of {limit} tokens"
        )
    return Row(ids, config, adapter)


class BatchingEngine(BaseEngine):
    """Batched generation for one base model (a :class:`Generator`, or a name to load)."""

    def __init__(
        self,
        model: str | Generator,
        *,
        max_batch: int = 8,
        batch_wait_ms: float = 5.0,
        device: str | None = None,
    ) -> None:
        if max_batch < 1:
            raise AigcError(f"max_batch must be at least 1, got {max_batch}")
        self.model = model  # a name, loaded by start(), or a loaded Generator
        self.generator: Generator | None = None
        self.max_batch, self.wait_s = max_batch, max(0.0, batch_wait_ms) / 1000
        self.device = device
        self.batch_sizes: Counter[int] = Counter()  # rows per decoding step -> steps
        self.prefill_sizes: Counter[int] = Counter()  # rows per prefill pass -> passes
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()  # the model: held by the worker for each pass
        self._count_lock = threading.Lock()
        self._depth = 0
        self._adapters: dict[str, str] = {}  # public name -> PEFT adapter name
        self._paths: dict[str, str] = {}
        self._loads = 0  # adapters loaded so far: numbers PEFT's names for them
        self._thread: threading.Thread | None = None
        self._decoder: BatchDecoder | None = None
        self._gate = threading.Event()  # cleared by hold(): no new batch starts
        self._gate.set()
        self._holding = 0  # the first request, held by the worker while the gate is shut

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._thread is not None:
            return
        if self.generator is None:
            self.generator = await load_generator(self.model, self.device)
        from aigc_apps.engines.decoder import BatchDecoder

        self._decoder = BatchDecoder(self.generator)
        self._thread = threading.Thread(target=self._work, name="aigc-batcher", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._gate.set()  # a held engine must still hear _STOP
        self._inbox.put(_STOP)
        await asyncio.to_thread(thread.join)

    # -- requests -----------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return self._depth

    @property
    def queued(self) -> int:
        """Requests handed to the worker and not yet in a batch (the one an idle worker
        holds while :meth:`hold` keeps its window shut included)."""
        return self._inbox.qsize() + self._holding

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep an idle engine from starting a batch until the block ends; the requests
        sent meanwhile then start as one batch (up to ``max_batch``). Deterministic where
        the ``batch_wait_ms`` window is a race: tests, and a caller that sends a known
        burst at once."""
        self._gate.clear()
        try:
            yield
        finally:
            self._gate.set()

    @property
    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        if self._thread is None:
            raise AigcError("the engine is not started")
        row = await asyncio.to_thread(self._row, request)
        reply = _Reply(asyncio.get_running_loop())
        row.tag = reply
        with self._count_lock:
            self._depth += 1
        self._inbox.put(row)
        try:
            while True:
                item = await reply.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            reply.cancelled = True  # no-op once finished; else the worker drops the row

    def _row(self, request: GenerationRequest) -> Row:
        assert self.generator is not None
        adapter = None
        if request.adapter is not None:
            adapter = self._adapters.get(request.adapter)
            if adapter is None:
                raise AdapterError(f"adapter '{request.adapter}' is not loaded on this engine")
        return make_row(self.generator, request, adapter)

    async def load_adapter(self, name: str, path: str) -> None:
        await asyncio.to_thread(self._load_adapter, name, path)

    def _load_adapter(self, name: str, path: str) -> None:
        """Load (or re-load, after its folder changed) a LoRA adapter onto the base."""
        from aigc_apps.models import check_adapter_dir

        assert self.generator is not None
        if self._paths.get(name) == path:
            return
        folder = str(check_adapter_dir(path))
        # PEFT's own name for it: a public name may be a folder or hold "." (which PEFT
        # refuses in module names), and a re-load must not replace rows' running adapter
        with self._lock:  # between two decoding steps
            self._loads += 1
            internal = f"adapter_{self._loads}"
            model = self.generator.model
            try:
                if hasattr(model, "peft_config"):
                    model.load_adapter(folder, adapter_name=internal, is_trainable=False)
                else:
                    from peft import PeftModel

                    model = PeftModel.from_pretrained(
                        model, folder, adapter_name=internal, is_trainable=False
                    )
                    self.generator.model = model.eval()
            except Exception as exc:
                raise AdapterError(
                    f"cannot load adapter '{name}' from {folder} (made for another base "
                    f"model?): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                ) from None
        # rows already queued keep the adapter they were given; the old one stays loaded
        self._adapters[name], self._paths[name] = internal, path

    # -- the worker thread --------------------------------------------------------------

    def _work(self) -> None:
        assert self._decoder is not None
        decoder, closing = self._decoder, False
        waiting: list[Row] = []
        while not closing or waiting or decoder.rows:
            if not closing and not decoder.rows and not waiting:
                closing = self._collect(waiting, block=True)
            if not closing:
                closing = self._collect(waiting, block=False)
            if closing:
                self._fail([*waiting, *decoder.rows], EngineError("the engine is shutting down"))
                decoder.reset()
                waiting = []
                break
            gone = [r for r in [*waiting, *decoder.rows] if r.tag.cancelled]
            if gone:
                waiting = [r for r in waiting if not r.tag.cancelled]
                decoder.drop(gone)
                self._retire(len(gone))
            joining: list[Row] = []
            if waiting and decoder.can_join:
                room = self.max_batch - len(decoder.rows)
                joining, waiting = waiting[:room], waiting[room:]
            try:
                with self._lock:
                    if joining:
                        self.prefill_sizes[len(joining)] += 1
                        self._deliver(decoder.add(joining))
                    if decoder.rows:
                        self.batch_sizes[len(decoder.rows)] += 1
                        self._deliver(decoder.step())
            except Exception as exc:  # a failed pass fails its rows, not the server
                log.exception("generation step failed")
                rows = {id(r): r for r in [*decoder.rows, *joining] if r.finish_reason is None}
                self._fail(list(rows.values()), exc)
                decoder.reset()

    def _collect(self, waiting: list[Row], *, block: bool) -> bool:
        """Move queued requests to ``waiting``; True when the engine is closing.

        Blocking (idle engine): wait for a first request, then ``batch_wait_ms`` for more.
        """
        deadline = None
        while len(waiting) < self.max_batch or not block:
            try:
                if not block:
                    item = self._inbox.get_nowait()
                elif deadline is None:
                    item = self._inbox.get()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    item = self._inbox.get(timeout=left)
            except queue.Empty:
                break
            if item is _STOP:
                return True
            waiting.append(item)
            if block and deadline is None:
                if not self._gate.is_set():  # hold(): wait for the burst, then take it all
                    self._holding = 1
                    self._gate.wait()
                    self._holding = 0
                deadline = time.monotonic() + self.wait_s
        return False

    def _deliver(self, updates: list[Update]) -> None:
        """Hand out each row's new text; a finished row leaves the queue depth first, so a
        client that has its whole reply never sees itself still counted."""
        self._retire(sum(u.row.finish_reason is not None for u in updates))
        for update in updates:
            row = update.row
            if update.text or row.finish_reason is not None:
                row.tag.put(GenerationChunk(
                    update.text, row.finish_reason, row.prompt_tokens, row.completion_tokens
                ))

    def _fail(self, rows: list[Row], exc: BaseException) -> None:
        """Each row gets its own exception: the request's fault (AigcError) stays as it is;
        anything else becomes an EngineError without the details (they are logged)."""
        self._retire(len(rows))
        for row in rows:
            if isinstance(exc, AigcError | EngineError):
                row.tag.put(type(exc)(*exc.args))
            else:
                row.tag.put(EngineError("generation failed"))

    def _retire(self, n: int) -> None:
        if n:
            with self._count_lock:
                self._depth -= n
