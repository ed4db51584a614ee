"""The ``aigc`` command: core commands plus every app found under ``aigc.apps`` entry points.

Apps are Typer apps declared as entry points, so a company can add its own app by
installing a package, without editing the core. Errors the user can fix
(:class:`~aigc_apps.errors.AigcError`) are printed on one line with exit code 1.
"""

from __future__ import annotations

import errno
import os
import sys
import warnings
from importlib import import_module
from importlib.metadata import entry_points
from importlib.util import find_spec
from typing import Any

import click
import typer

from aigc_apps.cli.adapters import adapters_app
from aigc_apps.cli.commands import register_core_commands
from aigc_apps.cli.context import settings_from
from aigc_apps.cli.db import db_app
from aigc_apps.cli.models import models_app
from aigc_apps.cli.serve import serve, tokens_app
from aigc_apps.console import err_console
from aigc_apps.errors import AigcError

APPS_GROUP = "aigc.apps"

app = typer.Typer(
    name="aigc",
    help="Generative-AI apps on your own data: fine-tune, generate, retrieve, and run the apps.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _resolve_settings(ctx: typer.Context) -> None:
    settings_from(ctx)  # once per command line; every command reads this one


register_core_commands(app)
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(adapters_app, name="adapters")
app.command()(serve)
app.add_typer(tokens_app, name="tokens")


_mounted: list[str] | None = None


def mount_apps(root: typer.Typer = app) -> list[str]:
    """Add each installed app's Typer app under its entry-point name, once; returns the names.

    Called when the command runs, not at import: an app module may import the core CLI's
    helpers, and mounting at import time would then load that app half-initialised.
    """
    global _mounted
    if root is app and _mounted is not None:
        return _mounted
    mounted = []
    for ep in sorted(entry_points(group=APPS_GROUP), key=lambda e: e.name):
        try:
            sub = ep.load()
        except Exception as exc:  # a broken plugin must not take the whole CLI down
            err_console.print(f"[yellow]warning:[/] app {ep.name!r} not loaded: {exc}")
            continue
        root.add_typer(sub, name=ep.name)
        mounted.append(ep.name)
    if root is app:
        _mounted = mounted
    return mounted


def _errors(name: str) -> tuple[type[Any], ...]:
    """click's exception class ``name`` and typer's own (typer >= 0.29 vendors click, and
    raises ``typer.Exit``/``typer.Abort`` and its copy's usage errors, not click's)."""
    found: list[type[Any]] = [getattr(click.exceptions, name)]
    vendored = import_module("typer._click.exceptions") if find_spec("typer._click") else None
    for module in (typer, vendored):
        if hasattr(module, name):
            found.append(getattr(module, name))
    return tuple(dict.fromkeys(found))


def _warn_in_one_line(
    message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any
) -> None:
    """Deprecations and other warnings a user should see, as one line on stderr."""
    from rich.markup import escape

    err_console.print(f"[yellow]warning:[/] {escape(str(message))}", soft_wrap=True)


# Not bugs but the machine's state (read-only workspace, permissions, full disk): one line.
_ENVIRONMENT_ERRORS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)


def _check_text(args: list[str]) -> None:
    """Python reads bytes that are not UTF-8 on the command line as lone surrogates, which no
    database or tokenizer accepts: say so once, before any command runs."""
    for position, arg in enumerate(args, start=1):
        if any("\udc80" <= c <= "\udcff" for c in arg):
            raise AigcError(f"argument {position} is not valid UTF-8 text: {arg!r}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turning user errors into one line."""
    # Our own rich progress bars report training; library download/load bars are noise here.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.showwarning = _warn_in_one_line
    mount_apps(app)
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        _check_text(args)
        code = command.main(args=args, prog_name="aigc", standalone_mode=False)
    except AigcError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        sys.exit(1)
    except _errors("Exit") as exc:
        sys.exit(exc.exit_code)
    except _errors("ClickException") as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except _errors("Abort"):
        err_console.print("aborted")
        sys.exit(130)
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRORS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        err_console.print(
            f"[bold red]error:[/] cannot write{where}: {exc.strerror}", soft_wrap=True
        )
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
