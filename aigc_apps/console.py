"""Console helpers and option types shared by every command (core and apps)."""

from __future__ import annotations

import json
import math
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON report instead of a table.")]
# LoRA knobs: one spelling on every command; None takes the task's default (LORA_DEFAULTS).
LoraROpt = Annotated[
    int | None, typer.Option("--lora-r", min=1, help="LoRA rank (default: the task's).")
]
LoraAlphaOpt = Annotated[
    int | None,
    typer.Option("--lora-alpha", min=1, help="LoRA scale numerator (default: 2 x rank)."),
]
LoraDropoutOpt = Annotated[
    float | None,
    typer.Option("--lora-dropout", min=0.0, max=0.99, help="LoRA dropout (default: the task's)."),
]
TargetModulesOpt = Annotated[
    str | None,
    typer.Option(
        "--target-modules",
        help="Comma-separated layer names to adapt, or 'all-linear' (default: the model's).",
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: this app's database in the workspace)."),
]


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__fspath__"):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    return str(value)


def finite(data: Any) -> Any:
    """``data`` with NaN and infinities replaced by None, so JSON stays strict."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(value) for value in data]
    return data


def print_json(data: Any) -> None:
    """Machine-readable output: strict JSON on stdout (no NaN/Infinity), nothing else."""
    plain = json.loads(json.dumps(data, default=_default))  # dataclasses, dates, arrays
    text = json.dumps(finite(plain), indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
