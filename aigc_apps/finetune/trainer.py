"""LoRA fine-tuning with transformers' ``Trainer``, so ``accelerate launch`` scales the same code.

``LoraTrainer(config).fit(data, out_dir)`` reads and checks the data, builds tokenized
examples (SFT: loss on answers only; classify: label ids), wraps the base model with LoRA
and trains with length-grouped batches and dynamic padding.

Output discipline: everything is checked before anything is written, so bad input leaves
no folder behind. Checkpoints go to ``<out_dir>/checkpoints`` (two kept); the finished
adapter is written to a hidden temp folder next to ``out_dir`` and renamed into place, and
on success the checkpoints are removed (they are kept when training stops early, for
``fit(..., resume=True)``).

Under ``accelerate launch`` / ``torchrun`` every process runs ``fit`` (DDP through the
Trainer); only the main one removes old checkpoints, writes the adapter and the registry
entry and draws the progress bar (see :mod:`aigc_apps.finetune.distributed`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from transformers import (
    EarlyStoppingCallback,
    PrinterCallback,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from aigc_apps.data import Skip
from aigc_apps.errors import AdapterError, DataError, ModelNotFoundError
from aigc_apps.fileio import atomic_dir
from aigc_apps.finetune import datasets as ds
from aigc_apps.finetune.config import LoraTrainingConfig
from aigc_apps.finetune.distributed import (
    gather_counts,
    process_device,
    quiet_replica,
    sharded_state_dict,
    wait_for_everyone,
)
from aigc_apps.finetune.engine import AigcTrainer, classification_metrics, newest_checkpoint
from aigc_apps.finetune.merge import quiet_head_init
from aigc_apps.finetune.progress import RichProgressCallback
from aigc_apps.models import load_tokenizer, resolve_model, select_device
from aigc_apps.settings import Settings, get_settings
from aigc_apps.store import utcnow

TRAINING_FILE = "aigc_training.json"
CHECKPOINTS = "checkpoints"
_OWN_FILES = {CHECKPOINTS, TRAINING_FILE, "adapter_config.json"}


@dataclass
class TrainResult:
    """What a run produced: the adapter folder, final metrics and throughput.

    ``train_tokens`` counts every token the model read (prompt and answer, padding left
    out), and ``tokens_per_second`` is that count over the whole run (checkpoints included);
    ``benchmarks/finetune_throughput.py`` measures the stricter *trained* tokens (those with
    a loss) against fair baselines. Under several processes the counts are summed over all
    of them (``process_tokens``/``process_samples`` keep each one's share, in rank order),
    and ``is_main_process`` says whether this process wrote the adapter.
    """

    adapter_dir: Path
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    train_tokens: int = 0
    tokens_per_second: float = 0.0
    skipped: list[Skip] = field(default_factory=list)
    global_step: int = 0
    resumed_from: str | None = None
    labels: list[str] | None = None
    name: str | None = None
    world_size: int = 1
    is_main_process: bool = True
    train_samples: int = 0
    process_tokens: list[int] = field(default_factory=list)
    process_samples: list[int] = field(default_factory=list)


def _check_out_dir(out_dir: Path) -> None:
    """Refuse to replace a folder that this SDK did not make."""
    if out_dir.exists() and not out_dir.is_dir():
        raise AdapterError(f"{out_dir}: exists and is not a folder")
    names = {p.name for p in out_dir.iterdir()} if out_dir.is_dir() else set()
    if names and not _OWN_FILES & names:
        raise AdapterError(f"{out_dir}: folder is not empty and is not an adapter folder")


class LoraTrainer:
    """Fine-tune a LoRA adapter; after ``fit`` the trained ``model`` and ``tokenizer`` stay here.

    ``callbacks`` are extra ``TrainerCallback``s; ``progress`` shows a rich bar on stderr;
    ``register`` records the adapter in :class:`~aigc_apps.ModelRegistry` (app ``core``,
    role: the task) under ``config.name`` (or the ``out_dir`` folder name), and activates it.
    """

    def __init__(
        self,
        config: LoraTrainingConfig | None = None,
        *,
        callbacks: Sequence[TrainerCallback] = (),
        progress: bool = True,
        console: Console | None = None,
        register: bool = True,
        settings: Settings | None = None,
    ) -> None:
        self.config = config or LoraTrainingConfig()
        self.callbacks = list(callbacks)
        self.progress = progress
        self.console = console or Console(stderr=True)
        self.register = register
        self.settings = settings or get_settings()
        self.model: Any = None
        self.tokenizer: Any = None

    # -- data ----------------------------------------------------------------------------

    def _prepare(
        self, data: Any, eval_data: Any
    ) -> tuple[list[ds.Example], list[ds.Example], list[Skip], str, dict[int, str] | None]:
        cfg = self.config
        train = ds.load_records(data, cfg)
        held_out = eval_data if eval_data is not None else cfg.eval_file
        evals = ds.load_records(held_out, cfg) if held_out is not None else None
        base_path = resolve_model(cfg.base, self.settings)
        self.tokenizer = load_tokenizer(base_path)
        records, eval_records = train.records, evals.records if evals else []
        id2label: dict[int, str] | None = None
        if cfg.task == "classify":
            id2label, label2id = ds.label_maps(records, cfg)
            if evals is None:
                strata = [ds.label_of(r, cfg) for r in records]
                records, eval_records = ds.split_eval(records, cfg.eval_fraction, cfg.seed, strata)
            train_ex, skips = ds.build_classify_examples(records, self.tokenizer, cfg, label2id)
            eval_ex, _ = ds.build_classify_examples(eval_records, self.tokenizer, cfg, label2id)
        else:
            if evals is None:
                records, eval_records = ds.split_eval(records, cfg.eval_fraction, cfg.seed)
            train_ex, skips = ds.build_sft_examples(records, self.tokenizer, cfg)
            eval_ex, _ = ds.build_sft_examples(eval_records, self.tokenizer, cfg)
        if not train_ex:
            detail = f" ({skips[0]})" if skips else ""
            raise DataError(f"{train.source}: no usable training examples{detail}")
        return train_ex, eval_ex, train.skipped + skips, train.data_hash, id2label

    # -- model ---------------------------------------------------------------------------

    def _build_model(self, base_path: str, id2label: dict[int, str] | None) -> Any:
        from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training
        from transformers import AutoModelForSequenceClassification

        cfg = self.config
        try:
            if cfg.task == "classify":
                assert id2label is not None
                with quiet_head_init():
                    model = AutoModelForSequenceClassification.from_pretrained(
                        base_path,
                        num_labels=len(id2label),
                        id2label=id2label,
                        label2id={v: k for k, v in id2label.items()},
                    )
                if model.config.pad_token_id is None:
                    model.config.pad_token_id = self.tokenizer.pad_token_id
                head = [n for n in ("classifier", "score") if hasattr(model, n)]
                task_type, modules_to_save = TaskType.SEQ_CLS, head or None
            else:
                from aigc_apps.models import load_causal_lm

                device = (
                    process_device(select_device(self.settings.device))
                    if cfg.load_in_4bit
                    else "cpu"
                )
                model, _ = load_causal_lm(
                    base_path, device=device, load_in_4bit=cfg.load_in_4bit, dtype=torch.float32
                )
                task_type, modules_to_save = TaskType.CAUSAL_LM, None
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelNotFoundError(f"cannot load model '{cfg.base}': {first}") from exc
        if cfg.load_in_4bit:
            model = prepare_model_for_kbit_training(model)
        lora = LoraConfig(
            r=int(cfg.lora_r or 0),
            lora_alpha=int(cfg.lora_alpha or 0),
            lora_dropout=float(cfg.lora_dropout or 0.0),
            target_modules=cfg.resolve_target_modules(model.config.model_type),
            task_type=task_type,
            modules_to_save=modules_to_save,
        )
        try:
            return get_peft_model(model, lora)
        except ValueError as exc:
            raise AdapterError(
                f"cannot add LoRA to '{cfg.base}' ({model.config.model_type}): "
                f"{str(exc).splitlines()[0]}; set target_modules"
            ) from exc

    # -- training ------------------------------------------------------------------------

    def _arguments(self, out_dir: Path, n_train: int, has_eval: bool) -> TrainingArguments:
        cfg = self.config
        steps_per_epoch = max(1, math.ceil(n_train / (cfg.batch_size * cfg.grad_accum)))
        if cfg.save_steps:
            strategy, interval = "steps", cfg.save_steps
        elif cfg.max_steps > 0 and has_eval:  # evaluate about 4 times, at least once per epoch
            strategy, interval = "steps", min(steps_per_epoch, max(1, cfg.max_steps // 4))
        elif cfg.max_steps > 0:  # nothing to evaluate: checkpoint once per epoch
            strategy, interval = "steps", min(steps_per_epoch, cfg.max_steps)
        else:
            strategy, interval = "epoch", steps_per_epoch
        cpu = self.settings.device == "cpu" or not torch.cuda.is_available()
        bf16 = not cpu and torch.cuda.is_bf16_supported()
        classify = cfg.task == "classify"
        kwargs: dict[str, Any] = {
            "output_dir": str(out_dir / CHECKPOINTS),
            "num_train_epochs": cfg.epochs,
            "max_steps": cfg.max_steps,
            "learning_rate": cfg.learning_rate,
            "per_device_train_batch_size": cfg.batch_size,
            "per_device_eval_batch_size": cfg.batch_size,
            "gradient_accumulation_steps": cfg.grad_accum,
            "logging_steps": cfg.logging_steps,
            "logging_first_step": True,
            "eval_strategy": strategy if has_eval else "no",
            "eval_steps": interval if has_eval and strategy == "steps" else None,
            "save_strategy": strategy,
            "save_steps": interval if strategy == "steps" else 500,
            "save_total_limit": 2,
            "load_best_model_at_end": has_eval,
            "metric_for_best_model": ("f1_macro" if classify else "loss") if has_eval else None,
            "greater_is_better": classify if has_eval else None,
            "seed": cfg.seed,
            "report_to": "none",
            "disable_tqdm": True,
            "bf16": bf16,
            "fp16": not cpu and not bf16,
            "use_cpu": cpu,
            "dataloader_num_workers": 0,
            "remove_unused_columns": False,
            "ddp_find_unused_parameters": False,  # LoRA (and a saved head) all get gradients
            "label_names": ["labels"],
        }
        known = {f.name for f in fields(TrainingArguments)}
        return TrainingArguments(**{k: v for k, v in kwargs.items() if k in known})

    def fit(
        self,
        data: str | Path | Sequence[dict[str, Any]],
        out_dir: str | Path,
        *,
        eval_data: str | Path | Sequence[dict[str, Any]] | None = None,
        resume: bool = False,
        register: bool | None = None,
    ) -> TrainResult:
        """Train on ``data`` (a file or a list of dicts) and save the adapter to ``out_dir``.

        ``resume=True`` continues from the newest checkpoint in ``<out_dir>/checkpoints``
        (or starts fresh, saying so, when there is none).
        """
        cfg, out_dir = self.config, Path(out_dir)
        _check_out_dir(out_dir)
        quiet_replica()
        set_seed(cfg.seed)
        train_ex, eval_ex, skipped, data_hash, id2label = self._prepare(data, eval_data)
        base_path = resolve_model(cfg.base, self.settings)
        self.model = self._build_model(base_path, id2label)
        weights = None
        if cfg.task == "classify" and cfg.class_weight == "balanced":
            assert id2label is not None
            label_ids = [int(ex["labels"]) for ex in train_ex]
            weights = torch.tensor(ds.balanced_class_weights(label_ids, len(id2label)))

        args = self._arguments(out_dir, len(train_ex), bool(eval_ex))
        callbacks: list[TrainerCallback] = list(self.callbacks)
        bar = RichProgressCallback(self.console, f"{cfg.task} {cfg.base}")
        if self.progress:
            callbacks.append(bar)
        if eval_ex and cfg.early_stopping_patience > 0:
            callbacks.append(EarlyStoppingCallback(cfg.early_stopping_patience))
        trainer = AigcTrainer(
            model=self.model,
            args=args,
            data_collator=ds.PaddingCollator(self.tokenizer.pad_token_id),
            train_dataset=train_ex,
            eval_dataset=eval_ex or None,
            processing_class=self.tokenizer,
            compute_metrics=classification_metrics if cfg.task == "classify" else None,
            callbacks=callbacks,
            class_weights=weights,
        )
        trainer.remove_callback(PrinterCallback)
        accelerator = trainer.accelerator
        main = trainer.is_world_process_zero()

        ckpt_dir = out_dir / CHECKPOINTS
        created = not out_dir.exists()
        if main and not resume and ckpt_dir.exists():
            shutil.rmtree(ckpt_dir)
        wait_for_everyone(accelerator)  # every process sees the same checkpoints from here
        checkpoint = newest_checkpoint(ckpt_dir) if resume else None
        if main and resume and checkpoint is None:
            self.console.print(f"no checkpoint in {ckpt_dir}; starting fresh")
        start = time.perf_counter()
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        except BaseException:
            # nothing to resume from: leave no trace
            if main and newest_checkpoint(ckpt_dir) is None:
                shutil.rmtree(ckpt_dir, ignore_errors=True)
                if created and out_dir.is_dir() and not any(out_dir.iterdir()):
                    out_dir.rmdir()
            raise
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        self.model.eval()

        metrics = trainer.evaluate() if eval_ex else {}
        counts = gather_counts(accelerator, trainer.tokens_seen, trainer.samples_seen)
        tokens = sum(row[0] for row in counts)
        history = [
            {k: float(v) for k, v in entry.items() if isinstance(v, (int, float))}
            for entry in trainer.state.log_history
        ]
        if not metrics:
            losses = [h["loss"] for h in history if "loss" in h]
            metrics = {"train_loss": losses[-1]} if losses else {}
        metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        if "eval_loss" in metrics and cfg.task == "sft":
            metrics["eval_perplexity"] = float(math.exp(min(metrics["eval_loss"], 50.0)))
        result = TrainResult(
            adapter_dir=out_dir,
            metrics=metrics,
            history=history,
            train_seconds=seconds,
            train_tokens=tokens,
            tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
            skipped=skipped,
            global_step=trainer.state.global_step,
            resumed_from=str(checkpoint) if checkpoint else None,
            labels=[id2label[i] for i in sorted(id2label)] if id2label else None,
            name=cfg.name or out_dir.resolve().name,
            world_size=len(counts),
            is_main_process=main,
            train_samples=sum(row[1] for row in counts),
            process_tokens=[row[0] for row in counts],
            process_samples=[row[1] for row in counts],
        )
        state_dict = sharded_state_dict(trainer)  # collective: FSDP / ZeRO-3 gather here
        wait_for_everyone(accelerator)  # nobody still reads the checkpoints the swap removes
        if main:
            self._save(
                result, data_hash, n_train=len(train_ex), n_eval=len(eval_ex), state_dict=state_dict
            )
            if self.register if register is None else register:
                from aigc_apps.registry import ModelRegistry

                registry = ModelRegistry(settings=self.settings)
                try:
                    registry.register(
                        result.name or out_dir.name,
                        out_dir,
                        app="core",
                        role=cfg.task,
                        base=cfg.base,
                        labels=result.labels,
                        data_hash=data_hash,
                        metrics=metrics,
                    )
                finally:
                    registry.close()
        wait_for_everyone(accelerator)  # every process returns with the adapter in place
        return result

    def _save(
        self,
        result: TrainResult,
        data_hash: str,
        *,
        n_train: int,
        n_eval: int,
        state_dict: dict[str, Any] | None = None,
    ) -> None:
        """Write the adapter to a temp folder, then swap it in for ``out_dir`` in one rename."""
        out_dir = result.adapter_dir
        with atomic_dir(out_dir) as tmp:  # the swap also drops the finished run's checkpoints
            self.model.save_pretrained(str(tmp), state_dict=state_dict)
            self.tokenizer.save_pretrained(str(tmp))
            info = {
                "config": self.config.to_dict(),
                "task": self.config.task,
                "base_model": self.config.base,
                "labels": result.labels,
                "data_hash": data_hash,
                "train_examples": n_train,
                "eval_examples": n_eval,
                "skipped_rows": [str(s) for s in result.skipped],
                "history": result.history,
                "metrics": result.metrics,
                "global_step": result.global_step,
                "train_tokens": result.train_tokens,
                "train_samples": result.train_samples,
                "processes": result.world_size,
                "process_tokens": result.process_tokens,
                "process_samples": result.process_samples,
                "train_seconds": round(result.train_seconds, 3),
                "tokens_per_second": round(result.tokens_per_second, 2),
                "created_at": utcnow().isoformat(),
            }
            (tmp / TRAINING_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
