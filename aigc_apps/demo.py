"""``aigc demo``: the core loop, then each installed app's demo (``aigc.demos`` entry points).

Each part runs on the bundled models and the sample sets in ``data/``; a failing part is
reported and the others still run, so one broken app does not hide the rest.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from textwrap import shorten

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aigc_apps.errors import AigcError
from aigc_apps.settings import get_settings, sample_data_dir

DEMOS_GROUP = "aigc.demos"
DemoFn = Callable[[Console], None]
DemoLoader = Callable[[], DemoFn]


def core_demo(console: Console) -> None:
    """Fine-tune a LoRA adapter for a few steps, find the FAQ answer, generate grounded in it.

    The answer is generated from the retrieved FAQ entry, not from the question alone: asked
    bare, the adapter made a return window up (see ``aigc_apps.faq``).
    """
    from aigc_apps.engines.chat_model import ChatModel
    from aigc_apps.faq import (
        choose_index,
        grounded_prompt,
        read_faq,
        unsupported_figures,
    )
    from aigc_apps.finetune import LoraTrainer, LoraTrainingConfig
    from aigc_apps.generation import GenerationConfig

    settings = get_settings()
    data = sample_data_dir() / "core" / "sft_sample.jsonl"
    out = settings.adapters_dir / "demo-sft"
    console.print(f"1. LoRA fine-tuning [bold]{settings.default_llm}[/] on {data} (12 steps)")
    config = LoraTrainingConfig(
        base=settings.default_llm,
        task="sft",
        max_steps=12,
        batch_size=4,
        max_length=192,
        learning_rate=5e-4,
        eval_fraction=0.1,
        name="demo-sft",
    )
    result = LoraTrainer(config, settings=settings).fit(data, out)
    console.print(
        f"   adapter: {result.adapter_dir}  eval loss: {result.metrics.get('eval_loss', 'n/a')}"
        f"  {result.tokens_per_second:.0f} train tokens/s"
    )

    question = "How long do I have to return a jacket?"
    entries = read_faq(data)
    candidates = [settings.default_encoder, "mpnet-base"]
    console.print(
        f"2. Choosing an encoder for the {len(entries)} FAQ answers: each entry's own question"
        " must find its own answer"
    )
    index, scores = choose_index(candidates, entries)  # the answers embedded once
    console.print(
        "   "
        + ", ".join(f"{name} {score:.0%}" for name, score in scores.items())
        + f" -> [bold]{max(scores, key=scores.__getitem__)}[/]"
    )
    score, entry = index.search(question)[0]
    console.print(
        f"   nearest answer to [italic]{question}[/] ({score:.3f}): {escape(entry.answer)}"
    )

    console.print(
        "3. Generating with the adapter, grounded in that answer (streamed):\n   ", end=""
    )
    pieces: list[str] = []
    prompt = grounded_prompt(entry, question)
    # the shared engine
    with ChatModel(settings.default_llm, str(result.adapter_dir), settings=settings) as chat:
        for piece in chat.stream_chat(prompt, config=GenerationConfig(max_new_tokens=48)):
            pieces.append(piece)
            console.print(piece, end="", markup=False)
    console.print()
    made_up = unsupported_figures("".join(pieces), entry.answer)
    if made_up:
        console.print(f"   [yellow]not in the FAQ entry: {', '.join(made_up)}[/]")

    query = "can I send back an item I bought?"
    table = Table("score", "nearest FAQ answer", title=f"search: {query!r}")
    for score, entry in index.search(query, 3):
        table.add_row(f"{score:.3f}", shorten(entry.answer, 120, placeholder=" ..."))
    console.print(table)


def demo_parts() -> list[tuple[str, DemoLoader]]:
    """The core part first, then each app's ``aigc.demos`` entry point (loaded lazily)."""
    parts: list[tuple[str, DemoLoader]] = [("core", lambda: core_demo)]
    for ep in sorted(entry_points(group=DEMOS_GROUP), key=lambda e: e.name):
        parts.append((ep.name, ep.load))
    return parts


def run_demo(
    console: Console,
    only: Sequence[str] | None = None,
    skip: Sequence[str] | None = None,
) -> list[str]:
    """Run the demo parts in order, then a table of each part's time; returns the names of
    the parts that failed."""
    failures = []
    times: list[tuple[str, float, bool]] = []
    for name, loader in demo_parts():
        if (only and name not in only) or (skip and name in skip):
            continue
        console.rule(f"[bold]{name}")
        started = time.perf_counter()
        try:
            loader()(console)
        except AigcError as exc:
            console.print(f"[bold red]{name} failed:[/] {exc}")
            failures.append(name)
        except Exception:
            console.print(f"[bold red]{name} failed:[/]\n{traceback.format_exc()}")
            failures.append(name)
        times.append((name, time.perf_counter() - started, name not in failures))
    if times:
        console.print(time_table(times))
    return failures


def time_table(times: Sequence[tuple[str, float, bool]]) -> Table:
    """Each part's wall time and outcome, and the total: where a slow first run went."""
    table = Table(title="demo parts")
    table.add_column("part")
    table.add_column("seconds", justify="right")
    table.add_column("")
    for name, seconds, ok in times:
        table.add_row(name, f"{seconds:.1f}", "ok" if ok else "[bold red]failed[/]")
    table.add_row("total", f"{sum(s for _, s, _ in times):.1f}", "", style="bold")
    return table
