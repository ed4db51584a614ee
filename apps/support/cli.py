"""``aigc support ...``: ingest knowledge, ask and chat, feedback, fine-tune, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aigc_apps.console import DbOpt, JsonOpt, console, print_json

if TYPE_CHECKING:
    from .bot import BotReply, SupportBot

app = typer.Typer(
    help="Customer-service bot: answers from your FAQ templates, policy documents and past "
    "dialogues, and hands off to a human when unsure.",
    no_args_is_help=True,
)


def _bot(db: str | None, **kwargs: Any) -> SupportBot:
    from .bot import SupportBot

    return SupportBot(db, **kwargs)


@app.command()
def ingest(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Files or folders: templates CSV/JSONL, "
            "documents (.md/.txt/.html), dialogues JSONL."
        ),
    ],
    kind: Annotated[str, typer.Option(help="auto, templates, documents or dialogues.")] = "auto",
    text_col: Annotated[
        str,
        typer.Option(
            help="Templates: column with the example question(s), several separated by '|'."
        ),
    ] = "text",
    intent_col: Annotated[
        str, typer.Option(help="Templates: intent / template id column.")
    ] = "intent",
    answer_col: Annotated[
        str, typer.Option(help="Templates: answer column (optional in the file).")
    ] = "answer",
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Add knowledge; re-ingesting unchanged files does nothing, changed files replace theirs."""
    bot = _bot(db)
    report = bot.ingest(
        paths, kind=kind, text_col=text_col, intent_col=intent_col, answer_col=answer_col
    )
    if json_output:
        print_json({**report.__dict__, "stats": bot.stats()})
        return
    console.print(
        f"{len(report.files)} file(s): {report.added_sources} new, {report.replaced_sources} "
        f"changed, {report.unchanged_sources} unchanged; {report.entries_added} entries added, "
        f"{report.entries_removed} removed, {len(report.skipped)} rows skipped"
    )
    for skip in report.skipped[:10]:
        console.print(f"  skipped {skip}")
    console.print(f"handoff threshold {bot.calibration.threshold:.3f} ({bot.calibration.method})")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The customer's question.")],
    session: Annotated[str | None, typer.Option(help="Continue this session id.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest generated answer (tokens).")] = 80,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Answer one question: a template, a grounded generated answer, or a handoff."""
    from .bot import clean_question

    clean_question(question)  # fail fast, before any model is loaded
    reply = _bot(db, max_new_tokens=max_new_tokens).ask(question, session)
    if json_output:
        print_json(reply.to_dict())
        return
    console.print(reply.answer, markup=False)
    _footer(reply)


def _footer(reply: BotReply) -> None:
    for src in reply.sources:
        ref = f"[{src['ref']}] " if "ref" in src else ""
        console.print(f"  source {ref}{src['title']} ({src['source']})", style="dim", markup=False)
    flag = "  HANDOFF: flagged for a human" if reply.handoff else ""
    console.print(
        f"  session {reply.session_id} turn {reply.turn} | {reply.path} | intent {reply.intent} | "
        f"confidence {reply.confidence:.2f} | {reply.latency_ms:.0f} ms{flag}",
        style="dim",
        markup=False,
    )


@app.command()
def chat(
    session: Annotated[str | None, typer.Option(help="Continue this session id.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest generated answer (tokens).")] = 80,
    db: DbOpt = None,
) -> None:
    """Interactive chat with streamed replies (empty line, 'quit' or Ctrl-D ends it)."""
    from aigc_apps.errors import AigcError

    bot = _bot(db, max_new_tokens=max_new_tokens)
    console.print("Support chat. Ask a question; an empty line ends the session.")
    while True:
        try:
            question = console.input("[bold]you>[/] ")
        except (EOFError, KeyboardInterrupt):
            break
        if not question.strip() or question.strip().lower() in ("quit", "exit"):
            break
        console.print("[bold]bot>[/] ", end="")
        try:
            reply = bot.ask(
                question, session, on_token=lambda t: console.print(t, end="", markup=False)
            )
        except AigcError as exc:
            console.print(f"\n[red]error:[/] {exc}")
            continue
        console.print()
        _footer(reply)
        session = reply.session_id


@app.command()
def feedback(
    session: Annotated[str, typer.Argument(help="Session id.")],
    turn: Annotated[int, typer.Argument(help="Turn number in the session (1 = first).")],
    good: Annotated[
        bool | None, typer.Option("--good/--bad", help="Was the answer right? (required)")
    ] = None,
    correct_answer: Annotated[
        str | None, typer.Option(help="The answer it should have given (becomes training data).")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Rate an answer; corrected answers are used by `aigc support finetune`."""
    from aigc_apps.errors import DataError

    from .sessions import record_feedback
    from .store import open_db

    if good is None:
        raise DataError("say whether the answer was right: --good or --bad")
    fid = record_feedback(open_db(db), session, turn, good, correct_answer)
    console.print(f"feedback {fid} recorded for session {session} turn {turn}")


