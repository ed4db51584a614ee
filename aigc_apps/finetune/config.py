"""Training settings for LoRA fine-tuning, saved next to the adapter like a PEFT config.

One dataclass covers both tasks so the CLI can expose every field as an option and a run
can be reproduced from the ``aigc_training.json`` it wrote.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import InitVar, asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigc_apps.errors import AigcError

if TYPE_CHECKING:
    from aigc_apps.settings import Settings

CONFIG_NAME = "aigc_lora_config.json"
TASKS = ("sft", "classify")

# One LoRA shape per task, used by every command and app unless the user sets one; alpha
# defaults to twice the rank (whatever the rank), so the update's scale stays the same.
# sft: the usual small adapter on attention (PEFT's examples); classify: twice the rank and
# more dropout, since the new classification head learns from few labelled rows.
LORA_DEFAULTS: dict[str, dict[str, float]] = {
    "sft": {"lora_r": 8, "lora_dropout": 0.05},
    "classify": {"lora_r": 16, "lora_dropout": 0.1},
}
# 0.1.0 spellings, still read from saved configs and accepted (with a warning) as arguments.
_RENAMED = {"r": "lora_r", "alpha": "lora_alpha", "dropout": "lora_dropout"}

# LoRA targets per architecture; unknown types fall back to PEFT's own table.
_TARGETS: dict[str, list[str]] = {
    "llama": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "qwen3": ["q_proj", "v_proj"],
    "gemma": ["q_proj", "v_proj"],
    "gemma2": ["q_proj", "v_proj"],
    "phi3": ["qkv_proj"],
    "gpt2": ["c_attn"],
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
}


@dataclass
class LoraTrainingConfig:
    """What to train (``base``, ``task``), the LoRA shape, the schedule and the data columns.

    ``task="sft"`` tunes a causal LM on prompt/response or chat-message records (loss on the
    answers only); ``task="classify"`` tunes a sequence-classification head plus LoRA.
    ``max_steps > 0`` overrides ``epochs``. ``class_weight="balanced"`` reweights the loss
    for imbalanced label sets. ``lora_r`` and ``lora_dropout`` left at None take the task's
    default from :data:`LORA_DEFAULTS`; ``lora_alpha`` defaults to twice the rank.
    """

    base: str = ""  # empty: AIGC_LLM for sft, AIGC_ENCODER for classify
    task: str = "sft"
    name: str | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    target_modules: list[str] | None = None
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 512
    eval_fraction: float = 0.1
    eval_file: str | None = None
    early_stopping_patience: int = 2
    seed: int = 42
    prompt_col: str = "prompt"
    response_col: str = "response"
    messages_col: str = "messages"
    system_col: str | None = None
    text_col: str = "text"
    label_col: str = "label"
    class_weight: str | None = None
    save_steps: int | None = None
    logging_steps: int = 10
    load_in_4bit: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    r: InitVar[int | None] = None  # deprecated spelling of lora_r
    alpha: InitVar[int | None] = None  # deprecated spelling of lora_alpha
    dropout: InitVar[float | None] = None  # deprecated spelling of lora_dropout
    # where an empty base comes from (None: the environment's); not saved with the config
    settings: InitVar[Settings | None] = None

    def __post_init__(
        self, r: int | None, alpha: int | None, dropout: float | None, settings: Settings | None
    ) -> None:
        if self.task not in TASKS:
            raise AigcError(f"unknown task {self.task!r} (use 'sft' or 'classify')")
        for old, value in (("r", r), ("alpha", alpha), ("dropout", dropout)):
            if value is not None:
                warnings.warn(
                    f"LoraTrainingConfig({old}=...) is deprecated; use {_RENAMED[old]}=",
                    FutureWarning,
                    stacklevel=3,
                )
                if getattr(self, _RENAMED[old]) is None:
                    setattr(self, _RENAMED[old], value)
        if not self.base:
            from aigc_apps.settings import get_settings

            settings = settings or get_settings()
            classify = self.task == "classify"
            self.base = settings.default_encoder if classify else settings.default_llm
        defaults = LORA_DEFAULTS[self.task]
        if self.lora_r is None:
            self.lora_r = int(defaults["lora_r"])
        if self.lora_alpha is None:
            self.lora_alpha = 2 * self.lora_r
        if self.lora_dropout is None:
            self.lora_dropout = float(defaults["lora_dropout"])
        if self.class_weight not in (None, "balanced"):
            raise AigcError(f"unknown class_weight {self.class_weight!r} (use 'balanced')")
        if self.lora_r <= 0 or self.batch_size <= 0 or self.grad_accum <= 0 or self.max_length <= 8:
            raise AigcError("lora_r, batch_size and grad_accum must be positive, max_length > 8")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise AigcError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise AigcError(
                f"max_steps must be positive, or -1 for no limit (got {self.max_steps})"
            )
        if self.max_steps == -1 and not self.epochs > 0:
            raise AigcError(f"epochs must be positive (got {self.epochs}): nothing would train")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise AigcError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if isinstance(self.target_modules, str):
            self.target_modules = [m.strip() for m in self.target_modules.split(",") if m.strip()]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoraTrainingConfig:
        """Build from a dict; unknown keys land in ``extra`` so older files still load."""
        data = {_RENAMED.get(k, k): v for k, v in data.items()}
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        unknown = {k: v for k, v in data.items() if k not in known}
        if unknown:
            kwargs["extra"] = {**kwargs.get("extra", {}), **unknown}
        return cls(**kwargs)

    def save_pretrained(self, directory: str | Path) -> Path:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        target = path / CONFIG_NAME
        target.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return target

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> LoraTrainingConfig:
        """Load from a folder holding ``aigc_lora_config.json`` or ``aigc_training.json``."""
        path = Path(directory)
        for candidate in (path / CONFIG_NAME, path / "aigc_training.json", path):
            if candidate.is_file():
                try:
                    data = json.loads(candidate.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise AigcError(f"{candidate}: unreadable config ({exc})") from None
                return cls.from_dict(data.get("config", data))
        raise AigcError(f"{path}: no {CONFIG_NAME} or aigc_training.json found")

    def resolve_target_modules(self, model_type: str) -> list[str] | str | None:
        """Explicit ``target_modules``, else the table above, else PEFT's default table.

        ``["all-linear"]`` adapts every linear layer but the output head (PEFT's shorthand):
        more capacity than attention-only LoRA, for tasks far from the base's pre-training.
        """
        if self.target_modules == ["all-linear"]:
            return "all-linear"
        if self.target_modules:
            return list(self.target_modules)
        if model_type in _TARGETS:
            return list(_TARGETS[model_type])
        try:
            from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
        except ImportError:  # pragma: no cover - very old peft
            return None
        found = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type)
        return list(found) if found else None
