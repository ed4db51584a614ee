"""Deprecated: :class:`AdapterRegistry` is now a view of :class:`aigc_apps.ModelRegistry`.

Kept for one release so that code written against 0.1.0 keeps working; its entries are
core entries (``app="core"``) whose role is the training task.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from aigc_apps.registry import ModelEntry, ModelRegistry
from aigc_apps.settings import Settings

AdapterInfo = ModelEntry


class AdapterRegistry(ModelRegistry):
    """0.1.0's adapter catalogue; use :class:`~aigc_apps.ModelRegistry` instead."""

    def __init__(self, settings: Settings | None = None, *, url: str | None = None) -> None:
        warnings.warn(
            "AdapterRegistry is deprecated; use aigc_apps.ModelRegistry",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(url, settings=settings)

    def register(  # type: ignore[override]
        self,
        name: str,
        path: str | Path,
        *,
        base_model: str,
        task: str,
        data_hash: str = "",
        metrics: dict[str, Any] | None = None,
    ) -> ModelEntry:
        return super().register(
            name, path, app="core", role=task, base=base_model, data_hash=data_hash,
            metrics=metrics,
        )

    def list(self, task: str | None = None) -> list[ModelEntry]:  # type: ignore[override]
        return super().list(role=task)

    def delete(  # type: ignore[override]
        self, name: str, *, remove_files: bool = False
    ) -> ModelEntry:
        return super().delete(name, force=True, remove_files=remove_files)
