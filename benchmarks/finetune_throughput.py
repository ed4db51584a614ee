"""LoRA SFT throughput: aigc_apps' LoraTrainer vs transformers' Trainer and a pad-to-max loop.

    nice -n 10 python benchmarks/finetune_throughput.py [--model smollm2-135m-instruct]
        [--data data/core/sft_sample.jsonl] [--steps 20] [--warmup-steps 1] [--batch-size 4]
        [--max-length 256] [--loss-rows 16] [--json]
    nice -n 10 python benchmarks/finetune_throughput.py --processes 2 [--steps 20] [--json]

Four sides train the same base model with the same LoRA config (r, alpha, dropout, target
modules), the same tokenized examples (prompt tokens masked with -100, as aigc does), the
same number of optimizer steps, batch size, learning rate and seed:

* aigc: ``LoraTrainer`` (length-grouped batches, each padded to its longest row);
* hf_trainer: transformers ``Trainer`` + PEFT as a user sets it up by default: shuffled
  batches padded to their longest row by ``DataCollatorForSeq2Seq``;
* hf_trainer_grouped: the same with ``group_by_length=True`` (transformers 5:
  ``train_sampling_strategy="group_by_length"``);
* pad_to_max: the tutorial loop, shuffled batches padded to ``max_length``.

One ``Meter`` counts and times every side the same way: a forward pre-hook counts, in each
training forward, the trained tokens (labels != -100), the non-pad tokens and the positions
computed (pad included); the clock runs from the end of the warm-up steps to the end of the
last optimizer step (model loading, checkpoint writing and the warm-up are outside it).
The figure that matters is trained tokens per second; targets: aigc >= 1.2x the default
Trainer and no slower than the grouped one. As a fairness check every side's
model is scored, after training, on the same rows (``--loss-rows``): the losses should agree.
The sides run in turns, one optimizer step each (see ``Turns``), so that other processes
on a shared machine slow them alike; the load average is printed beside the figures.

``--processes N`` (N > 1) measures data parallelism instead: ``LoraTrainer`` alone,
started by ``torchrun`` once with 1 process and once with N (DDP; gloo on CPU, NCCL on
GPUs), on the same data, steps, per-process batch and seed, so N processes train N times
the rows per step. Each process gets ``cores // processes`` torch threads (all cores for
the single process; ``--threads`` overrides). Printed: trained tokens/s of both (summed
over processes, over the slowest process's timed seconds) and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aigc_apps.finetune import LoraTrainer, LoraTrainingConfig
from aigc_apps.finetune import datasets as ds
from aigc_apps.models import load_causal_lm, select_device

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data/core/sft_sample.jsonl"
TARGETS = {"ratio_vs_hf_trainer": 1.2, "ratio_vs_hf_trainer_grouped": 1.0}


class Turns:
    """The sides run in threads that take turns, one optimizer step each, round-robin.

    Only the side holding the turn computes, so a burst of load from other processes on a
    shared machine slows every side alike instead of the one that happened to run then.
    """

    def __init__(self, names: list[str]) -> None:
        self.order, self.current = list(names), names[0]
        self.cond = threading.Condition()

    def _next(self, name: str) -> str:
        return self.order[(self.order.index(name) + 1) % len(self.order)]

    def wait(self, name: str) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.current == name)

    def pass_on(self, name: str) -> None:
        with self.cond:
            self.current = self._next(name)
            self.cond.notify_all()
        self.wait(name)

    def leave(self, name: str) -> None:
        with self.cond:
            following = self._next(name)
            self.order.remove(name)
            self.current = following if self.order else ""
            self.cond.notify_all()


class Meter(TrainerCallback):
    """Counts trained tokens in training forwards and times steps ``warmup+1 .. max_steps``.

    Trainer sides get it as a callback; the plain loop calls ``begin`` and ``step_end``.
    After each step the side hands the turn on; the clock stops while it waits.
    """

    def __init__(self, name: str, turns: Turns, warmup: int) -> None:
        self.name, self.turns, self.warmup = name, turns, warmup
        self.counts = {"trained_tokens": 0, "non_pad_tokens": 0, "positions": 0}
        self.at_start = dict(self.counts)
        self.seconds = self.resumed = 0.0
        self.first_loss: float | None = None
        self._hook: Any = None

    def _count(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if module.training:
            labels = kwargs["labels"]
            self.counts["trained_tokens"] += int((labels != ds.IGNORE_INDEX).sum())
            self.counts["non_pad_tokens"] += int(kwargs["attention_mask"].sum())
            self.counts["positions"] += labels.numel()

    def begin(self, model: Any) -> None:
        self._hook = model.register_forward_pre_hook(self._count, with_kwargs=True)
        self.resumed = time.perf_counter()

    def step_end(self, step: int, max_steps: int) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if step > self.warmup:
            self.seconds += time.perf_counter() - self.resumed
        elif step == self.warmup:
            self.at_start = dict(self.counts)
        if step >= max_steps:
            self._hook.remove()
            return
        self.turns.pass_on(self.name)
        self.resumed = time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.begin(kwargs["model"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step_end(state.global_step, state.max_steps)

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        logs = kwargs.get("logs") or {}
        if state.global_step == 1 and "loss" in logs:
            self.first_loss = float(logs["loss"])

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v - self.at_start[k] for k, v in self.counts.items()}
        out["seconds"] = round(self.seconds, 2)
        out["tokens_per_second"] = round(out["trained_tokens"] / self.seconds, 1)
        # the work per trained token, whatever the load of the machine
        out["positions_per_trained_token"] = round(out["positions"] / out["trained_tokens"], 3)
        out["first_step_loss"] = None if self.first_loss is None else round(self.first_loss, 4)
        return out


def peft_model(cfg: LoraTrainingConfig, data: Path) -> tuple[Any, Any, list[ds.Example]]:
    """(LoRA model, tokenizer, SFT examples) exactly as LoraTrainer builds them."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import set_seed

    set_seed(cfg.seed)
    model, tokenizer = load_causal_lm(cfg.base, device="cpu", dtype=torch.float32)
    examples, _ = ds.build_sft_examples(ds.load_records(data, cfg).records, tokenizer, cfg)
    assert cfg.lora_r and cfg.lora_alpha and cfg.lora_dropout is not None  # set by the config
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.resolve_target_modules(model.config.model_type),
        task_type=TaskType.CAUSAL_LM,
    )
    return get_peft_model(model, lora), tokenizer, examples


