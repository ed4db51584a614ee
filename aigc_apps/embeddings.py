"""Sentence embeddings: a Hugging Face encoder with mean pooling and L2 normalisation.

This reproduces sentence-transformers' all-MiniLM-L6-v2 recipe (mean over real tokens, then
unit length) with plain ``transformers``, so the SDK does not need sentence-transformers and
contrastive tuning (:mod:`aigc_apps.encoder_tuning`) trains exactly what :class:`Encoder`
serves. Folders written by ``tune_encoder`` load directly, full weights or a LoRA adapter.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aigc_apps.errors import AdapterError
from aigc_apps.fileio import atomic_dir
from aigc_apps.models import check_adapter_dir, load_adapter, resolve_model, select_device
from aigc_apps.settings import Settings, get_settings

ADAPTER_CONFIG = "adapter_config.json"


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of token vectors where ``mask`` is 1 (padding does not dilute the mean)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def embed_batch(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Unit-length float32 sentence vectors for a tokenised batch (differentiable).

    On CUDA the transformer runs under bfloat16 autocast where supported (several times
    faster); pooling and normalisation stay in float32.
    """
    device = batch["input_ids"].device
    fast = device.type == "cuda" and torch.cuda.is_bf16_supported()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
        out = model(**batch)
    pooled = mean_pool(out.last_hidden_state.float(), batch["attention_mask"])
    return nn.functional.normalize(pooled, p=2, dim=-1)


def load_encoder_model(name: str, settings: Settings | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for an alias, folder or hub id; a LoRA folder is merged into its base.
    ``settings`` say where converted aliases live (None: the environment's)."""
    from transformers import AutoModel, AutoTokenizer

    folder = Path(name).expanduser()
    if not (folder / ADAPTER_CONFIG).is_file():
        path = resolve_model(name, settings)
        return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    check_adapter_dir(folder)
    base_name = json.loads((folder / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not base_name:
        raise AdapterError(f"{folder / ADAPTER_CONFIG}: names no base model")
    base_path = resolve_model(base_name, settings)
    has_tokenizer = (folder / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(folder if has_tokenizer else base_path)
    model = load_adapter(AutoModel.from_pretrained(base_path), folder)
    return model.merge_and_unload(), tokenizer


class Encoder:
    """Turns texts into L2-normalised float32 vectors; cosine similarity is a dot product."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: str | torch.device | None = None,
        max_length: int = 256,
        batch_size: int = 64,
        name: str | None = None,
    ) -> None:
        self.device = select_device(str(device) if device is not None else None)
        self.model: Any = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.name = name

    @classmethod
    def from_pretrained(
        cls,
        name: str | Path | None = None,
        device: str | torch.device | None = None,
        max_length: int = 256,
        batch_size: int = 64,
        *,
        settings: Settings | None = None,
    ) -> Encoder:
        """Load ``name``: an alias (``minilm-l6``), a local folder, a hub id or a tuned folder.

        ``None`` name or device: ``settings``' (default: the environment's) default encoder
        (``AIGC_ENCODER``) and device (``AIGC_DEVICE``).
        """
        settings = settings or get_settings()
        name = str(name) if name is not None else settings.default_encoder
        model, tokenizer = load_encoder_model(name, settings)
        return cls(
            model, tokenizer, device=device if device is not None else settings.device,
            max_length=max_length, batch_size=batch_size, name=name,
        )

    @classmethod
    def cached(
        cls, name: str | Path | None = None, device: str | None = None,
        *, settings: Settings | None = None,
    ) -> Encoder:
        """A process-wide shared Encoder, so apps do not reload the model on every call.

        Keyed by resolved path, device and the folder's modification time (a folder re-tuned in
        place is reloaded). Do not change the settings of a shared instance. ``None`` name or
        device: as :meth:`from_pretrained`.
        """
        settings = settings or get_settings()
        path = resolve_model(str(name) if name is not None else settings.default_encoder, settings)
        dev = str(select_device(device or settings.device))
        stamp = max((f.stat().st_mtime_ns for f in Path(path).glob("*")), default=0)
        return _cached_encoder(path, dev, stamp)

    @property
    def dim(self) -> int:
        """Length of each embedding vector."""
        return int(self.model.config.hidden_size)

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def encode(
        self,
        texts: str | Iterable[str],
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Embed ``texts`` as a float32 array [n, dim] of unit vectors, in input order.

        Texts are batched longest first so each batch pads to similar lengths.
        """
        items = [texts] if isinstance(texts, str) else list(texts)
        bad = next((i for i, t in enumerate(items) if not isinstance(t, str)), None)
        if bad is not None:
            raise ValueError(f"texts[{bad}] is {type(items[bad]).__name__}, expected str")
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        bs = max(1, batch_size or self.batch_size)
        order = np.argsort([-len(t) for t in items], kind="stable")
        starts: Iterable[int] = range(0, len(items), bs)
        if show_progress:
            from rich.progress import track

            starts = track(starts, total=-(-len(items) // bs), description="Embedding")
        with torch.inference_mode():
            for start in starts:
                idx = order[start : start + bs]
                batch = self._tokenize([items[i] for i in idx])
                out[idx] = embed_batch(self.model, batch).cpu().numpy()
        return out

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """Write model and tokenizer as a plain folder that ``from_pretrained`` reads back."""
        with atomic_dir(out_dir) as tmp:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
        return Path(out_dir)

    def __repr__(self) -> str:
        return f"Encoder(name={self.name!r}, dim={self.dim}, device={str(self.device)!r})"


@functools.lru_cache(maxsize=4)
def _cached_encoder(path: str, device: str, stamp: int) -> Encoder:
    return Encoder.from_pretrained(path, device=device)
