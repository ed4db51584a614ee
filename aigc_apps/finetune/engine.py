"""The transformers ``Trainer`` subclass behind ``LoraTrainer``, and its small helpers.

Kept apart from :mod:`aigc_apps.finetune.trainer` (which decides what is written where)
because this part is what runs inside every process under ``accelerate launch``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Trainer

from aigc_apps.finetune import datasets as ds


class AigcTrainer(Trainer):
    """Trainer plus class-weighted loss, a length-grouped sampler and a token counter."""

    def __init__(self, *args: Any, class_weights: torch.Tensor | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights
        self.tokens_seen = self.samples_seen = 0

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        data: Any = train_dataset if train_dataset is not None else self.train_dataset
        lengths = [len(ex["input_ids"]) for ex in data]
        return ds.LengthGroupedSampler(lengths, self.args.train_batch_size, seed=self.args.seed)

    def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self.tokens_seen += int(inputs["attention_mask"].sum())
        self.samples_seen += int(inputs["attention_mask"].shape[0])
        return super().training_step(model, inputs, *args, **kwargs)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        if self.class_weights is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs["labels"]
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
        weight = self.class_weights.to(outputs.logits.device)
        loss = torch.nn.functional.cross_entropy(outputs.logits.float(), labels, weight=weight)
        return (loss, outputs) if return_outputs else loss


def classification_metrics(eval_pred: Any) -> dict[str, float]:
    """Accuracy and macro-F1 (the numbers that matter when classes are imbalanced)."""
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = eval_pred.predictions, eval_pred.label_ids
    logits = logits[0] if isinstance(logits, tuple) else logits
    preds = np.asarray(logits).argmax(axis=-1)
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "f1_macro": float(f1_score(labels, preds, average="macro", zero_division=0)),
    }


def newest_checkpoint(folder: Path) -> Path | None:
    found = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)
