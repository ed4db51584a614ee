"""``aigc support quarantine [list | approve | reject | scan | answers]``: passages held
back at ingest because they read like instructions to the assistant, and answers held back
when sent (see :mod:`~apps.support.knowledge.quarantine`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from aigc_apps.console import DbOpt, JsonOpt, console, print_json

from .agent_cli import open_service

quarantine_app = typer.Typer(
    help="Passages held back at ingest because they read like instructions to the assistant "
    "(and answers held back when sent): list them, approve false positives, reject the rest.",
)
StatusOpt = Annotated[str, typer.Option(help="pending, approved, rejected or all.")]
IdsArg = Annotated[list[int], typer.Argument(help="Quarantine ids (from the list).")]


@quarantine_app.callback(invoke_without_command=True)
def quarantine(
    ctx: typer.Context,
    status: StatusOpt = "pending",
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """List quarantined passages (pending ones unless --status says otherwise)."""
    if ctx.invoked_subcommand is None:
        quarantine_list(status, db, json_output)


@quarantine_app.command("list")
def quarantine_list(
    status: StatusOpt = "pending", db: DbOpt = None, json_output: JsonOpt = False
) -> None:
    """List quarantined passages with the reason each was held."""
    with open_service(db) as bot:
        _print_passages(bot.quarantine(None if status == "all" else status), json_output)


@quarantine_app.command("approve")
def quarantine_approve(ids: IdsArg, db: DbOpt = None, json_output: JsonOpt = False) -> None:
    """Release false positives into the knowledge base (the index is rebuilt)."""
    with open_service(db) as bot:
        released = bot.approve(ids)
    if json_output:
        print_json(released)
        return
    console.print(f"released {len(released)} passage(s) of {len(ids)} into the knowledge base")


@quarantine_app.command("reject")
def quarantine_reject(ids: IdsArg, db: DbOpt = None, json_output: JsonOpt = False) -> None:
    """Keep passages out for good (one approved before is withdrawn again)."""
    with open_service(db) as bot:
        withdrawn = bot.reject(ids)
    if json_output:
        print_json(withdrawn)
        return
    console.print(f"rejected {len(ids)} passage(s); {len(withdrawn)} withdrawn from knowledge")


@quarantine_app.command("scan")
def quarantine_scan(db: DbOpt = None, json_output: JsonOpt = False) -> None:
    """Quarantine stored knowledge that reads like instructions (ingested before the guard)."""
    with open_service(db) as bot:
        moved = bot.scan_knowledge()
    if json_output:
        print_json(moved)
        return
    console.print(f"{len(moved)} passage(s) moved to quarantine")
    _print_passages(moved, False)


@quarantine_app.command("answers")
def quarantine_answers(
    limit: Annotated[int, typer.Option(min=1, help="Newest N.")] = 20,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Answers held back at answer time (and handed off instead), with the reason."""
    with open_service(db) as bot:
        blocked = bot.blocked_answers(limit)
    if json_output:
        print_json(blocked)
        return
    for b in blocked:
        console.print(
            f"session {b['session_id']} turn {b['turn']} ({b['path']}): {b['reason']}\n"
            f"    asked: {b['question']}\n    held back: {b['answer'][:300]}",
            markup=False,
        )


def _print_passages(passages: list[dict[str, Any]], json_output: bool) -> None:
    if json_output:
        print_json(passages)
        return
    if not passages:
        console.print("no passages in quarantine")
    for p in passages:
        where = f"{p['source']} > {p['title']}" if p["title"] else p["source"]
        if p["intent"]:
            where += f" (intent {p['intent']})"
        console.print(
            f"[{p['id']}] {p['status']} {p['kind']} from {where}: {p['reason']}\n"
            f"    {' '.join(p['text'].split())[:300]}",
            markup=False,
        )