@torch.no_grad()
def mean_loss(model: Any, examples: list[ds.Example], pad_id: int, batch_size: int) -> float:
    """Token-weighted mean loss over ``examples`` (the same rows for every side)."""
    model.eval()
    device = next(model.parameters()).device
    collate = ds.PaddingCollator(pad_id)
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in collate(examples[i : i + batch_size]).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"][:, 1:]
        total += float(
            torch.nn.functional.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), labels.flatten(), reduction="sum"
            )
        )
        count += int((labels != ds.IGNORE_INDEX).sum())
    return total / count


Trained = tuple[Any, Any, list[ds.Example]]  # (model, tokenizer, examples)
Side = Callable[[LoraTrainingConfig, Path, Meter], Trained]


def run_aigc(cfg: LoraTrainingConfig, data: Path, meter: Meter) -> Trained:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = LoraTrainer(cfg, callbacks=[meter], progress=False, register=False)
        trainer.fit(data, Path(tmp) / "adapter")
    examples, _ = ds.build_sft_examples(ds.load_records(data, cfg).records, trainer.tokenizer, cfg)
    return trainer.model, trainer.tokenizer, examples


def hf_trainer(grouped: bool) -> Side:
    """transformers' Trainer with its defaults, plus what any run must set."""

    def run(cfg: LoraTrainingConfig, data: Path, meter: Meter) -> Trained:
        from transformers import (
            DataCollatorForSeq2Seq,
            PrinterCallback,
            Trainer,
            TrainingArguments,
        )

        model, tokenizer, examples = peft_model(cfg, data)
        known = {f.name for f in fields(TrainingArguments)}
        grouping = (
            {"group_by_length": True}
            if "group_by_length" in known
            else {"train_sampling_strategy": "group_by_length"}
        )
        device = select_device()
        with tempfile.TemporaryDirectory() as tmp:
            args = TrainingArguments(
                output_dir=tmp,
                per_device_train_batch_size=cfg.batch_size,
                max_steps=cfg.max_steps,
                learning_rate=cfg.learning_rate,
                seed=cfg.seed,
                logging_steps=cfg.logging_steps,
                logging_first_step=True,
                save_strategy="no",
                report_to="none",
                disable_tqdm=True,
                use_cpu=device.type == "cpu",
                bf16=device.type == "cuda" and torch.cuda.is_bf16_supported(),  # as aigc
                **(grouping if grouped else {}),
            )
            trainer = Trainer(
                model=model,
                args=args,
                train_dataset=examples,
                data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
                processing_class=tokenizer,
                callbacks=[meter],
            )
            trainer.remove_callback(PrinterCallback)  # keep stdout for the report
            trainer.train()
        return model, tokenizer, examples

    return run


