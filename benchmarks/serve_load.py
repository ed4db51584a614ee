"""Load on the real HTTP service: ``aigc serve`` in its own process, driven over HTTP.

    python benchmarks/serve_load.py [--home DIR] [--json] [--quick]

Sets up a workspace on the bundled models and sample data (support knowledge base,
recommender, sentiment classifier; skipped where ``--home`` already has them), starts
``aigc serve`` as a subprocess and measures from this process:

* generation (SmolLM2, ``max_tokens`` 48, greedy): aggregate generated tokens/s with 8
  and 16 concurrent clients (16: each prompt twice) against 1 client sending the same 8
  prompts one after another (targets >= 4x and >= 5x); time to first token (target p95 <=
  1 s at 8 clients) and per-request latency (p50 / p95) from streamed requests;
* recommend top-10 (with reasons) for random users, 16 concurrent clients, served from the
  cache: p95 (target <= 50 ms), beside the uncached path in the same run, and one client
  alone; at the sample shop's scale and at MovieLens-small's; freshness after an event;
  HR@10 through the cache against on the spot (``serve_recommend.py``);
* support generated answers, 8 customers at once (each in its own session) against the
  same 8 one by one, and the server's memory with the support bot and chat completions on
  one base (``serve_support.py``: one engine, one copy of the weights);
* support ask on template answers (questions of ``data/support/eval.csv`` whose answer is a
  stored template): p95 (target <= 100 ms with the base-size encoder the bot now uses:
  a person does not notice 100 ms, a wrong answer they do), one client;
* sentiment score, 32 texts per call: texts/s over HTTP beside the same calls in-process;
* the recommend load again on ``--workers 2``: requests/s and p95 against one worker.

Every figure comes from this run; the machine's load average is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_recommend
import serve_support

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
PROMPTS = [
    "How do I return a jacket I bought last week?",
    "Write one sentence about autumn in the mountains.",
    "What is the capital of France? Answer briefly.",
    "Give me two tips for a first marathon.",
    "Explain what a refund is to a child.",
    "Suggest a name for a hiking shop.",
    "What should I pack for a rainy weekend trip?",
    "Describe a good customer-service reply in one sentence.",
]
SENTIMENT_MODEL = "serve-bench"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary(latencies_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in latencies_s]
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95)}


# -- workspace ------------------------------------------------------------------------------


PARTS = frozenset({"generation", "recommend", "recommend_movielens", "support",
                   "support-generated", "memory", "sentiment", "workers"})


def setup_workspace(
    home: Path, log: Callable[[str], None], parts: Collection[str] = PARTS
) -> None:
    """Support knowledge base, recommender and sentiment classifier (those in ``parts``),
    each once per home."""
    os.environ["AIGC_HOME"] = str(home)
    from aigc_apps.errors import AigcError
    from apps.recommender.recommender import RecommenderConfig
    from apps.recommender.service import RecommenderService
    from apps.sentiment.classifier import FitOptions
    from apps.sentiment.service import SentimentService
    from apps.support.service import SupportService

    with SupportService.from_settings() as bot:
        wanted = {"support", "support-generated", "memory"} & set(parts)
        if wanted and not bot.stats().get("examples"):
            started = time.perf_counter()
            bot.ingest([DATA / "support" / "kb"])
            log(f"support: knowledge base ingested in {time.perf_counter() - started:.0f} s")
    with RecommenderService.from_settings() as rec:
        try:
            if "recommend" in parts:
                rec.model()
        except AigcError:  # no trained recommender yet
            started = time.perf_counter()
            rec.ingest(DATA / "recommender" / "items.csv", DATA / "recommender" / "events.csv")
            rec.train(RecommenderConfig(interest=None))
            log(f"recommend: trained in {time.perf_counter() - started:.0f} s")
    with SentimentService.from_settings() as sent:
        try:
            if "sentiment" in parts:
                sent.registry.get(SENTIMENT_MODEL)
        except AigcError:  # not trained in this workspace yet
            started = time.perf_counter()
            data = sent.read_labelled(DATA / "sentiment" / "headlines.csv")
            options = FitOptions(base="minilm-l6", epochs=8, max_length=48, batch_size=16,
                                 progress=False)
            sent.train(data, SENTIMENT_MODEL, options)
            log(f"sentiment: trained in {time.perf_counter() - started:.0f} s")


# -- server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``aigc serve`` in a subprocess, on a free loopback port."""

    def __init__(self, home: Path, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "AIGC_HOME": str(home), **(env or {})}
        cmd = [sys.executable, "-m", "aigc_apps.cli", "serve", "--port", str(self.port),
               "--workers", str(workers), "--rate-limit", "0"]  # a load test, not a client
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in __exit__)
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                     stderr=self.log, text=True)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"aigc serve exited: {self.log.read()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("aigc serve did not answer /healthz within 120 s")

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


async def drive(
    clients: int, jobs: list[Any], call: Callable[[httpx.AsyncClient, Any], Awaitable[Any]],
    url: str,
) -> tuple[list[Any], float]:
    """Run ``jobs`` with ``clients`` concurrent connections; returns results and wall time."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    results: list[Any] = []
    limits = httpx.Limits(max_connections=clients)

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
            while not queue.empty():
                results.append(await call(http, queue.get_nowait()))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return results, time.perf_counter() - started


async def timed_get(http: httpx.AsyncClient, path: str) -> float:
    started = time.perf_counter()
    response = await http.get(path)
    response.raise_for_status()
    return time.perf_counter() - started


# -- measurements ---------------------------------------------------------------------------


async def chat_streamed(http: httpx.AsyncClient, prompt: str, max_tokens: int) -> dict[str, Any]:
    """One streamed chat completion: time to first token, total time, tokens generated."""
    body = {"model": "smollm2-135m-instruct", "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": prompt}]}
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if first is None and any(c["delta"].get("content") for c in chunk["choices"]):
                first = time.perf_counter() - started
    return {"ttft": first or 0.0, "latency": time.perf_counter() - started, "tokens": tokens}


async def generation(url: str, max_tokens: int, rounds: int) -> dict[str, Any]:
    async def call(http: httpx.AsyncClient, prompt: str) -> dict[str, Any]:
        return await chat_streamed(http, prompt, max_tokens)

    await drive(1, PROMPTS[:1], call, url)  # loads the model
    figures: dict[str, Any] = {}
    for clients in (1, 8, 16):
        jobs = list(PROMPTS) * (2 if clients == 16 else 1)  # 16 clients: each prompt twice
        runs, walls = [], 0.0
        for _ in range(rounds):
            results, wall = await drive(clients, jobs, call, url)
            runs.extend(results)
            walls += wall
        tokens = sum(r["tokens"] for r in runs)
        figures[f"clients_{clients}"] = {
            "tokens_per_s": tokens / walls,
            "generated_tokens": tokens,
            "ttft": summary([r["ttft"] for r in runs]),
            "request": summary([r["latency"] for r in runs]),
        }
    for clients in (8, 16):  # aggregate tokens/s against one client on the same 8 prompts
        figures[f"ratio_{clients}_vs_1"] = (
            figures[f"clients_{clients}"]["tokens_per_s"] / figures["clients_1"]["tokens_per_s"]
        )
    return figures


def users_of(events: Path) -> list[str]:
    with events.open(newline="", encoding="utf-8") as fh:
        return sorted({row["user"] for row in csv.DictReader(fh)})


async def warm_every_worker(
    url: str, paths: list[str], workers: int = 1, timeout_s: float = 300
) -> int:
    """Send requests until every worker has answered a few (each loads its model on its
    first request: a load inside the timed run would be measured as latency); returns how
    many workers answered. Workers are told apart by ``X-Aigc-Worker``."""
    answered: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        while time.monotonic() < deadline:
            replies = await asyncio.gather(*(http.get(p) for p in paths[:8]))
            for reply in replies:
                reply.raise_for_status()
                worker = reply.headers.get("x-aigc-worker", "?")
                answered[worker] = answered.get(worker, 0) + 1
            if sum(n >= 4 for n in answered.values()) >= workers:
                break
    return len(answered)


async def recommend(
    url: str, requests: int, clients: int, seed: int, users: list[str] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    users = users or users_of(DATA / "recommender" / "events.csv")
    rng = random.Random(seed)
    paths = [f"/v1/recommend/users/{rng.choice(users)}/recommendations?k=10"
             for _ in range(requests)]
    await warm_every_worker(url, paths, workers)
    latencies, wall = await drive(clients, paths, timed_get, url)
    return {**summary(latencies), "requests_per_s": len(paths) / wall, "clients": clients}


async def support_ask(url: str, requests: int) -> dict[str, Any]:
    with (DATA / "support" / "eval.csv").open(newline="", encoding="utf-8") as fh:
        questions = [row["text"] for row in csv.DictReader(fh)]

    async def ask(http: httpx.AsyncClient, question: str) -> tuple[str, str, float]:
        started = time.perf_counter()
        response = await http.post("/v1/support/ask", json={"message": question})
        response.raise_for_status()
        return question, response.json()["path"], time.perf_counter() - started

    probed, _ = await drive(1, questions, ask, url)  # also loads the encoder and index
    templated = [q for q, path, _ in probed if path == "template"]
    jobs = [templated[i % len(templated)] for i in range(requests)] if templated else []
    results, _ = await drive(1, jobs, ask, url)
    return {**summary([r[2] for r in results]), "template_questions": len(templated),
            "questions": len(questions)}


def headlines(n: int) -> list[str]:
    with (DATA / "sentiment" / "headlines.csv").open(newline="", encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    return [texts[i % len(texts)] for i in range(n)]


async def sentiment_http(url: str, calls: int, per_call: int) -> dict[str, Any]:
    texts = headlines(calls * per_call)
    batches = [texts[i : i + per_call] for i in range(0, len(texts), per_call)]

    async def score(http: httpx.AsyncClient, batch: list[str]) -> float:
        started = time.perf_counter()
        response = await http.post("/v1/sentiment/score",
                                   json={"texts": batch, "model": SENTIMENT_MODEL})
        response.raise_for_status()
        return time.perf_counter() - started

    await drive(1, batches[:1], score, url)  # loads the model
    latencies, wall = await drive(1, batches, score, url)
    return {"texts_per_s": len(texts) / wall, **summary(latencies)}


def sentiment_in_process(calls: int, per_call: int) -> float:
    from apps.sentiment.service import SentimentService

    texts = headlines(calls * per_call)
    with SentimentService.from_settings() as service:
        service.score(texts[:per_call], model=SENTIMENT_MODEL)  # loads the model
        started = time.perf_counter()
        for i in range(0, len(texts), per_call):
            service.score(texts[i : i + per_call], model=SENTIMENT_MODEL)
        return len(texts) / (time.perf_counter() - started)


# -- report ---------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, help="workspace (default: a fresh temporary one)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--skip-generation", action="store_true", help="no SmolLM2 load")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=",".join(sorted(PARTS)),
                    help="comma-separated parts to run: " + ", ".join(sorted(PARTS)))
    args = ap.parse_args()
    parts = set(args.only.split(","))
    if parts - PARTS:
        ap.error(f"--only: unknown part(s) {', '.join(sorted(parts - PARTS))}")
    if args.skip_generation:
        parts.discard("generation")
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    home = args.home or Path(tempfile.mkdtemp(prefix="aigc-serve-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    setup_workspace(home, log, parts)
    n_rec, n_ask, n_calls, rounds = (100, 50, 5, 1) if args.quick else (800, 300, 20, 2)

    out: dict[str, Any] = {"load_average_before": os.getloadavg()[0]}
    with Server(home) as server:
        if "generation" in parts:
            out["generation"] = asyncio.run(generation(server.url, args.max_tokens, rounds))
            log(f"generation: {json.dumps(out['generation'])}")
        if "recommend" in parts:
            out["recommend"] = asyncio.run(recommend(server.url, n_rec, 16, args.seed))
            out["recommend_1_client"] = asyncio.run(
                recommend(server.url, n_rec // 4, 1, args.seed)
            )
            shop = users_of(DATA / "recommender" / "events.csv")
            out["recommend_freshness"] = asyncio.run(
                serve_recommend.freshness(server.url, shop, 10 if args.quick else 30, args.seed)
            )
        if "support-generated" in parts:
            out["support_generated"] = asyncio.run(
                serve_support.support_generated(server.url, rounds, summary))
            log(f"support generated: {json.dumps(out['support_generated'])}")
        if "support" in parts:
            out["support_ask"] = asyncio.run(support_ask(server.url, n_ask))
        if "sentiment" in parts:
            out["sentiment_http"] = asyncio.run(sentiment_http(server.url, n_calls, 32))
    if "recommend" in parts:
        with Server(home, env=serve_recommend.UNCACHED) as server:
            out["recommend_uncached"] = asyncio.run(recommend(server.url, n_rec, 16, args.seed))
    if "recommend_movielens" in parts and (ml := serve_recommend.movielens_home(home, log)):
        ml_users = serve_recommend.movielens_users(ml)
        with Server(ml) as server:
            out["recommend_movielens"] = asyncio.run(
                recommend(server.url, n_rec, 16, args.seed, ml_users))
            out["recommend_movielens_hr"] = asyncio.run(serve_recommend.hit_rate(server.url, ml))
        with Server(ml, env=serve_recommend.UNCACHED) as server:
            out["recommend_movielens_uncached"] = asyncio.run(
                recommend(server.url, n_rec, 16, args.seed, ml_users))
    if "memory" in parts:
        out["memory"] = serve_support.memory(lambda: Server(home))
    if "sentiment" in parts:
        out["sentiment_in_process_texts_per_s"] = sentiment_in_process(n_calls, 32)
    if {"workers", "recommend"} <= parts:
        with Server(home, workers=2) as server:
            out["recommend_workers_2"] = asyncio.run(
                recommend(server.url, n_rec, 16, args.seed, workers=2))
        out["recommend_workers_ratio"] = (
            out["recommend_workers_2"]["requests_per_s"] / out["recommend"]["requests_per_s"]
        )
    out["load_average_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(out, indent=2))
        return
    report(out)


def report(out: dict[str, Any]) -> None:
    gen = out.get("generation")
    if gen:
        one, eight = gen["clients_1"], gen["clients_8"]
        sixteen = gen["clients_16"]
        print(f"generation: 8 clients {eight['tokens_per_s']:.1f} tok/s vs 1 client "
              f"{one['tokens_per_s']:.1f} tok/s: x{gen['ratio_8_vs_1']:.2f} "
              f"(target >= 4x: {verdict(gen['ratio_8_vs_1'] >= 4)}); 16 clients "
              f"{sixteen['tokens_per_s']:.1f} tok/s: x{gen['ratio_16_vs_1']:.2f} (target >= 5x: "
              f"{verdict(gen['ratio_16_vs_1'] >= 5)}); first token p95 at 8 clients "
              f"{eight['ttft']['p95_ms']:.0f} ms (target <= 1 s: "
              f"{verdict(eight['ttft']['p95_ms'] <= 1000)})")
        for name, fig in (("1 client", one), ("8 clients", eight), ("16 clients", sixteen)):
            print(f"  {name}: time to first token p50 {fig['ttft']['p50_ms']:.0f} ms / p95 "
                  f"{fig['ttft']['p95_ms']:.0f} ms; request p50 {fig['request']['p50_ms']:.0f}"
                  f" ms / p95 {fig['request']['p95_ms']:.0f} ms")
    serve_recommend.report(out, verdict)
    if "recommend_1_client" in out:
        one = out["recommend_1_client"]
        print(f"  sample shop, 1 client: p95 {one['p95_ms']:.1f} ms (p50 {one['p50_ms']:.1f}), "
              f"{one['requests_per_s']:.0f} req/s")
    rec2 = out.get("recommend_workers_2")
    if rec2:
        print(f"  --workers 2: p95 {rec2['p95_ms']:.1f} ms, {rec2['requests_per_s']:.0f} req/s "
              f"(x{out['recommend_workers_ratio']:.2f} of one worker)")
    serve_support.report(out, verdict)
    ask = out.get("support_ask")
    if ask:
        print(f"support ask, template answers ({ask['template_questions']} of "
              f"{ask['questions']} questions): p95 {ask['p95_ms']:.1f} ms (p50 "
              f"{ask['p50_ms']:.1f}) (target <= 100 ms: {verdict(ask['p95_ms'] <= 100)})")
    if "sentiment_http" in out:
        print(f"sentiment score, 32 texts per call: {out['sentiment_http']['texts_per_s']:.0f}"
              f" texts/s over HTTP vs {out['sentiment_in_process_texts_per_s']:.0f} in-process")
    print(f"load average: {out['load_average_before']:.1f} before, "
          f"{out['load_average_after']:.1f} after")


if __name__ == "__main__":
    main()
