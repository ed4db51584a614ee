"""Under ``aigc serve`` the support bot and ``/v1/chat/completions`` on one base share one
engine (one copy of the weights) and its batches: both take it from the process's pool."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from aigc_apps.engines.batcher import BatchingEngine
from aigc_apps.engines.chat_model import EngineGenerator
from aigc_apps.engines.pool import engine_pool
from aigc_apps.serve import ServeConfig, create_app

MESSAGES = [{"role": "user", "content": "where is my order?"}]


def test_support_and_chat_completions_share_one_engine_and_its_batches(
    knowledge: str, tiny_llm_dir: Path, live_server: Callable[[object], str]
) -> None:
    app = create_app(ServeConfig(llm=str(tiny_llm_dir), engine="batch", batch_wait_ms=1))
    url = live_server(app)
    body = {"model": str(tiny_llm_dir), "messages": MESSAGES, "max_tokens": 4}
    assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).status_code == 200
    asked = httpx.post(f"{url}/v1/support/ask", timeout=60,
                       json={"message": "kayaks canoes freight carrier delivery window"})
    assert asked.status_code == 200, asked.text
    service = app.state.services["support"]
    generator = service.generator
    assert isinstance(generator, EngineGenerator)
    assert generator.generate(MESSAGES, max_new_tokens=3)  # the support side's engine
    [engine] = app.state.catalog.engines.values()
    assert isinstance(engine, BatchingEngine)
    assert engine_pool().running(str(tiny_llm_dir)) is engine  # the same object
    assert service.models.chat_model.pool is engine_pool()

    before = engine.prefill_sizes[2]
    with ThreadPoolExecutor(2) as pool:
        with engine.hold():  # both requests reach the engine before a batch starts
            support = pool.submit(generator.generate, MESSAGES, max_new_tokens=6)
            chat = pool.submit(httpx.post, f"{url}/v1/chat/completions", json=body, timeout=60)
            deadline = time.monotonic() + 60
            while engine.queued < 2:
                assert time.monotonic() < deadline, f"only {engine.queued} queued"
                time.sleep(0.01)
        assert support.result(timeout=60) is not None
        assert chat.result(timeout=60).status_code == 200
    assert engine.prefill_sizes[2] == before + 1  # one forward pass for both apps' rows
