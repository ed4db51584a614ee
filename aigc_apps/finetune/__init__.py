"""LoRA fine-tuning: SFT on chat data, text classification, merging (loaded on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aigc_apps.lazy import lazy_exports

_EXPORTS = {
    "AdapterInfo": ".registry",
    "AdapterRegistry": ".registry",
    "LoraTrainer": ".trainer",
    "LoraTrainingConfig": ".config",
    "RichProgressCallback": ".trainer",
    "TextClassifier": ".classifier",
    "TrainResult": ".trainer",
    "merge_adapter": ".merge",
}

__all__ = [
    "AdapterInfo",
    "AdapterRegistry",
    "LoraTrainer",
    "LoraTrainingConfig",
    "RichProgressCallback",
    "TextClassifier",
    "TrainResult",
    "merge_adapter",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from aigc_apps.finetune.classifier import TextClassifier
    from aigc_apps.finetune.config import LoraTrainingConfig
    from aigc_apps.finetune.merge import merge_adapter
    from aigc_apps.finetune.registry import AdapterInfo, AdapterRegistry
    from aigc_apps.finetune.trainer import LoraTrainer, RichProgressCallback, TrainResult
