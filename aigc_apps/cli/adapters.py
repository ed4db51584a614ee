"""``aigc adapters``: the 0.1.0 spelling of ``aigc models``, kept for one release."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aigc_apps.cli import models
from aigc_apps.console import JsonOpt, err_console

adapters_app = typer.Typer(
    help="Deprecated: use `aigc models` (list, show, merge, delete).",
    no_args_is_help=True,
    deprecated=True,
)


def _deprecated(command: str) -> None:
    err_console.print(f"[yellow]deprecated:[/] use `aigc models {command}`")


@adapters_app.command("list", deprecated=True)
def list_adapters(json_output: JsonOpt = False) -> None:
    """List registered models, newest first (use `aigc models list`)."""
    _deprecated("list")
    models.list_models(app=None, role=None, json_output=json_output)


@adapters_app.command(deprecated=True)
def show(name: models.NameArg, json_output: JsonOpt = False) -> None:
    """Show one model (use `aigc models show`)."""
    _deprecated("show")
    models.show(name, json_output)


@adapters_app.command(deprecated=True)
def merge(
    name: models.NameArg,
    out: Annotated[Path, typer.Option(help="Folder for the merged full model.")],
) -> None:
    """Merge an adapter into its base model (use `aigc models merge`)."""
    _deprecated("merge")
    models.merge(name, out)


@adapters_app.command(deprecated=True)
def delete(
    name: models.NameArg,
    keep_files: Annotated[
        bool, typer.Option(help="Only unregister; leave the folder on disk.")
    ] = False,
) -> None:
    """Unregister a model without asking (use `aigc models delete`)."""
    _deprecated("delete")
    models.delete(name, yes=True, force=True, keep_files=keep_files)