def run_plain(cfg: LoraTrainingConfig, data: Path, meter: Meter) -> Trained:
    """The tutorial loop: shuffled DataLoader, ``padding="max_length"``, AdamW, linear decay."""
    from transformers import get_linear_schedule_with_warmup

    model, tokenizer, examples = peft_model(cfg, data)
    device = select_device()
    model.to(device).train()

    def pad_to_max(batch: list[ds.Example]) -> dict[str, torch.Tensor]:
        return ds.PaddingCollator(tokenizer.pad_token_id, pad_to_multiple_of=cfg.max_length)(batch)

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
    steps = 0
    meter.begin(model)
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
            steps += 1
            if steps == 1:
                meter.first_loss = float(loss.detach())
            meter.step_end(steps, cfg.max_steps)
            if steps >= cfg.max_steps:
                break
    return model, tokenizer, examples


SIDES: dict[str, tuple[str, Side]] = {
    "aigc": ("aigc LoraTrainer", run_aigc),
    "hf_trainer": ("HF Trainer", hf_trainer(grouped=False)),
    "hf_trainer_grouped": ("HF grouped", hf_trainer(grouped=True)),
    "pad_to_max": ("pad-to-max loop", run_plain),
}


def run_in_turns(
    cfg: LoraTrainingConfig, data: Path, warmup: int
) -> dict[str, tuple[Meter, Trained]]:
    """Every side in its own thread, taking turns; a side that fails stops the benchmark."""
    turns = Turns(list(SIDES))
    done: dict[str, tuple[Meter, Trained]] = {}

    def work(name: str, run: Side) -> None:
        turns.wait(name)
        try:
            meter = Meter(name, turns, warmup)
            done[name] = (meter, run(cfg, data, meter))
        finally:
            turns.leave(name)

    threads = [
        threading.Thread(target=work, args=(name, run), daemon=True)
        for name, (_, run) in SIDES.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [name for name in SIDES if name not in done]
    if failed:
        sys.exit(f"side(s) failed: {', '.join(failed)} (traceback above)")
    return {name: done[name] for name in SIDES}


def ddp_worker(cfg: LoraTrainingConfig, data: Path, warmup: int, out: Path) -> None:
    """One process of a ``torchrun`` launch: train, then rank 0 writes every rank's figures."""
    import torch.distributed as dist

    meter = Meter("aigc", Turns(["aigc"]), warmup)
    trainer = LoraTrainer(cfg, callbacks=[meter], progress=False, register=False)
    result = trainer.fit(data, out / "adapter")
    report = {**meter.report(), "threads": torch.get_num_threads()}
    reports = [report]
    if dist.is_available() and dist.is_initialized():
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, report)
        reports = gathered
    if result.is_main_process:
        (out / "result.json").write_text(json.dumps({"ranks": reports}))


