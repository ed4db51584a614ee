"""``aigc support ...``: ingest knowledge, ask and chat, feedback, fine-tune, evaluate.

Each command parses its options, calls :class:`~apps.support.service.SupportService` and
prints; the service loads only what the command needs (``session`` and ``feedback`` read the
database alone).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aigc_apps.console import (
    DbOpt,
    JsonOpt,
    LoraAlphaOpt,
    LoraDropoutOpt,
    LoraROpt,
    TargetModulesOpt,
    console,
    print_json,
)

from .agent_cli import agents_app, open_service
from .quarantine_cli import quarantine_app

if TYPE_CHECKING:
    from ..answers.reply import BotReply
    from ..service import SupportService

app = typer.Typer(
    help="Customer-service bot: answers from your FAQ templates, policy documents and past "
    "dialogues, and hands off to a human when unsure.",
    no_args_is_help=True,
)
app.add_typer(agents_app)  # queue, take, reply, release, resolve, suggestions, stats, webhook
app.add_typer(quarantine_app, name="quarantine")


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
    with open_service(db) as bot:
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
        if report.quarantined:
            console.print(
                f"{report.quarantined} passage(s) held in quarantine: they read like instructions "
                "to the assistant (see `aigc support quarantine`)"
            )
        calibration = bot.calibration
        console.print(f"handoff threshold {calibration.threshold:.3f} ({calibration.method})")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The customer's question.")],
    session: Annotated[str | None, typer.Option(help="Continue this session id.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest generated answer (tokens).")] = 80,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Answer one question: a template, a grounded generated answer, or a handoff."""
    from ..answers.reply import clean_question

    clean_question(question)  # fail fast, before any model is loaded
    with open_service(db, max_new_tokens=max_new_tokens) as bot:
        reply = bot.ask(question, session)
    if json_output:
        from .schemas import reply_out, with_old_cli_keys

        out = reply_out(reply)  # what the HTTP API answers, field for field
        print_json(with_old_cli_keys(out.model_dump(mode="json"), {"turn": out.turn_number}))
        return
    console.print(reply.answer, markup=False)
    _footer(reply)


def _footer(reply: BotReply) -> None:
    for src in reply.sources:
        ref = f"[{src['ref']}] " if "ref" in src else ""
        console.print(f"  source {ref}{src['title']} ({src['source']})", style="dim", markup=False)
    flag = ""
    if reply.queue_position:
        flag = f" | number {reply.queue_position} in the queue for a person"
    console.print(
        f"  session {reply.session_id} turn {reply.turn} | {reply.path} | intent {reply.intent} | "
        f"confidence {reply.confidence:.2f} | {reply.latency_ms:.0f} ms | state {reply.state}"
        f"{flag}",
        style="dim",
        markup=False,
    )


@app.command()
def chat(
    session: Annotated[str | None, typer.Option(help="Continue this session id.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest generated answer (tokens).")] = 80,
    db: DbOpt = None,
) -> None:
    """Interactive chat with streamed replies (empty line, 'quit' or Ctrl-D ends it); an
    agent's messages are shown before each prompt once a person has taken over."""
    from aigc_apps.errors import AigcError

    with open_service(db, max_new_tokens=max_new_tokens) as bot:
        console.print("Support chat. Ask a question; an empty line ends the session.")
        seen = 0
        while True:
            if session:
                seen = _show_new(bot, session, seen)
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
            seen = max([seen] + [m["id"] for m in bot.conversations.messages(session, seen)
                                 if m["role"] in ("customer", "bot")])


def _show_new(bot: SupportService, session: str, after: int) -> int:
    """Print agents' and system messages stored since ``after``; the last id shown."""
    for m in bot.conversations.messages(session, after):
        if m["role"] == "agent":
            console.print(f"[bold]{m['author']}>[/] ", end="")
            console.print(m["text"], markup=False)
        elif m["role"] == "system":
            console.print(f"  ({m['text']})", style="dim", markup=False)
        after = m["id"]
    return after


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

    if good is None:
        raise DataError("say whether the answer was right: --good or --bad")
    with open_service(db) as bot:
        fid = bot.feedback(session, turn, good, correct_answer)
    console.print(f"feedback {fid} recorded for session {session} turn {turn}")


