"""Contrastive tuning of a sentence encoder on (query, positive) pairs.

The loss is MultipleNegativesRanking (InfoNCE with in-batch negatives): each query must score
its own positive above every other positive in the batch. Pairs that share a ``group`` (for
example the intent of a support query) are not negatives of each other: they are masked out
of the loss, and the batch sampler keeps them apart where it can. Pooling is the same mean
pooling :class:`~aigc_apps.embeddings.Encoder` serves, so what is trained is what is used.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from collections.abc import Collection, Hashable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aigc_apps.embeddings import ADAPTER_CONFIG, embed_batch, load_encoder_model
from aigc_apps.errors import DataError
from aigc_apps.fileio import atomic_dir
from aigc_apps.models import select_device
from aigc_apps.settings import Settings, get_settings

CONFIG_FILE = "contrastive_config.json"
REPORT_FILE = "aigc_tuning.json"


@dataclass
class ContrastiveTuningConfig:
    """Hyper-parameters of :func:`tune_encoder`.

    ``learning_rate`` None means 2e-5 for full tuning and 1e-4 with ``lora``. ``scale`` is the
    inverse temperature applied to cosine similarities. ``symmetric`` adds the
    positive-to-query direction to the loss.
    """

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float | None = None
    scale: float = 20.0
    max_length: int = 64
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    symmetric: bool = False
    seed: int = 42
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    device: str | None = None

    @property
    def effective_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 1e-4 if self.lora else 2e-5

    def save_pretrained(self, out_dir: str | Path) -> Path:
        path = Path(out_dir) / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path) -> ContrastiveTuningConfig:
        """Read a config from a folder (``contrastive_config.json``) or a JSON file."""
        path = Path(path)
        file = path / CONFIG_FILE if path.is_dir() else path
        try:
            raw = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{file}: cannot read tuning config ({exc})") from exc
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def group_batches(
    groups: Sequence[Hashable], batch_size: int, rng: np.random.Generator
) -> list[list[int]]:
    """Shuffled batches of indices in which no group appears twice, where that is possible.

    Each group's items are spread evenly over the epoch (systematic sampling with a random
    offset), then batches are filled greedily, deferring an item whose group is already in
    the batch to a later batch.
    """
    by_group: dict[Hashable, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by_group[g].append(i)
    keys = np.empty(len(groups))
    for members in by_group.values():
        perm = rng.permutation(members)
        keys[perm] = (np.arange(len(perm)) + rng.random()) / len(perm)
    pending = deque(np.argsort(keys, kind="stable").tolist())
    lookahead = 8 * batch_size
    batches: list[list[int]] = []
    while pending:
        batch: list[int] = []
        seen: set[Hashable] = set()
        deferred: list[int] = []
        while pending and len(batch) < batch_size and len(deferred) < lookahead:
            i = pending.popleft()
            if groups[i] in seen:
                deferred.append(i)
            else:
                batch.append(i)
                seen.add(groups[i])
        while len(batch) < batch_size and deferred:  # unavoidable: too few groups left
            batch.append(deferred.pop(0))
        pending.extendleft(reversed(deferred))
        batches.append(batch)
    return batches


def contrastive_loss(
    queries: torch.Tensor,
    positives: torch.Tensor,
    group_ids: torch.Tensor,
    scale: float,
    symmetric: bool = False,
    excluded: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE over unit vectors; other pairs of the same group are masked, not negatives.

    ``excluded[i, j]`` True also masks positive ``j`` as a negative of query ``i`` (for
    example an item that user ``i`` liked too: it is not evidence against the query).
    """
    logits = queries @ positives.T * scale
    same = group_ids[:, None] == group_ids[None, :]
    if excluded is not None:
        same = same | excluded
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(queries), device=queries.device)
    loss = nn.functional.cross_entropy(logits, target)
    if symmetric:
        loss = (loss + nn.functional.cross_entropy(logits.T, target)) / 2
    return loss


def _excluded_in_batch(
    batch: list[int], keys: Sequence[Hashable], exclude: Sequence[Collection[Hashable]] | None
) -> torch.Tensor | None:
    if exclude is None:
        return None
    return torch.tensor([[keys[j] in exclude[i] for j in batch] for i in batch])


