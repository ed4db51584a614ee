"""``serve_load.py``'s support parts: generated answers at once vs one by one, and memory.

* **support generated**: questions answered from documents (``data/support/
  grounding_questions.jsonl``; those the bot answers on the generated path), each asked in
  its own new session: 8 customers at once against the same 8 one by one; aggregate
  answers/s (target >= 3x, like chat completions) and per-answer latency p50 / p95. The
  support bot generates through the process's shared engine, so concurrent customers'
  answers share its forward passes (before: 0.90-1.02x, each on its own in parallel threads).
* **memory**: the server's resident memory (the process and its children) after a support
  answer and a chat completion on the same base against after only one of them: the support
  bot and ``/v1/chat/completions`` share one copy of the weights, so the difference must be
  far below one copy (the issue measured +629 MB when the bot had its own).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx

DATA = Path(__file__).resolve().parents[1] / "data"
CUSTOMERS = 8
TEMPLATE = "Where is my parcel right now?"  # a stored answer: the encoder, no generation


def grounding_questions() -> list[str]:
    lines = (DATA / "support" / "grounding_questions.jsonl").read_text(encoding="utf-8")
    return [json.loads(line)["question"] for line in lines.splitlines() if line.strip()]


async def ask_in_new_session(http: httpx.AsyncClient, question: str) -> dict[str, Any]:
    """One customer: a new session, one question; the answer's path and its latency."""
    created = await http.post("/v1/support/sessions")
    created.raise_for_status()
    sid = created.json()["session_id"]
    started = time.perf_counter()
    reply = await http.post(f"/v1/support/sessions/{sid}/messages", json={"message": question})
    reply.raise_for_status()
    return {"path": reply.json()["path"], "latency": time.perf_counter() - started}


async def generated_questions(url: str, n: int) -> list[str]:
    """The first ``n`` grounding questions the bot answers on the generated path (asked one
    by one: this also loads the encoder, the index and the engine)."""
    found: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        for question in grounding_questions():
            if (await ask_in_new_session(http, question))["path"] == "generated":
                found.append(question)
                if len(found) == n:
                    break
    return found


async def customers(url: str, questions: list[str], at_once: bool) -> tuple[list[Any], float]:
    """Each question from its own customer (own session, own connection): all at once, or
    one after another; returns the answers and the wall time."""
    async def one(question: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            return await ask_in_new_session(http, question)

    started = time.perf_counter()
    if at_once:
        results = list(await asyncio.gather(*(one(q) for q in questions)))
    else:
        results = [await one(q) for q in questions]
    return results, time.perf_counter() - started


async def support_generated(url: str, rounds: int,
                            summary: Callable[[list[float]], dict[str, float]]) -> dict[str, Any]:
    questions = await generated_questions(url, CUSTOMERS)
    if not questions:
        return {"questions": 0}
    questions = [questions[i % len(questions)] for i in range(CUSTOMERS)]
    figures: dict[str, Any] = {"questions": len(set(questions))}
    for name, at_once in (("one_by_one", False), ("at_once", True)):
        runs, wall = [], 0.0
        for _ in range(rounds):
            results, took = await customers(url, questions, at_once)
            runs.extend(results)
            wall += took
        figures[name] = {
            "answers_per_s": len(runs) / wall,
            "generated": sum(r["path"] == "generated" for r in runs),
            "answers": len(runs),
            "answer": summary([r["latency"] for r in runs]),
        }
    figures["ratio_8_vs_1"] = (
        figures["at_once"]["answers_per_s"] / figures["one_by_one"]["answers_per_s"]
    )
    return figures


# -- memory ---------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, in MB (Linux ``/proc``)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines()
                          if line.startswith("VmRSS:"))
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except (OSError, StopIteration):
            continue
    return total / 1024


def weights_mb(model: str = "smollm2-135m-instruct") -> float:
    """Size of one copy of ``model``'s weights as the server holds them (parameters and
    buffers at their loaded dtype)."""
    from aigc_apps.models import load_causal_lm

    lm, _ = load_causal_lm(model, device="cpu")
    size = sum(t.numel() * t.element_size() for t in [*lm.parameters(), *lm.buffers()])
    return size / 2**20


async def chat_once(http: httpx.AsyncClient) -> None:
    body = {"model": "smollm2-135m-instruct", "max_tokens": 16, "temperature": 0,
            "messages": [{"role": "user", "content": "How do I return a jacket?"}]}
    (await http.post("/v1/chat/completions", json=body)).raise_for_status()


async def settle(pid: int) -> float:
    await asyncio.sleep(2)  # let the engine's worker and the allocator settle
    return rss_mb(pid)


async def memory_support_first(url: str, pid: int) -> dict[str, Any]:
    """A fresh server: support answers up to the first generated one, then a chat
    completion."""
    [question] = await generated_questions(url, 1) or [""]
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        support = await settle(pid)
        await chat_once(http)
        both = await settle(pid)
    return {"question": question, "after_support_mb": support, "after_both_mb": both,
            "added_mb": both - support}


async def memory_chat_first(url: str, pid: int, question: str) -> dict[str, Any]:
    """A fresh server: a chat completion, a template support answer (loads the bot's
    encoder and index, no generation), then a generated support answer."""
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        await chat_once(http)
        chat = await settle(pid)
        template = (await ask_in_new_session(http, TEMPLATE))["path"]
        templated = await settle(pid)
        generated = (await ask_in_new_session(http, question))["path"]
        both = await settle(pid)
    return {"after_chat_mb": chat, "after_template_mb": templated, "after_both_mb": both,
            "added_mb": both - templated, "paths": [template, generated]}


def memory(start_server: Callable[[], AbstractContextManager[Any]]) -> dict[str, Any]:
    """Both orders, each on a fresh server (``start_server()`` yields one with ``url`` and
    ``proc``), beside the size of one copy of the weights."""
    with start_server() as server:
        first = asyncio.run(memory_support_first(server.url, server.proc.pid))
    with start_server() as server:
        second = asyncio.run(memory_chat_first(server.url, server.proc.pid, first["question"]))
    return {"support_then_chat": first, "chat_then_support": second,
            "one_copy_of_weights_mb": weights_mb()}


# -- report ---------------------------------------------------------------------------------


def report(out: dict[str, Any], verdict: Callable[[bool], str]) -> None:
    gen = out.get("support_generated")
    if gen and gen.get("questions"):
        one, many = gen["one_by_one"], gen["at_once"]
        print(f"support generated answers ({gen['questions']} document questions, each in its "
              f"own session): 8 customers at once {many['answers_per_s']:.2f} answers/s vs one "
              f"by one {one['answers_per_s']:.2f}: x{gen['ratio_8_vs_1']:.2f} (target >= 3x: "
              f"{verdict(gen['ratio_8_vs_1'] >= 3)})")
        for name, fig in (("one by one", one), ("8 at once", many)):
            print(f"  {name}: answer p50 {fig['answer']['p50_ms']:.0f} ms / p95 "
                  f"{fig['answer']['p95_ms']:.0f} ms ({fig['generated']} of {fig['answers']} "
                  "on the generated path)")
    mem = out.get("memory")
    if mem:
        first, second = mem["support_then_chat"], mem["chat_then_support"]
        weights = mem["one_copy_of_weights_mb"]
        worst = max(first["added_mb"], second["added_mb"])
        print(f"memory (server RSS): support answer {first['after_support_mb']:.0f} MB, + chat "
              f"completion {first['after_both_mb']:.0f} MB ({first['added_mb']:+.0f} MB); chat "
              f"{second['after_chat_mb']:.0f} MB, + template answer "
              f"{second['after_template_mb']:.0f} MB, + generated answer "
              f"{second['after_both_mb']:.0f} MB ({second['added_mb']:+.0f} MB); one copy of "
              f"the weights {weights:.0f} MB (far below: "
              f"{verdict(worst < weights / 4)})")
