"""In-process generation batching: the serve batcher against one padded ``generate``.

    nice python benchmarks/generation_batching.py [--model smollm2-135m-instruct]
        [--prompts 8] [--max-tokens 48] [--rounds 2] [--threads 2] [--json]

``serve_load.py`` measures batching over HTTP, where the load generator shares the cores
with the server; this script measures the same engine without HTTP, so the figure says
what batching itself gains. Three sides answer the same prompts (those of
``serve_load.py``, cycled to ``--prompts``), greedy, ``--max-tokens`` new tokens each, on
``--threads`` torch threads:

* one by one: ``Generator.generate`` per prompt, one after another (the baseline);
* padded: one ``Generator.generate_batch`` call for all prompts (left padding, every row
  runs until the longest reply of the batch ends);
* batcher: ``BatchingEngine`` (what ``aigc serve`` runs on CPU), every prompt sent at once
  as concurrent requests (``max_batch`` = the number of prompts).

Tokens/s of every side divide the same count, the completion tokens the batcher reports
(greedy decoding gives the three sides the same replies; how many agree is printed, as a
check). The sides run in turns, once per round, so other jobs on a shared machine slow
them alike; the ratios are the figures to quote, with the load average printed beside.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from serve_load import PROMPTS

from aigc_apps.engines.base import GenerationRequest, GenerationResult
from aigc_apps.engines.batcher import BatchingEngine
from aigc_apps.generation import GenerationConfig, Generator


def one_by_one(gen: Generator, prompts: list[str], config: GenerationConfig) -> list[str]:
    return [gen.generate(p, config) for p in prompts]


def padded(gen: Generator, prompts: list[str], config: GenerationConfig) -> list[str]:
    return gen.generate_batch(prompts, config, batch_size=len(prompts))


def batcher(engine: BatchingEngine, prompts: list[str], config: GenerationConfig
            ) -> list[GenerationResult]:
    async def all_at_once() -> list[GenerationResult]:
        return list(await asyncio.gather(
            *(engine.generate(GenerationRequest(p, config)) for p in prompts)
        ))

    return asyncio.run(all_at_once())


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Wall seconds per side, summed over the rounds, and the replies of the last round."""
    import torch

    torch.set_num_threads(args.threads)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.prompts)]
    config = GenerationConfig(max_new_tokens=args.max_tokens, temperature=0.0)
    gen = Generator.from_pretrained(args.model)
    engine = BatchingEngine(gen, max_batch=len(prompts))
    asyncio.run(engine.start())
    try:
        gen.generate(prompts[0], config)  # warm-up: first passes allocate
        batcher(engine, prompts[:2], config)
        seconds = {"one_by_one": 0.0, "padded": 0.0, "batcher": 0.0}
        replies: dict[str, list[str]] = {}
        tokens = 0
        for _ in range(args.rounds):
            for side in seconds:
                started = time.perf_counter()
                if side == "batcher":
                    results = batcher(engine, prompts, config)
                    replies[side] = [r.text for r in results]
                    tokens += sum(r.completion_tokens for r in results)
                elif side == "padded":
                    replies[side] = padded(gen, prompts, config)
                else:
                    replies[side] = one_by_one(gen, prompts, config)
                seconds[side] += time.perf_counter() - started
    finally:
        asyncio.run(engine.close())
    return {"seconds": seconds, "tokens": tokens, "replies": replies, "prompts": len(prompts)}


def figures(raw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    seconds, tokens = raw["seconds"], raw["tokens"]
    rate = {side: tokens / s for side, s in seconds.items()}
    base = raw["replies"]["one_by_one"]
    return {
        "model": args.model, "prompts": raw["prompts"], "max_tokens": args.max_tokens,
        "rounds": args.rounds, "threads": args.threads, "generated_tokens": tokens,
        "tokens_per_s": {k: round(v, 1) for k, v in rate.items()},
        "padded_vs_one_by_one": round(rate["padded"] / rate["one_by_one"], 2),
        "batcher_vs_one_by_one": round(rate["batcher"] / rate["one_by_one"], 2),
        "batcher_vs_padded": round(rate["batcher"] / rate["padded"], 2),
        "replies_equal_to_one_by_one": {
            side: sum(a == b for a, b in zip(raw["replies"][side], base, strict=True))
            for side in ("padded", "batcher")
        },
        "load_average": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=8, help="concurrent prompts (the batch)")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2, help="turns of the three sides")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    for name in ("prompts", "max_tokens", "rounds", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    out = figures(measure(args), args)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    rate, equal = out["tokens_per_s"], out["replies_equal_to_one_by_one"]
    print(f"{out['prompts']} prompts x {out['max_tokens']} new tokens, {out['threads']} "
          f"threads, {out['rounds']} rounds, {out['generated_tokens']} tokens")
    print(f"one by one {rate['one_by_one']:.1f} tok/s; padded generate {rate['padded']:.1f} "
          f"(x{out['padded_vs_one_by_one']:.2f}); batcher {rate['batcher']:.1f} "
          f"(x{out['batcher_vs_one_by_one']:.2f}; x{out['batcher_vs_padded']:.2f} padded)")
    print(f"replies equal to one by one: padded {equal['padded']}, batcher {equal['batcher']}"
          f" of {out['prompts']}; load average {out['load_average']}")


if __name__ == "__main__":
    main()
