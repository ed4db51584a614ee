"""``aigc serve`` (the HTTP service) and ``aigc tokens`` (its API tokens).

FastAPI, uvicorn and prometheus-client are imported inside the commands, so that
``aigc --help`` stays fast.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aigc_apps.cli.context import settings_from
from aigc_apps.console import JsonOpt, console, err_console, print_json
from aigc_apps.errors import AigcError

if TYPE_CHECKING:
    from aigc_apps.settings import Settings

tokens_app = typer.Typer(
    help="API tokens of `aigc serve`: create (shown once), list, revoke. Only a hash is stored.",
    no_args_is_help=True,
)


def _store() -> Any:
    from aigc_apps.serve.tokens import TokenStore

    return TokenStore(settings=settings_from())


@tokens_app.command("create")
def create_token(
    name: Annotated[str, typer.Option("--name", help="A name for the token (who or what uses "
                                                     "it); unique.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="A scope to grant (repeat for several): admin, generate, "
                     "<app>, <app>:read or <app>:write, app being support, sentiment, recommend."),
    ],
    agent: Annotated[str | None, typer.Option(
        "--agent", help="The support agent this token acts as (default: its name); its "
        "requests cannot act as another agent unless it is an admin token.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a token and print it once (stdout); it cannot be shown again."""
    info, plaintext = _store().create(name, list(scope), agent)
    if json_output:
        print_json(info.to_dict() | {"token": plaintext})
        return
    from rich.markup import escape

    acts = f", acting as agent {escape(repr(info.agent))}" if info.agent != info.name else ""
    err_console.print(
        f"token [bold]{info.name}[/] created with scopes {', '.join(info.scopes)}{acts}; "
        "store it now, it is not shown again:",
        soft_wrap=True,
    )
    console.print(plaintext, soft_wrap=True)


@tokens_app.command("list")
def list_tokens(json_output: JsonOpt = False) -> None:
    """List tokens (name, scopes, dates); never the tokens themselves."""
    infos = _store().list()
    if json_output:
        print_json([info.to_dict() for info in infos])
        return
    if not infos:
        console.print("no API tokens: the server needs none on loopback "
                      "(create one with `aigc tokens create --name NAME --scope admin`)")
        return
    from rich.table import Table

    table = Table("name", "scopes", "agent", "created", "last used", "status")
    for info in infos:
        table.add_row(
            info.name, " ".join(info.scopes), info.agent, f"{info.created_at:%Y-%m-%d %H:%M}",
            f"{info.last_used_at:%Y-%m-%d %H:%M}" if info.last_used_at else "-",
            "active" if info.active else f"revoked {info.revoked_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@tokens_app.command("revoke")
def revoke_token(
    name: Annotated[str, typer.Argument(help="The token's name (see `aigc tokens list`).")],
) -> None:
    """Revoke a token; running servers refuse it within a few seconds (their auth cache)."""
    info = _store().revoke(name)
    console.print(f"token {info.name} revoked")


def prepare_stores(settings: Settings) -> int:
    """Bring every store to its schema's head once, before workers start (two workers
    creating one SQLite file at once would race); returns how many active tokens exist."""
    from aigc_apps.migrations.catalog import known_schemas
    from aigc_apps.serve.tokens import TokenStore
    from aigc_apps.store import Database

    for schema in known_schemas().values():
        Database.open(schema, settings.db_url(schema.app)).dispose()
    store = TokenStore(settings=settings)
    try:
        return int(store.active_count())
    finally:
        store.close()


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (non-loopback needs a "
                                            "token, or --insecure-no-auth).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (state is shared through "
                                              "the databases; limits are per worker, the rate "
                                              "limit too unless --rate-limit-redis).",
                                         min=1)] = 1,
    insecure_no_auth: Annotated[bool, typer.Option(
        "--insecure-no-auth", help="Serve without authentication, even on a public address "
        "and even if tokens exist.")] = False,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body (413 above).",
                                                min=0)] = 1_000_000,
    max_tokens: Annotated[int, typer.Option(help="Most new tokens one generation may ask for.",
                                            min=1)] = 512,
    rate_limit: Annotated[int, typer.Option(help="Requests per minute per token or client "
                                                 "address (0: off).", min=0)] = 600,
    rate_limit_redis: Annotated[str | None, typer.Option(
        help="Redis URL (redis://host:6379/0): one rate-limit budget per caller shared by "
        "every worker and machine, instead of one per worker.",
        envvar="AIGC_RATE_LIMIT_REDIS")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before a request that has not "
                                                "started answering gets 504 (0: off).",
                                           min=0)] = 120.0,
    engine: Annotated[str, typer.Option(help="Generation engine: auto or batch (the "
                                             "micro-batcher), or continuous (transformers' "
                                             "continuous batching).")] = "auto",
    llm: Annotated[str | None, typer.Option(help="Default chat model (alias, folder or hub id; "
                                                 "default: AIGC_LLM).")] = None,
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        help="Behind a reverse proxy: its addresses or networks, comma-separated "
        "(127.0.0.1 for one on this machine; * for any), whose X-Forwarded-For names the "
        "client. Unset: the header is ignored and the client is the connection's address.",
        envvar="AIGC_FORWARDED_ALLOW_IPS")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Run the HTTP service: OpenAI-compatible /v1 routes plus every app's routes."""
    from aigc_apps.serve.config import CONFIG_ENV, ServeConfig

    config = ServeConfig(
        host=host, port=port, workers=workers, insecure_no_auth=insecure_no_auth,
        max_body_bytes=max_body_bytes, max_tokens_cap=max_tokens, rate_limit=rate_limit,
        rate_limit_redis=rate_limit_redis, request_timeout_s=timeout, engine=engine, llm=llm,
        forwarded_allow_ips=forwarded_allow_ips,
    ).check()
    tokens = prepare_stores(settings_from())
    if not config.loopback and not tokens and not insecure_no_auth:
        raise AigcError(
            f"refusing to listen on {host} with no API token defined: create one with "
            "`aigc tokens create --name NAME --scope admin`, or pass --insecure-no-auth"
        )
    if insecure_no_auth:
        auth = "[bold red]OFF[/] (--insecure-no-auth)"
    elif tokens:
        auth = f"on ({tokens} active token{'s' if tokens != 1 else ''})"
    else:
        auth = "off until a token is created (`aigc tokens create`)"
    shown = f"[{host}]" if ":" in host else host
    err_console.print(f"serving on http://{shown}:{port} with {workers} worker"
                      f"{'s' if workers != 1 else ''}; auth {auth}", soft_wrap=True)
    os.environ[CONFIG_ENV] = config.to_json()
    _run(config, log_level)


def _run(config: Any, log_level: str) -> None:
    """uvicorn from an import string (workers re-create the app from AIGC_SERVE_CONFIG);
    several workers share one Prometheus folder that lives as long as this process."""
    import uvicorn

    from aigc_apps.serve.metrics import MULTIPROC_ENV

    folder = None
    if config.workers > 1:
        folder = tempfile.mkdtemp(prefix="aigc-metrics-")
        os.environ[MULTIPROC_ENV] = folder
    try:
        uvicorn.run(
            "aigc_apps.serve.app:create_app_from_env", factory=True, host=config.host,
            port=config.port, workers=config.workers, log_level=log_level,
            timeout_graceful_shutdown=10,
            # uvicorn would believe X-Forwarded-For from 127.0.0.1 (or FORWARDED_ALLOW_IPS);
            # the app reads it itself, from --forwarded-allow-ips only (serve/clients.py)
            proxy_headers=False,
        )
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)