def launch_processes(argv: list[str], processes: int, threads: int) -> dict[str, Any]:
    """Run this script's ``--worker`` under torchrun with ``processes``; sum the ranks."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc_per_node", str(processes), __file__, *argv, "--worker", tmp]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{processes}-process run failed:\n{done.stderr[-4000:]}")
        ranks = json.loads((Path(tmp) / "result.json").read_text())["ranks"]
    seconds = max(r["seconds"] for r in ranks)  # the step ends together: the slowest rank
    tokens = sum(r["trained_tokens"] for r in ranks)
    return {
        "processes": processes,
        "threads_per_process": ranks[0]["threads"],
        "trained_tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_second": round(tokens / seconds, 1),
        "per_process": [
            {k: r[k] for k in ("trained_tokens", "seconds", "tokens_per_second")} for r in ranks
        ],
    }


def scaling(args: argparse.Namespace, argv: list[str]) -> None:
    """1 process against ``args.processes``, same data, steps and per-process batch."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    load_before = os.getloadavg()[0]
    runs = []
    for n in (1, args.processes):
        threads = args.threads or max(1, cores // n)
        runs.append(launch_processes(argv, n, threads))
    one, many = runs
    ratio = round(many["tokens_per_second"] / one["tokens_per_second"], 2)
    report = {
        "model": args.model,
        "data": str(args.data),
        "device": str(select_device()),
        "cores": cores,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "steps": args.steps,
        "timed_steps": args.steps - args.warmup_steps,
        "batch_size_per_process": args.batch_size,
        "max_length": args.max_length,
        "runs": runs,
        f"ratio_{args.processes}_vs_1": ratio,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(
        f"model {args.model} on {report['device']} ({cores} cores), {args.steps} steps "
        f"({args.warmup_steps} warm-up untimed), batch {args.batch_size} per process, "
        f"max_length {args.max_length}, data {args.data}; 1-min load average "
        f"{load_before:.1f} at start, {report['load_average_1min'][1]} at end"
    )
    print(
        f"{'processes':>10}{'threads/proc':>14}{'global batch':>14}{'trained tokens':>16}"
        f"{'seconds':>10}{'tokens/s':>12}"
    )
    for run in runs:
        print(
            f"{run['processes']:>10}{run['threads_per_process']:>14}"
            f"{run['processes'] * args.batch_size:>14}{run['trained_tokens']:>16}"
            f"{run['seconds']:>10}{run['tokens_per_second']:>12}"
        )
    print(f"trained tokens/s, {args.processes} processes vs 1: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="base model alias/path")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SFT JSONL/CSV file")
    parser.add_argument(
        "--steps", "--max-steps", type=int, default=20, help="optimizer steps for each side"
    )
    parser.add_argument(
        "--warmup-steps", type=int, default=1, help="first steps of each side left out of timing"
    )
    parser.add_argument(
        "--loss-rows", type=int, default=16, help="first rows scored after training (all sides)"
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--processes", type=int, default=1, help="N > 1: LoraTrainer on 1 vs N processes (DDP)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="--processes: torch threads per process"
    )
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # set by --processes
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    if not 0 <= args.warmup_steps < args.steps:
        parser.error("--warmup-steps must be below --steps")
    if args.processes < 1 or args.threads < 0:
        parser.error("--processes must be >= 1 and --threads >= 0")
    if args.processes > 1 and args.worker is None:
        scaling(args, argv)
        return

    cfg = LoraTrainingConfig(
        base=args.model,
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.lr,
        seed=args.seed,
        eval_fraction=0.0,
        save_steps=10**9,  # no checkpoint before the end (the last one is outside the clock)
        logging_steps=max(1, args.steps // 4),
    )
    if args.worker is not None:
        ddp_worker(cfg, args.data, args.warmup_steps, args.worker)
        return
    load_before = os.getloadavg()[0]
    trained = run_in_turns(cfg, args.data, args.warmup_steps)
    sides: dict[str, dict[str, Any]] = {}
    loss_before = float("nan")
    for name, (meter, (model, tokenizer, examples)) in trained.items():
        rows = examples[: args.loss_rows]
        if not sides:  # LoRA starts as the identity: the loss before training is the base's
            with model.disable_adapter():
                loss_before = mean_loss(model, rows, tokenizer.pad_token_id, args.batch_size)
        sides[name] = meter.report()
        loss = mean_loss(model, rows, tokenizer.pad_token_id, args.batch_size)
        sides[name]["loss_same_rows_after"] = round(loss, 4)

    aigc_tps = sides["aigc"]["tokens_per_second"]
    ratios = {
        f"ratio_vs_{name}": round(aigc_tps / sides[name]["tokens_per_second"], 2)
        for name in ("pad_to_max", "hf_trainer", "hf_trainer_grouped")
    }
    report = {
        "model": args.model,
        "data": str(args.data),
        "rows": len(examples),
        "device": str(select_device()),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "steps": args.steps,
        "timed_steps": args.steps - args.warmup_steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "loss_rows": len(rows),
        "loss_same_rows_before": round(loss_before, 4),
        **sides,
        **ratios,
        "targets": {k: {"min": v, "met": ratios[k] >= v} for k, v in TARGETS.items()},
    }
    if args.json:
        print(json.dumps(report))
        return
    print(
        f"model {args.model} on {report['device']} ({report['torch_threads']} threads), "
        f"{args.steps} steps ({args.warmup_steps} warm-up untimed), batch {args.batch_size}, "
        f"max_length {args.max_length}, data {args.data} ({len(examples)} rows), "
        f"1-min load average {load_before:.1f} at start, {report['load_average_1min'][1]} at end"
    )
    print(f"{'':28}" + "".join(f"{label:>18}" for label, _ in SIDES.values()))
    for key, label in [
        ("seconds", "timed seconds"),
        ("trained_tokens", "trained tokens (labels)"),
        ("non_pad_tokens", "non-pad tokens"),
        ("positions", "positions computed (+pad)"),
        ("positions_per_trained_token", "positions / trained token"),
        ("tokens_per_second", "trained tokens / second"),
        ("first_step_loss", "first-step loss"),
        ("loss_same_rows_after", f"loss, first {len(rows)} rows"),
    ]:
        print(f"{label:28}" + "".join(f"{sides[s][key]!s:>18}" for s in SIDES))
    print(f"loss on the same {len(rows)} rows before training: {report['loss_same_rows_before']}")
    for key, ratio in ratios.items():
        verdict = ""
        if key in TARGETS:
            verdict = f" (target >= {TARGETS[key]}: {'met' if ratio >= TARGETS[key] else 'MISSED'})"
        print(f"aigc {key.replace('_', ' ')}: {ratio:.2f}x{verdict}")


if __name__ == "__main__":
    main()
