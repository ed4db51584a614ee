"""transformers' own continuous batching (``init_continuous_batching``) behind the engine API.

Its manager keeps a paged key/value cache and schedules prefill and decoding of many
requests in one background loop (``engine="continuous"``). It is not the default: on CPU
the in-house :class:`~aigc_apps.engines.batcher.BatchingEngine` is faster (the issue measured
1.4x over single calls for this, 4.5x for padded batches), and on an H200 with SmolLM2 it
only matched the batcher (see :func:`~aigc_apps.engines.pool.default_engine_factory`).

What it serves itself: requests on the bare base model, streamed token by token, greedy or
sampled with per-request temperature, top-k and top-p (one manager samples everything;
greedy is top-k 1, so it gives ``generate``'s argmax). Stop strings are applied here on the
streamed tokens; a row that hits one, or whose consumer goes away, is cancelled in the
manager. What it cannot do: a per-request seed (its random generator is global), a
repetition penalty per request, and LoRA adapters (its forward pass has no per-row adapter
switch). Those requests are refused in one line (:class:`UnsupportedRequest`, HTTP 400).

It used to send them to a fallback micro-batcher holding a second, deep-copied set of the
base weights. Sharing the one set is not safe: PEFT injects LoRA layers into the very
modules the manager runs, and the manager switches the model to its paged attention, which
the batcher's cache cannot use. One copy of a base's weights per process is the rule
(:mod:`aigc_apps.engines.pool`), so the fallback went: run the micro-batcher (``auto``,
``batch``) where seeds and adapters are needed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aigc_apps.engines.base import (
    BaseEngine,
    EngineError,
    GenerationChunk,
    GenerationRequest,
    UnsupportedRequest,
    load_generator,
)
from aigc_apps.engines.batcher import make_row
from aigc_apps.errors import AigcError

if TYPE_CHECKING:
    from aigc_apps.generation import Generator

log = logging.getLogger("aigc.engines")


class ContinuousEngine(BaseEngine):
    """Continuous batching for one base model; refuses adapters, seeds and repetition
    penalties (see the module doc)."""

    def __init__(
        self,
        model: str | Generator,
        *,
        max_batch: int = 8,
        batch_wait_ms: float = 5.0,
        device: str | None = None,
        memory_fraction: float = 0.5,
    ) -> None:
        self.model = model  # a name, loaded by start(), or a loaded Generator
        self.generator: Generator | None = None
        self.max_batch, self.batch_wait_ms, self.device = max_batch, batch_wait_ms, device
        self.memory_fraction = memory_fraction  # of free GPU memory for the paged cache
        self.refused_requests = 0
        self._manager: Any = None
        self._depth = 0

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._manager is not None:
            return
        if self.generator is None:
            self.generator = await load_generator(self.model, self.device)
        self._manager = await asyncio.to_thread(self._start_manager)

    def _start_manager(self) -> Any:
        from transformers import GenerationConfig as HFGenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        assert self.generator is not None
        tokenizer = self.generator.tokenizer
        # placeholder values: they make transformers build the per-request warpers, and
        # every request sends its own temperature, top_k and top_p
        config = HFGenerationConfig(
            do_sample=True, temperature=0.7, top_k=50, top_p=0.9,
            eos_token_id=sorted(self.generator.eos_token_ids),
            pad_token_id=tokenizer.pad_token_id,
        )
        sizes: dict[str, Any] = {}
        if self.generator.device.type != "cuda":
            # transformers sizes the paged cache from free memory, which on CPU is the
            # machine's RAM: size it for max_batch full contexts instead
            context = min(getattr(self.generator.model.config, "max_position_embeddings", 0)
                          or 2048, 4096)
            sizes = {"num_blocks": self.max_batch * -(-context // 256), "max_batch_tokens": 1024}
        cb_config = ContinuousBatchingConfig(
            per_request_processors=True,
            max_requests_per_batch=self.max_batch,
            max_memory_percent=self.memory_fraction,
            **sizes,
        )
        manager = self.generator.model.init_continuous_batching(
            generation_config=config, continuous_batching_config=cb_config
        )
        manager.start()
        return manager

    async def close(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            await asyncio.to_thread(manager.stop, block=True, timeout=30)

    # -- requests -----------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return self._depth

    @property
    def adapters(self) -> list[str]:
        return []

    @staticmethod
    def unsupported(request: GenerationRequest) -> str | None:
        """What of ``request`` continuous batching cannot do, or None."""
        config = request.config
        if request.adapter is not None:
            return f"adapter '{request.adapter}'"
        if config.seed is not None and config.temperature > 0:
            return "a seed"
        if config.repetition_penalty != 1:
            return "a repetition penalty"
        return None

    async def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        if self._manager is None or self.generator is None:
            raise AigcError("the engine is not started")
        refused = self.unsupported(request)
        if refused is not None:
            self.refused_requests += 1
            raise UnsupportedRequest(
                f"the continuous engine cannot serve {refused} (one copy of the weights, no "
                "per-request adapter or seed): run with --engine batch"
            )
        from aigc_apps.engines.decoder import MIN_TEMPERATURE, advance

        generator, manager = self.generator, self._manager
        eos = generator.eos_token_ids  # a property: read once, not per token
        row = await asyncio.to_thread(make_row, generator, request)
        config = row.config
        rid = f"aigc-{uuid.uuid4().hex}"
        outputs: asyncio.Queue[Any] = asyncio.Queue()
        manager.register_result_handler(rid, outputs.put_nowait)
        greedy = config.temperature < MIN_TEMPERATURE  # as the batcher does
        vocab = len(generator.tokenizer)
        sampling = {
            "temperature": 1.0 if greedy else float(config.temperature),
            "top_k": 1 if greedy else min(int(config.top_k or vocab), vocab),
            "top_p": 1.0 if greedy else float(config.top_p),
        }
        added = manager.add_request(
            row.prompt_ids, request_id=rid, max_new_tokens=config.max_new_tokens,
            streaming=True, eos_token_id=sorted(eos), **sampling,
        )
        if added is None:
            _forget(manager, rid)
            raise AigcError("continuous batching refused the request (shutting down?)")
        self._depth += 1
        done_there = False  # whether the manager finished the request itself
        try:
            while row.finish_reason is None:
                output = await outputs.get()
                if output.error:
                    log.error("continuous batching failed request %s: %s", rid, output.error)
                    raise EngineError("generation failed")
                done_there = output.is_finished()
                text = ""
                for token in output.generated_tokens[len(row.generated):]:
                    text += advance(row, int(token), generator.tokenizer, eos)
                    if row.finish_reason is not None:
                        break
                if row.finish_reason is None and done_there:
                    row.finish_reason, row.text = "length", row.emitted  # its own limit
                if text or row.finish_reason is not None:
                    yield GenerationChunk(
                        text, row.finish_reason, row.prompt_tokens, row.completion_tokens
                    )
        finally:
            self._depth -= 1
            if not done_there:
                manager.cancel_request(rid)  # a stop string, or the consumer went away
            _forget(manager, rid)


def _forget(manager: Any, rid: str) -> None:
    """Drop the result handler of a request we stopped listening to (transformers only
    drops it by itself when the request finishes in the manager), and the outputs that
    reached the shared queue because their handler was gone: every request here has a
    handler, so anything in that queue is a cancelled request's last step."""
    router = getattr(manager, "output_router", None)
    if router is None:
        return
    with router._lock:
        router.result_handlers.pop(rid, None)
    while True:
        try:
            router.output_queue.get_nowait()
        except queue.Empty:
            return
