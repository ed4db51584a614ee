"""Core commands: models, finetune, generate, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aigc_apps.cli.context import settings_from
from aigc_apps.console import (
    JsonOpt,
    LoraAlphaOpt,
    LoraDropoutOpt,
    LoraROpt,
    TargetModulesOpt,
    console,
    err_console,
    print_json,
)


def finetune(
    data: Annotated[Path, typer.Option(help="Training data: CSV, TSV, JSONL or JSON.")],
    out: Annotated[Path, typer.Option(help="Folder for the adapter (a standard PEFT folder).")],
    base: Annotated[
        str | None,
        typer.Option(
            help="Base model: alias, local folder or Hugging Face id (default: AIGC_LLM for "
            "sft, AIGC_ENCODER for classify)."
        ),
    ] = None,
    task: Annotated[
        str, typer.Option(help="sft (prompt/response or chat messages) or classify (text/label).")
    ] = "sft",
    eval_data: Annotated[
        Path | None, typer.Option(help="Separate evaluation file (else a seeded split).")
    ] = None,
    epochs: Annotated[float, typer.Option(help="Training epochs.")] = 1.0,
    max_steps: Annotated[int, typer.Option(help="Stop after this many steps (-1: no limit).")] = -1,
    learning_rate: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 2e-4,
    batch_size: Annotated[int, typer.Option(help="Examples per device per step.")] = 8,
    max_length: Annotated[int, typer.Option(help="Truncate examples to this many tokens.")] = 512,
    lora_r: LoraROpt = None,
    lora_alpha: LoraAlphaOpt = None,
    lora_dropout: LoraDropoutOpt = None,
    target_modules: TargetModulesOpt = None,
    eval_fraction: Annotated[
        float, typer.Option(help="Share of data held out for evaluation when no --eval-data.")
    ] = 0.1,
    text_col: Annotated[str, typer.Option(help="classify: text column.")] = "text",
    label_col: Annotated[str, typer.Option(help="classify: label column.")] = "label",
    prompt_col: Annotated[str, typer.Option(help="sft: prompt column.")] = "prompt",
    response_col: Annotated[str, typer.Option(help="sft: response column.")] = "response",
    messages_col: Annotated[str, typer.Option(help="sft: chat messages column.")] = "messages",
    class_weight: Annotated[
        str | None, typer.Option(help="classify: 'balanced' to weight rare classes up.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (data split, init, order).")] = 42,
    name: Annotated[
        str | None, typer.Option(help="Registry name (default: the --out folder name).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the newest checkpoint in --out.")
    ] = False,
    load_in_4bit: Annotated[bool, typer.Option(help="QLoRA: 4-bit base (CUDA only).")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Fine-tune a LoRA adapter on your data and register it.

    Runs unchanged under `accelerate launch` or `torchrun` (data-parallel): only the main
    process writes the adapter and the registry entry and prints.
    """
    from aigc_apps.errors import AigcError
    from aigc_apps.finetune import LoraTrainer, LoraTrainingConfig
    from aigc_apps.finetune.distributed import is_main_launch_process, launch_rank

    settings = settings_from()
    config = LoraTrainingConfig(
        base=base or (settings.default_encoder if task == "classify" else settings.default_llm),
        task=task,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=target_modules,  # type: ignore[arg-type]  # split by the config
        epochs=epochs,
        max_steps=max_steps,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_length=max_length,
        eval_fraction=eval_fraction,
        eval_file=str(eval_data) if eval_data else None,
        seed=seed,
        text_col=text_col,
        label_col=label_col,
        prompt_col=prompt_col,
        response_col=response_col,
        messages_col=messages_col,
        class_weight=class_weight,
        load_in_4bit=load_in_4bit,
        name=name,
    )
    try:
        result = LoraTrainer(config, settings=settings).fit(data, out, resume=resume)
    except AigcError as exc:
        if is_main_launch_process():
            raise
        # a launcher stops the other processes when one fails: each says why, with its rank
        err_console.print(f"[bold red]error[/] (rank {launch_rank()}): {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    if not result.is_main_process:
        return
    report = {
        "adapter": str(result.adapter_dir),
        "name": name or Path(out).name,
        "metrics": result.metrics,
        "train_seconds": round(result.train_seconds, 2),
        "train_tokens": result.train_tokens,
        "tokens_per_second": round(result.tokens_per_second, 1),
        "skipped_rows": len(result.skipped),
    }
    if result.world_size > 1:
        report["processes"] = result.world_size
    if json_output:
        print_json(report)
        return
    console.print(f"[green]adapter saved[/] to {result.adapter_dir}")
    for key, value in report.items():
        if key != "adapter":
            console.print(f"  {key}: {value}")


def generate(
    prompt: Annotated[str, typer.Argument(help="The prompt (sent as a user chat message).")],
    model: Annotated[
        str | None,
        typer.Option(
            help="Base model: alias, local folder or Hugging Face id (default: the adapter's "
            "base, else AIGC_LLM)."
        ),
    ] = None,
    adapter: Annotated[
        str | None, typer.Option(help="LoRA adapter folder or registered adapter name.")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 128,
    temperature: Annotated[float, typer.Option(help="0 = greedy (deterministic).")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass (when sampling).")] = 1.0,
    stop: Annotated[
        list[str] | None, typer.Option(help="Stop when this string appears (repeatable).")
    ] = None,
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    raw: Annotated[bool, typer.Option(help="Do not apply the chat template.")] = False,
) -> None:
    """Generate text, streamed to the terminal as it is produced."""
    from aigc_apps.engines.chat_model import ChatModel
    from aigc_apps.generation import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        stop=list(stop or []),
        system_prompt=system,
        use_chat_template=not raw,
    )
    # the process's shared engine of the base (the adapter, a folder or a registered name,
    # loaded on it by name): the same path as the support bot and the server's routes
    with ChatModel(model, adapter, config=config, settings=settings_from()) as chat:
        for piece in chat.stream_chat(prompt):
            console.print(piece, end="", markup=False)
    console.print()


def demo(
    only: Annotated[
        list[str] | None, typer.Option(help="Run only these parts (core or an app name).")
    ] = None,
    skip: Annotated[list[str] | None, typer.Option(help="Skip these parts.")] = None,
) -> None:
    """Show the whole loop on the bundled models and sample data (a few minutes on CPU)."""
    from aigc_apps.demo import run_demo

    failures = run_demo(console, only=only, skip=skip)
    if failures:
        err_console.print(f"[bold red]demo parts failed:[/] {', '.join(failures)}")
        raise typer.Exit(1)


def register_core_commands(app: typer.Typer) -> None:
    app.command()(finetune)
    app.command()(generate)
    app.command()(demo)
