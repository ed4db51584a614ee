"""``aigc demo`` part for the support bot: Northwind Outfitters' knowledge base, three answers.

Runs on its own demo database in the workspace (never the user's support database), with
the default encoder and generator (the bundled MiniLM and SmolLM2 unless ``AIGC_ENCODER`` /
``AIGC_LLM`` say otherwise), not the support models the user tuned and activated.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from aigc_apps.settings import get_settings, sample_data_dir

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
    flagged = session in bot.handoffs()
    console.print(f"   session {session} flagged for a human: {'yes' if flagged else 'no'}")
    bot.close()
