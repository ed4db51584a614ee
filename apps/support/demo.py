"""``aigc demo`` part for the support bot: Northwind Outfitters' knowledge base, three answers,
then a handoff to a person and back.

Runs on its own demo database in the workspace (never the user's support database), with
the default encoder and generator (the bundled MiniLM and SmolLM2 unless ``AIGC_ENCODER`` /
``AIGC_LLM`` say otherwise), not the support models the user tuned and activated.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from aigc_apps.settings import get_settings, sample_data_dir

if TYPE_CHECKING:
    from .service import SupportService

QUESTIONS = [
    ("template answer", "Where can I track my package?"),
    ("grounded generation", "How much does a zip replacement cost?"),
    ("handoff", "What's the weather going to be in Paris tomorrow?"),
]


def demo(console: Console) -> None:
    """Ingest data/support/kb, then show a template answer, a generated one and a handoff."""
    from .service import SupportService

    kb = sample_data_dir() / "support" / "kb"
    settings = get_settings()
    url = f"sqlite:///{(settings.home / 'support-demo.db').resolve()}"
    console.print(f"1. Ingesting Northwind Outfitters' knowledge base from {kb}")
    started = time.perf_counter()
    bot = SupportService(
        url, encoder=settings.default_encoder, llm=settings.default_llm, max_new_tokens=60
    )
    report = bot.ingest([kb])
    stats = bot.stats()
    console.print(
        f"   {stats['examples']} example questions for {stats['intents']} answer templates, "
        f"{stats.get('chunks', 0)} document chunks, {stats.get('pairs', 0)} dialogue Q/A pairs "
        f"({report.entries_added} new entries, {len(report.skipped)} rows skipped) in "
        f"{time.perf_counter() - started:.1f}s"
    )
    console.print(
        f"   handoff threshold {bot.calibration.threshold:.3f} "
        f"(calibrated: {bot.calibration.method}, {bot.calibration.samples} held-out questions)"
    )
    session = None
    for n, (label, question) in enumerate(QUESTIONS, start=2):
        console.print(f"{n}. {label}: [italic]{question}[/]")
        console.print("   bot> ", end="")
        reply = bot.ask(
            question, session, on_token=lambda t: console.print(t, end="", markup=False)
        )
        console.print()
        session = reply.session_id
        table = Table("path", "intent", "confidence", "handoff", "latency", "sources")
        sources = "; ".join(
            f"[{s['ref']}] {s['title']}" if "ref" in s else f"{s['title']} ({s['source']})"
            for s in reply.sources
        )
        table.add_row(
            reply.path,
            str(reply.intent),
            f"{reply.confidence:.2f}",
            "yes" if reply.handoff else "no",
            f"{reply.latency_ms:.0f} ms",
            sources or "-",
        )
        console.print(table)
    assert session is not None
    handoff_demo(console, bot, session, len(QUESTIONS) + 2)
    bot.close()


def handoff_demo(console: Console, bot: SupportService, session: str, step: int) -> None:
    """The customer asks for a person; an agent takes over from the CLI and hands back."""
    db = f"--db {bot.db_url}"
    console.print(f"{step}. the customer asks for a person: [italic]I want to talk to a human[/]")
    reply = bot.ask("I want to talk to a human", session)
    console.print(f"   bot> {reply.answer}", markup=False)
    console.print(f"   state {reply.state}, number {reply.queue_position} in the queue")
    console.print(f"{step + 1}. an agent works the queue from the CLI")
    console.print(f"   $ aigc support queue {db}", style="dim", markup=False)
    for row in bot.conversations.queue():
        console.print(f"   {row['session_id']}  waiting {row['waiting_seconds']:.1f} s  "
                      f"intent {row['intent']}  ({row['reason']})", markup=False)
    console.print(f"   $ aigc support take {session} --agent dana {db}", style="dim", markup=False)
    taken = bot.conversations.take(session, "dana")
    console.print(f"   conversation {session}: {taken['state']}, held by {taken['agent']}",
                  markup=False)
    waiting = bot.ask("Can you check on my order 10042?", session)
    console.print(f"   customer> {waiting.question}\n   (no bot answer: {waiting.answer})",
                  markup=False)
    text = "Hi, I'm Dana. Order 10042 left our warehouse today; it arrives on Thursday."
    console.print(f'   $ aigc support reply {session} "{text}" --agent dana {db}',
                  style="dim", markup=False)
    bot.conversations.reply(session, "dana", text)
    console.print(f"   $ aigc support release {session} --agent dana {db}", style="dim",
                  markup=False)
    released = bot.conversations.release(session, "dana")
    console.print(f"   conversation {session}: {released['state']}", markup=False)
    back = bot.ask("Where can I track my package?", session)
    console.print(f"{step + 2}. back with the bot: [italic]{back.question}[/]")
    console.print(f"   bot> {back.answer}", markup=False)
    console.print(f"   state {back.state} | path {back.path}; transitions stored: " + ", ".join(
        f"{t['from_state']}->{t['to_state']} ({t['actor']})"
        for t in bot.conversations.transitions(session)), markup=False)
