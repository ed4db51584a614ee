"""``aigc support queue | take | reply | release | resolve | suggestions | stats | webhook``:
the human side of the support bot, from a terminal (database only: no model loads, except
that approving a suggestion indexes it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aigc_apps.console import DbOpt, JsonOpt, console, err_console, print_json

if TYPE_CHECKING:
    from ..service import SupportService

agents_app = typer.Typer()
suggestions_app = typer.Typer(
    help="Agents' answers from resolved conversations: list them, approve one into the "
    "knowledge base (as an answer template), or reject it.",
)
agents_app.add_typer(suggestions_app, name="suggestions")

IdArg = Annotated[str, typer.Argument(help="The conversation (session) id.")]
AgentOpt = Annotated[
    str, typer.Option("--agent", envvar="AIGC_AGENT", help="Your name as agent (or AIGC_AGENT).")
]
SuggestionArg = Annotated[int, typer.Argument(help="Suggestion id (from the list).")]


@contextmanager
def open_service(db: str | None, **options: Any) -> Iterator[SupportService]:
    """A command's service, closed at the end of the command: closing posts the webhook
    events the command made (a handoff by ``ask``, a take), giving them a few seconds
    (:data:`~apps.support.people.webhooks.CLOSE_BUDGET_S`); what is left is said on stderr, so that
    a command neither hangs on a slow receiver nor drops its events silently."""
    from aigc_apps.cli.context import settings_from

    from ..service import SupportService

    bot = SupportService(db, settings=settings_from(), **options)
    try:
        yield bot
    finally:
        bot.close()
        _report_queued(bot)


def _report_queued(bot: SupportService) -> None:
    if n := bot.webhooks_queued:
        err_console.print(
            f"{n} webhook event{'s are' if n != 1 else ' is'} still queued (the receiver "
            "is slow or down); the next command or a running server delivers them",
            markup=False, soft_wrap=True)


def _state_line(info: dict[str, Any]) -> str:
    where = f" (number {info['queue_position']} in the queue)" if info["queue_position"] else ""
    who = f", held by {info['agent']}" if info["state"] == "human" else ""
    if info["state"] == "resolved":
        who = f" by {info['agent']}"
    return f"conversation {info['session_id']}: {info['state']}{who}{where}"


@agents_app.command()
def queue(
    state: Annotated[
        str, typer.Option(help="pending_human (waiting), human (taken) or all.")
    ] = "pending_human",
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Conversations waiting for a person, longest waiting first, with the last messages."""
    with open_service(db) as bot:
        rows = bot.conversations.queue(state)
    if json_output:
        from .schemas import queued_out

        print_json([queued_out(r).model_dump(mode="json") for r in rows])  # as GET /queue
        return
    if not rows:
        console.print("no conversation is waiting for a person")
    for row in rows:
        who = f" held by {row['agent']}" if row["agent"] else ""
        console.print(
            f"{row['session_id']}  {row['state']}{who}  waiting {row['waiting_seconds']:.0f} s  "
            f"intent {row['intent'] or '-'}  ({row['reason'] or 'pulled in'})",
            markup=False,
        )
        for m in row["last_messages"]:
            console.print(f"    {m['role']}: {m['text'][:200]}", style="dim", markup=False)


@agents_app.command()
def take(conversation: IdArg, agent: AgentOpt, db: DbOpt = None) -> None:
    """Take a conversation (from the queue, or pull one in from the bot): you answer it
    from now on. Another agent's conversation cannot be taken."""
    with open_service(db) as bot:
        console.print(_state_line(bot.conversations.take(conversation, agent)), markup=False)


@agents_app.command()
def reply(
    conversation: IdArg,
    text: Annotated[str, typer.Argument(help="Your answer to the customer.")],
    agent: AgentOpt,
    db: DbOpt = None,
) -> None:
    """Answer the customer in a conversation you hold."""
    with open_service(db) as bot:
        sent = bot.conversations.reply(conversation, agent, text)
    console.print(f"sent message {sent['id']} to conversation {conversation}")


@agents_app.command()
def release(conversation: IdArg, agent: AgentOpt, db: DbOpt = None) -> None:
    """Hand a conversation you hold back to the bot."""
    with open_service(db) as bot:
        console.print(_state_line(bot.conversations.release(conversation, agent)), markup=False)


