"""Reading trained adapter folders back, and merging them into plain model folders.

A merged folder has no PEFT dependency at inference time (``AutoModel*.from_pretrained``
loads it) and runs slightly faster, at the cost of a full copy of the base weights.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigc_apps.errors import AdapterError, ModelNotFoundError
from aigc_apps.fileio import atomic_dir
from aigc_apps.models import check_adapter_dir, dtype_kwargs, load_adapter, resolve_model

TRAINING_FILE = "aigc_training.json"


@dataclass
class AdapterFolder:
    """An adapter (or merged) folder: its training record, task, labels and base model."""

    path: Path
    info: dict[str, Any]
    task: str
    labels: list[str] | None
    base_path: str | None  # None for merged folders (the folder is the model)

    @property
    def max_length(self) -> int:
        return int(self.info.get("config", {}).get("max_length", 512))


@contextmanager
def quiet_head_init() -> Iterator[None]:
    """Hide transformers' "newly initialized: classifier" report; a fresh head is intended."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise AdapterError(f"{path}: expected a JSON object")
    return data


def open_adapter(adapter_dir: str | Path) -> AdapterFolder:
    """Check a folder and find its base model; one-line AdapterError when it is unusable."""
    path = Path(adapter_dir).expanduser()
    if not path.is_dir():
        raise AdapterError(f"adapter folder '{adapter_dir}' does not exist")
    info = _read_json(path / TRAINING_FILE) if (path / TRAINING_FILE).exists() else {}
    if (path / "adapter_config.json").exists():
        check_adapter_dir(path)
        peft_config = _read_json(path / "adapter_config.json")
        task = info.get("task") or (
            "classify" if peft_config.get("task_type") == "SEQ_CLS" else "sft"
        )
        recorded = str(peft_config.get("base_model_name_or_path") or "")
        base = str(info.get("base_model") or recorded)
        try:
            base_path: str | None = resolve_model(base)
        except ModelNotFoundError:
            if not recorded or not Path(recorded).is_dir():
                raise
            base_path = recorded  # alias gone, but the folder it resolved to still exists
    elif (path / "config.json").exists():
        task, base_path = info.get("task") or "sft", None
    else:
        raise AdapterError(f"'{adapter_dir}' has neither adapter_config.json nor config.json")
    labels = info.get("labels")
    if task == "classify" and base_path is not None and not labels:
        raise AdapterError(f"{path / TRAINING_FILE}: classification adapter without labels")
    return AdapterFolder(path, info, task, labels, base_path)


def load_model(folder: AdapterFolder, *, merge: bool = True) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for an adapter or merged folder, LoRA merged in when asked."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    source = folder.base_path or str(folder.path)
    try:
        tok_dir = folder.path if (folder.path / "tokenizer_config.json").exists() else source
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        kwargs = dtype_kwargs(torch.float32)
        if folder.task == "classify":
            if folder.base_path is not None:
                labels = folder.labels or []
                kwargs.update(
                    num_labels=len(labels),
                    id2label=dict(enumerate(labels)),
                    label2id={name: i for i, name in enumerate(labels)},
                )
            with quiet_head_init():  # the head's weights come from the adapter
                model = AutoModelForSequenceClassification.from_pretrained(source, **kwargs)
            if model.config.pad_token_id is None:
                model.config.pad_token_id = tokenizer.pad_token_id
        else:
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AdapterError(f"cannot load model for '{folder.path}': {first}") from exc
    if folder.base_path is not None:
        model = load_adapter(model, folder.path)
        if merge:
            model = model.merge_and_unload()
    return model.eval(), tokenizer


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Fold a LoRA adapter into its base weights and save a normal model folder at ``out_dir``.

    Written to a temp folder first and renamed into place; an existing ``out_dir`` is only
    replaced when it is itself a model folder.
    """
    folder = open_adapter(adapter_dir)
    if folder.base_path is None:
        raise AdapterError(f"'{adapter_dir}' is already a merged model folder")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / "config.json").exists():
        raise AdapterError(f"{out}: folder is not empty and is not a model folder")
    model, tokenizer = load_model(folder, merge=True)
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        info = {**folder.info, "task": folder.task, "merged_from": str(folder.path.resolve())}
        (tmp / TRAINING_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out
