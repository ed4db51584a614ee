"""LoRA fine-tuning: SFT on chat data, text classification, adapter registry and merging."""

from __future__ import annotations

from aigc_apps.finetune.classifier import TextClassifier
from aigc_apps.finetune.config import LoraTrainingConfig
from aigc_apps.finetune.merge import merge_adapter
from aigc_apps.finetune.registry import AdapterInfo, AdapterRegistry
from aigc_apps.finetune.trainer import LoraTrainer, RichProgressCallback, TrainResult

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