def _check_pairs(pairs: Sequence[tuple[str, str]], groups: Sequence[Any] | None) -> None:
    if not pairs:
        raise DataError("no training pairs: tune_encoder needs at least 2 (query, positive) pairs")
    for n, pair in enumerate(pairs):
        if len(pair) != 2 or not all(isinstance(t, str) and t.strip() for t in pair):
            raise ValueError(f"pairs[{n}] must be two non-empty strings, got {pair!r}")
    if groups is not None and len(groups) != len(pairs):
        raise ValueError(f"got {len(groups)} groups for {len(pairs)} pairs")


def _optimizer(model: nn.Module, cfg: ContrastiveTuningConfig) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and LayerNorm weights (the usual BERT recipe)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.effective_learning_rate,
    )


def tune_encoder(
    base: str | Path,
    pairs: Sequence[tuple[str, str]],
    out_dir: str | Path,
    config: ContrastiveTuningConfig | None = None,
    *,
    groups: Sequence[Hashable] | None = None,
    exclude: Sequence[Collection[Hashable]] | None = None,
    show_progress: bool = True,
    settings: Settings | None = None,
) -> Path:
    """Fine-tune ``base`` so each query embeds next to its positive; returns ``out_dir``.

    ``groups`` labels each pair (e.g. its intent); without it, pairs with the same positive
    text form a group. ``exclude[i]`` names groups that must not serve as negatives of pair
    ``i`` (the other items a user interacted with, say). The folder holds full weights and
    tokenizer, or with ``config.lora`` a PEFT adapter naming its base; either loads with
    ``Encoder.from_pretrained(out_dir)``. ``settings`` (default: the environment's) say
    where aliases live and the device when ``config.device`` names none.
    """
    from transformers import get_linear_schedule_with_warmup

    settings = settings or get_settings()
    cfg = config or ContrastiveTuningConfig()
    _check_pairs(pairs, groups)
    if exclude is not None and len(exclude) != len(pairs):
        raise ValueError(f"got {len(exclude)} exclude sets for {len(pairs)} pairs")
    keys = list(groups) if groups is not None else [p for _, p in pairs]
    codes = {g: n for n, g in enumerate(dict.fromkeys(keys))}
    group_ids = torch.tensor([codes[g] for g in keys])
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    base_ref = str(Path(base).resolve()) if Path(base).is_dir() else str(base)
    model, tokenizer = load_encoder_model(base_ref, settings)
    if cfg.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                target_modules="all-linear",
            ),
        )
    device = select_device(cfg.device or settings.device)
    model.to(device).train()

    def tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
        batch = tokenizer(
            texts, padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt"
        )
        return {k: v.to(device) for k, v in batch.items()}

    epochs = [group_batches(keys, cfg.batch_size, rng) for _ in range(cfg.epochs)]
    total = sum(len(b) for b in epochs)
    optimizer = _optimizer(model, cfg)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    log_every = max(1, total // 50)
    history: list[dict[str, float]] = []
    window: list[float] = []
    started = time.perf_counter()
    with _progress(show_progress) as progress:
        task = progress.add_task("Tuning encoder", total=total)
        step = 0
        for batches in epochs:
            for batch in batches:
                q = embed_batch(model, tokenize([pairs[i][0] for i in batch]))
                p = embed_batch(model, tokenize([pairs[i][1] for i in batch]))
                excluded = _excluded_in_batch(batch, keys, exclude)
                loss = contrastive_loss(
                    q,
                    p,
                    group_ids[batch].to(device),
                    cfg.scale,
                    cfg.symmetric,
                    None if excluded is None else excluded.to(device),
                )
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                window.append(loss.item())
                if step % log_every == 0 or step == total:
                    history.append({"step": step, "loss": round(float(np.mean(window)), 5)})
                    window = []
                progress.update(
                    task, advance=1, description=f"Tuning encoder (loss {history[-1]['loss']:.3f})"
                    if history else "Tuning encoder"
                )
    seconds = time.perf_counter() - started
    model.eval()

    report = {
        "base": base_ref,
        "kind": "lora" if cfg.lora else "full",
        "config": asdict(cfg),
        "pairs": len(pairs),
        "groups": len(codes),
        "steps": total,
        "loss_history": history,
        "seconds": round(seconds, 2),
    }
    with atomic_dir(out_dir) as tmp:
        model.cpu().save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if cfg.lora:  # name the base as the user gave it (alias or absolute folder)
            adapter_cfg = tmp / ADAPTER_CONFIG
            meta = json.loads(adapter_cfg.read_text())
            meta["base_model_name_or_path"] = base_ref
            adapter_cfg.write_text(json.dumps(meta, indent=2))
        cfg.save_pretrained(tmp)
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return Path(out_dir)


def _progress(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )
