"""LoRA SFT throughput: aigc_apps' LoraTrainer vs the common pad-to-max_length PyTorch loop.

    nice -n 10 python benchmarks/finetune_throughput.py [--model smollm2-135m-instruct]
        [--data data/core/sft_sample.jsonl] [--steps 20] [--batch-size 4] [--max-length 256]
        [--json]

Both sides train the same base model with the same LoRA config (r, alpha, dropout, target
modules), the same tokenized examples (prompt tokens masked), the same number of optimizer
steps, batch size and learning rate. The difference is batching: LoraTrainer groups rows of
similar length and pads each batch only to its longest row; the plain loop shuffles and pads
every batch to ``max_length``, as most tutorials do. The figure that matters is trained
(non-pad) tokens per second; the wall time of each loop excludes model loading.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aigc_apps.finetune import LoraTrainer, LoraTrainingConfig
from aigc_apps.finetune import datasets as ds
from aigc_apps.models import load_causal_lm, select_device

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data/core/sft_sample.jsonl"


def run_aigc(cfg: LoraTrainingConfig, data: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = LoraTrainer(cfg, progress=False, register=False)
        result = trainer.fit(data, Path(tmp) / "adapter")
    losses = [h["loss"] for h in result.history if "loss" in h]
    # the same batches again (the sampler is deterministic per seed/epoch) to count padding
    records = ds.load_records(data, cfg).records
    examples, _ = ds.build_sft_examples(records, trainer.tokenizer, cfg)
    lengths = [len(e["input_ids"]) for e in examples]
    positions, epoch = 0, 0
    while True:
        sampler = ds.LengthGroupedSampler(lengths, cfg.batch_size, seed=cfg.seed)
        sampler.set_epoch(epoch)
        order = list(sampler)
        batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        for batch in batches[: result.global_step - epoch * len(batches)]:
            positions += max(lengths[i] for i in batch) * len(batch)
        if (epoch + 1) * len(batches) >= result.global_step:
            break
        epoch += 1
    return {
        "steps": result.global_step,
        "computed_positions": positions,
        "seconds": round(result.train_seconds, 2),
        "trained_tokens": result.train_tokens,
        "tokens_per_second": round(result.tokens_per_second, 1),
        "final_loss": round(losses[-1], 4) if losses else None,
    }


def run_plain(cfg: LoraTrainingConfig, data: Path) -> dict[str, Any]:
    """The tutorial loop: shuffled DataLoader, ``padding="max_length"``, AdamW, linear decay."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import get_linear_schedule_with_warmup, set_seed

    set_seed(cfg.seed)
    device = select_device()
    model, tokenizer = load_causal_lm(cfg.base, device=device, dtype=torch.float32)
    records = ds.load_records(data, cfg).records
    examples, _ = ds.build_sft_examples(records, tokenizer, cfg)
    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.resolve_target_modules(model.config.model_type),
        task_type=TaskType.CAUSAL_LM,
    )
    model = get_peft_model(model, lora)
    model.train()

    def pad_to_max(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        n = cfg.max_length
        pad = tokenizer.pad_token_id
        return {
            "input_ids": torch.tensor(
                [e["input_ids"] + [pad] * (n - len(e["input_ids"])) for e in batch]
            ),
            "attention_mask": torch.tensor(
                [[1] * len(e["input_ids"]) + [0] * (n - len(e["input_ids"])) for e in batch]
            ),
            "labels": torch.tensor([e["labels"] + [-100] * (n - len(e["labels"])) for e in batch]),
        }

    loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
        examples,  # type: ignore[arg-type]
        batch_size=cfg.batch_size,
        shuffle=True,
        collate_fn=pad_to_max,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, 0, cfg.max_steps)
    autocast = device.type == "cuda" and torch.cuda.is_bf16_supported()
    steps, tokens, loss_value = 0, 0, float("nan")
    start = time.perf_counter()
    while steps < cfg.max_steps:
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            tokens += int(batch["attention_mask"].sum())
            loss_value = float(loss.detach())
            steps += 1
            if steps >= cfg.max_steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "steps": steps,
        "computed_positions": steps * cfg.batch_size * cfg.max_length,
        "seconds": round(seconds, 2),
        "trained_tokens": tokens,
        "tokens_per_second": round(tokens / seconds, 1),
        "final_loss": round(loss_value, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="base model alias/path")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SFT JSONL/CSV file")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps for each side")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    cfg = LoraTrainingConfig(
        base=args.model,
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.lr,
        seed=args.seed,
        eval_fraction=0.0,
        save_steps=10**9,  # no checkpoints: the plain loop writes none either
        logging_steps=max(1, args.steps // 4),
    )
    aigc = run_aigc(cfg, args.data)
    plain = run_plain(cfg, args.data)
    speedup = aigc["tokens_per_second"] / plain["tokens_per_second"]
    report = {
        "model": args.model,
        "data": str(args.data),
        "device": str(select_device()),
        "torch_threads": torch.get_num_threads(),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "aigc_length_grouped": aigc,
        "plain_pad_to_max": plain,
        "speedup_tokens_per_second": round(speedup, 2),
    }
    if args.json:
        print(json.dumps(report))
        return
    print(
        f"model {args.model} on {report['device']}, {args.steps} steps, batch {args.batch_size}, "
        f"max_length {args.max_length}, data {args.data}"
    )
    print(f"{'':28}{'aigc LoraTrainer':>18}{'plain loop':>14}")
    for key, label in [
        ("seconds", "train seconds"),
        ("trained_tokens", "trained (non-pad) tokens"),
        ("computed_positions", "positions computed (+pad)"),
        ("tokens_per_second", "tokens / second"),
        ("final_loss", "last logged loss"),
    ]:
        print(f"{label:28}{aigc[key]!s:>18}{plain[key]!s:>14}")
    print(f"speed-up (tokens/s): {speedup:.2f}x")


if __name__ == "__main__":
    main()