@agents_app.command()
def resolve(conversation: IdArg, agent: AgentOpt, db: DbOpt = None) -> None:
    """Close a conversation you hold; your answers become suggestions for the knowledge base."""
    with open_service(db) as bot:
        console.print(_state_line(bot.conversations.resolve(conversation, agent)), markup=False)
        waiting = len(bot.suggestions())
    console.print(f"{waiting} suggestion(s) wait for review (`aigc support suggestions`)")


@suggestions_app.callback(invoke_without_command=True)
def suggestions(
    ctx: typer.Context,
    status: Annotated[str, typer.Option(help="pending, approved, rejected or all.")] = "pending",
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """List question/answer pairs from resolved conversations (pending ones by default)."""
    if ctx.invoked_subcommand is not None:
        return
    with open_service(db) as bot:
        rows = bot.suggestions(None if status == "all" else status)
    if json_output:
        from .schemas import SuggestionOut

        print_json([SuggestionOut(**g).model_dump(mode="json") for g in rows])  # as the API
        return
    if not rows:
        console.print(f"no {'' if status == 'all' else status + ' '}suggestions")
    for g in rows:
        console.print(
            f"[{g['id']}] {g['status']} from {g['session_id']} by {g['agent']}\n"
            f"    Q: {g['question'][:300]}\n    A: {g['answer'][:300]}",
            markup=False,
        )


@suggestions_app.command("approve")
def suggestions_approve(
    suggestion: SuggestionArg,
    intent: Annotated[
        str | None, typer.Option(help="The template's name (default agent-answer-ID).")
    ] = None,
    question: Annotated[
        str | None, typer.Option(help="The question in your words (default: as asked).")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Add a suggestion to the knowledge base as an answer template (indexed, citable)."""
    with open_service(db) as bot:
        done = bot.approve_suggestion(suggestion, intent, question)
    console.print(f"suggestion {suggestion} approved as template {done['intent']!r}")


@suggestions_app.command("reject")
def suggestions_reject(suggestion: SuggestionArg, db: DbOpt = None) -> None:
    """Keep a suggestion out of the knowledge base."""
    with open_service(db) as bot:
        bot.reject_suggestion(suggestion)
    console.print(f"suggestion {suggestion} rejected")


@agents_app.command()
def stats(db: DbOpt = None, json_output: JsonOpt = False) -> None:
    """Handoff rate, median and p90 wait before take-over, resolution rate, per intent."""
    from rich.table import Table

    with open_service(db) as bot:
        figures = bot.handoff_stats()
    if json_output:
        from .schemas import HandoffStatsOut

        print_json(HandoffStatsOut(**figures).model_dump(mode="json"))  # as /handoff-stats
        return
    table = Table("intent", "conversations", "handoff rate", "median wait", "p90 wait",
                  "resolution rate")
    for row in [{"intent": "(all)", **figures}, *figures["per_intent"]]:
        table.add_row(
            row["intent"], str(row["conversations"]), _pct(row["handoff_rate"]),
            _secs(row["median_wait_s"]), _secs(row["p90_wait_s"]), _pct(row["resolution_rate"]),
        )
    console.print(table)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} s"


@agents_app.command()
def webhook(
    url: Annotated[
        str | None, typer.Argument(help="Where to POST each transition (http/https).")
    ] = None,
    clear: Annotated[bool, typer.Option(help="Stop posting transitions.")] = False,
    deliver: Annotated[bool, typer.Option(help="Post the events that are due now.")] = False,
    db: DbOpt = None,
) -> None:
    """Show or set the webhook that receives every conversation transition (retried with
    back-off; a server delivers on its own, --deliver does it once from here)."""
    with open_service(db) as bot:
        if url or clear:
            bot.set_webhook_url(None if clear else url)
        console.print(f"webhook: {bot.webhook_url() or 'none'}")
        if deliver:
            r = bot.deliver_due_webhooks()
            console.print(f"delivered {r.delivered}, failed {r.failed} (retried later), "
                          f"{r.waiting} waiting, {r.gave_up} given up")
