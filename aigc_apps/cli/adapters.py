"""``aigc adapters``: list, show, merge and delete registered LoRA adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aigc_apps.console import JsonOpt, console, print_json

adapters_app = typer.Typer(
    help="Registered LoRA adapters: list, show, merge into the base, delete.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="Registered adapter name.")]


def _record_dict(record: object) -> dict[str, object]:
    fields = ("name", "path", "base_model", "task", "data_hash", "metrics", "created_at")
    return {field: getattr(record, field, None) for field in fields}


@adapters_app.command("list")
def list_adapters(json_output: JsonOpt = False) -> None:
    """List registered adapters, newest first."""
    from rich.table import Table

    from aigc_apps.finetune import AdapterRegistry

    records = [_record_dict(r) for r in AdapterRegistry().list()]
    if json_output:
        print_json(records)
        return
    if not records:
        console.print("no adapters registered yet (train one with `aigc finetune`)")
        return
    table = Table("name", "task", "base", "created", "path")
    for r in records:
        created = r["created_at"]
        stamp = created.strftime("%Y-%m-%d %H:%M") if hasattr(created, "strftime") else ""
        table.add_row(str(r["name"]), str(r["task"]), str(r["base_model"]), stamp, str(r["path"]))
    console.print(table)


@adapters_app.command()
def show(name: NameArg, json_output: JsonOpt = False) -> None:
    """Show one adapter: base model, task, data hash and metrics."""
    from aigc_apps.finetune import AdapterRegistry

    record = _record_dict(AdapterRegistry().get(name))
    if json_output:
        print_json(record)
        return
    for key, value in record.items():
        console.print(f"[bold]{key}[/]: {value}")


@adapters_app.command()
def merge(
    name: NameArg,
    out: Annotated[Path, typer.Option(help="Folder for the merged full model.")],
) -> None:
    """Merge an adapter into its base model, giving a normal model folder."""
    from aigc_apps.finetune import AdapterRegistry, merge_adapter

    record = AdapterRegistry().get(name)
    merged = merge_adapter(record.path, out)
    console.print(f"[green]merged[/] {name} into {merged}")


@adapters_app.command()
def delete(
    name: NameArg,
    keep_files: Annotated[
        bool, typer.Option(help="Only unregister; leave the folder on disk.")
    ] = False,
) -> None:
    """Unregister an adapter and delete its folder."""
    from aigc_apps.finetune import AdapterRegistry

    AdapterRegistry().delete(name, remove_files=not keep_files)
    console.print(f"deleted {name}")