@app.command()
def reindex(db: DbOpt = None) -> None:
    """Rebuild the FAISS indexes (and intent heads) from the database: the repair for a
    damaged index, and what follows a change of encoder."""
    with open_service(db) as bot:
        n = bot.reindex()
    console.print(f"reindexed {n} entries")


@app.command()
def status(db: DbOpt = None, json_output: JsonOpt = False) -> None:
    """Knowledge base size, active encoder/adapter and the handoff threshold."""
    with open_service(db) as bot:
        stats = bot.stats()
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
    with open_service(db) as bot:
        turns = bot.turns(session_id)
    if json_output:
        from .schemas import turn_out, with_old_cli_keys

        print_json([  # each turn as the HTTP history shows it (plus the 0.1.0 keys)
            with_old_cli_keys(turn_out(t).model_dump(mode="json"),
                              {k: t[k] for k in ("turn", "at", "retrieved_ids")})
            for t in turns
        ])
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
    lora_r: LoraROpt = None,
    lora_alpha: LoraAlphaOpt = None,
    lora_dropout: LoraDropoutOpt = None,
    target_modules: TargetModulesOpt = None,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Tune on your own data; the new encoder/adapter is registered and becomes active.

    The LoRA options shape the generator's adapter and, with --lora, the encoder's
    (--target-modules applies to the generator: the encoder adapts all linear layers).
    """
    with open_service(db) as bot:
        report = bot.tune(
            retriever=retriever,
            generator=generator,
            epochs=epochs,
            batch_size=batch_size,
            lora=lora,
            max_steps=max_steps,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=target_modules,
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
    with open_service(db) as bot:
        report = bot.evaluate_file(
            data, text_col=text_col, intent_col=intent_col, oos_label=oos_label
        )
    if json_output:
        print_json(report.to_dict())
        return
    for key, value in report.to_dict().items():
        if key != "skipped":
            console.print(f"{key:22} {value}", markup=False)
    if report.skipped:
        console.print(f"{len(report.skipped)} rows skipped ({report.skipped[0]})", markup=False)


@app.command()
def calibrate(
    data: Annotated[
        Path,
        typer.Argument(help="Labelled customer questions: CSV/TSV/JSONL/JSON (text, intent)."),
    ],
    max_wrong: Annotated[
        float, typer.Option(help="Most in-scope questions answered wrongly (a share).")
    ] = 0.03,
    text_col: Annotated[str, typer.Option(help="Question text column.")] = "text",
    intent_col: Annotated[
        str, typer.Option(help="Intent column; `oos` marks questions to hand off.")
    ] = "intent",
    split: Annotated[
        str | None,
        typer.Option(help="Only rows whose `split` column has this value (e.g. validation)."),
    ] = None,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Fit the bot's confidence and handoff threshold on questions in your customers' words:
    the most right answers with at most --max-wrong of them answered wrongly (the next
    ingest recalibrates from the knowledge base alone: run it again after)."""
    from ..quality.evaluation import read_labelled_queries

    if not 0.0 <= max_wrong < 1.0:
        raise typer.BadParameter("--max-wrong is a share between 0 and 1")
    texts, labels, skipped = read_labelled_queries(
        data, text_col, intent_col, where={"split": split} if split else None
    )
    with open_service(db) as bot:
        chosen = bot.calibrate_on(texts, labels, max_wrong)
        if json_output:
            print_json({**chosen.to_dict(), "skipped": skipped})
            return
        console.print(
            f"handoff threshold {chosen.threshold:.3f} on {chosen.n_in_scope} in-scope and "
            f"{chosen.n_oos} out-of-scope questions: right {chosen.right:.1%}, wrong "
            f"{chosen.wrong:.1%}, from documents {chosen.generated:.1%}, handed off "
            f"{chosen.handoff:.1%}"
            + (f"; out of scope handed off {chosen.oos_handoff:.1%}" if chosen.n_oos else ""),
            markup=False,
        )
        if skipped:
            console.print(f"{len(skipped)} rows skipped ({skipped[0]})", markup=False)