@app.command()
def reindex(db: DbOpt = None) -> None:
    """Rebuild the FAISS indexes from the database."""
    n = _bot(db).reindex()
    console.print(f"reindexed {n} entries")


@app.command()
def status(db: DbOpt = None, json_output: JsonOpt = False) -> None:
    """Knowledge base size, active encoder/adapter and the handoff threshold."""
    stats = _bot(db).stats()
    if json_output:
        print_json(stats)
        return
    for key, value in stats.items():
        console.print(f"{key:22} {value}", markup=False)


@app.command()
def session(
    session_id: Annotated[str, typer.Argument(help="Session id.")],
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Show a session's turns (questions are stored with personal data masked)."""
    from .sessions import turns as session_turns
    from .store import open_db

    turns = session_turns(open_db(db), session_id)
    if json_output:
        print_json(turns)
        return
    for t in turns:
        console.print(
            f"[{t['turn']}] you: {t['question']}\n    bot ({t['path']}, "
            f"{t['confidence']:.2f}): {t['answer']}",
            markup=False,
        )


@app.command()
def finetune(
    retriever: Annotated[bool, typer.Option(help="Tune the retriever's encoder.")] = True,
    generator: Annotated[bool, typer.Option(help="LoRA-tune the answer generator (SFT).")] = True,
    epochs: Annotated[int, typer.Option(help="Retriever: passes over the examples.")] = 1,
    batch_size: Annotated[int, typer.Option(help="Retriever: pairs per batch.")] = 64,
    lora: Annotated[bool, typer.Option(help="Retriever: LoRA instead of full tuning.")] = False,
    max_steps: Annotated[int, typer.Option(help="Generator: SFT steps (keep small on CPU).")] = 30,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Tune on your own data; the new encoder/adapter becomes active for `ask`."""
    from .tuning import TuningReport, tune_generator, tune_retriever

    bot = _bot(db)
    report = TuningReport()
    if retriever:
        report = tune_retriever(bot, epochs=epochs, batch_size=batch_size, lora=lora)
    if generator:
        gen = tune_generator(bot, max_steps=max_steps)
        report.generator_adapter, report.sft_records = gen.generator_adapter, gen.sft_records
        report.generator_seconds, report.generator_metrics = (
            gen.generator_seconds,
            gen.generator_metrics,
        )
    if json_output:
        print_json(report.__dict__)
        return
    for key, value in report.__dict__.items():
        console.print(f"{key:22} {value}", markup=False)


@app.command("eval")
def eval_(
    data: Annotated[Path, typer.Option(help="Labelled queries: CSV/TSV/JSONL/JSON.")],
    text_col: Annotated[str, typer.Option(help="Query text column.")] = "text",
    intent_col: Annotated[str, typer.Option(help="Gold intent column.")] = "intent",
    oos_label: Annotated[
        str | None, typer.Option(help="Label of out-of-scope rows (should be handed off).")
    ] = None,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Top-1 accuracy, recall@5, MRR, handoff recall/false-handoff rate and latency."""
    from aigc_apps.data import read_records
    from aigc_apps.errors import DataError

    from .bot import clean_question
    from .evaluation import evaluate

    rows = read_records(data, required=[text_col, intent_col])
    skipped = [str(s) for s in rows.skipped]
    texts, labels = [], []
    for r in rows.records:  # a query `ask` would refuse (e.g. 100 KB) is skipped, not fatal
        try:
            clean_question(str(r[text_col]))
        except DataError as exc:
            skipped.append(f"query {str(r[text_col])[:30]!r}...: {exc}")
            continue
        texts.append(str(r[text_col]))
        labels.append(str(r[intent_col]))
    if not texts:
        raise DataError(f"{data}: no usable queries ({skipped[0]})")
    report = evaluate(_bot(db), texts, labels, oos_label)
    if json_output:
        print_json({**report.to_dict(), "skipped": skipped})
        return
    for key, value in report.to_dict().items():
        console.print(f"{key:22} {value}", markup=False)
    if skipped:
        console.print(f"{len(skipped)} rows skipped ({skipped[0]})", markup=False)
