"""``aigc db``: show and upgrade the schema of the registry and every app's database.

Each store has its own Alembic history and version table, so several apps can share one
PostgreSQL database and be upgraded one at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aigc_apps.cli.context import settings_from
from aigc_apps.console import DbOpt, JsonOpt, console, print_json
from aigc_apps.errors import AigcError

if TYPE_CHECKING:
    from aigc_apps.store import Database

db_app = typer.Typer(help="Database schemas: which revision each store is at, and upgrade.",
                     no_args_is_help=True)

AppOpt = Annotated[
    str | None,
    typer.Option("--app", help="Only this store: registry or an app name (default: all)."),
]


def _stores(app: str | None, url: str | None) -> list[tuple[Any, str]]:
    """(schema, url) for the chosen store(s); ``--db`` needs ``--app``."""
    from aigc_apps.migrations.catalog import known_schemas

    schemas = known_schemas()
    if app is not None and app not in schemas:
        raise AigcError(f"unknown store {app!r}; known: {', '.join(sorted(schemas))}")
    if url is not None and app is None:
        raise AigcError("--db names one database: say which store with --app")
    settings = settings_from()
    chosen = [schemas[app]] if app else [schemas[name] for name in sorted(schemas)]
    return [(schema, url or settings.db_url(schema.app)) for schema in chosen]


@contextmanager
def _connected(schema: Any, url: str) -> Iterator[Database]:
    """``url``'s database for one command; a server that cannot be reached (down, a wrong
    host or port, bad credentials) is one line naming the store, as every command says."""
    from sqlalchemy.exc import SQLAlchemyError

    from aigc_apps.store import Database, cannot_open

    database = Database(url)
    try:
        try:
            database.engine.connect().close()
        except SQLAlchemyError as exc:
            raise cannot_open(schema.app, url, exc) from None
        yield database
    finally:
        database.dispose()


@db_app.command()
def current(app: AppOpt = None, db: DbOpt = None, json_output: JsonOpt = False) -> None:
    """Show each store's revision beside the one this release needs; exit 1 if a store is
    newer than this release (a later aigc-apps upgraded it: this one must not use it)."""
    from sqlalchemy.engine import make_url

    from aigc_apps.migrations import current_revision, head_revision, newer_than_release

    rows = []
    for schema, url in _stores(app, db):
        with _connected(schema, url) as database:
            revision = current_revision(database, schema)
        head = head_revision(schema)
        rows.append({
            "app": schema.app,
            "url": make_url(url).render_as_string(hide_password=True),
            "current": revision,
            "head": head,
            "up_to_date": revision == head,
            "newer_than_release": newer_than_release(schema, revision),
        })
    if json_output:
        print_json(rows)
    else:
        for row in rows:
            state = (
                "up to date" if row["up_to_date"]
                else f"newer than this release (head {row['head']})" if row["newer_than_release"]
                else f"behind (head {row['head']})"
            )
            console.print(
                f"{row['app']:<10} {row['current'] or 'none':<16} {state}  {row['url']}",
                soft_wrap=True,
            )
    if any(row["newer_than_release"] for row in rows):
        raise typer.Exit(1)


@db_app.command()
def upgrade(app: AppOpt = None, db: DbOpt = None, json_output: JsonOpt = False) -> None:
    """Apply the missing migrations, each store in one transaction."""
    from aigc_apps.migrations import current_revision
    from aigc_apps.migrations import upgrade as run_upgrade

    done = []
    for schema, url in _stores(app, db):
        with _connected(schema, url) as database:
            before = current_revision(database, schema)
            after = run_upgrade(database, schema)
        done.append({"app": schema.app, "from": before, "to": after})
    if json_output:
        print_json(done)
        return
    for row in done:
        change = "already at" if row["from"] == row["to"] else f"{row['from'] or 'none'} ->"
        console.print(f"{row['app']:<10} {change} {row['to']}")
