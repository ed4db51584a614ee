"""A rich progress bar for transformers' Trainer (its tqdm bars are switched off).

Shows steps done, elapsed/remaining time and the latest loss; evaluation results are
printed as one line each. Only the main process draws, so ``accelerate launch`` stays quiet.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback


class RichProgressCallback(TrainerCallback):
    """Progress bar on stderr (so ``--json`` output on stdout stays clean)."""

    def __init__(self, console: Console | None = None, description: str = "training") -> None:
        self.console = console or Console(file=sys.stderr)
        self.description = description
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.close()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            self.description, total=state.max_steps, completed=state.global_step, info=""
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=state.global_step)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if self._progress is None or self._task is None or not logs:
            return
        if "loss" in logs:
            self._progress.update(self._task, info=f"loss {logs['loss']:.4f}")
        evals = {k[5:]: v for k, v in logs.items() if k.startswith("eval_") and "runtime" not in k}
        if evals:
            shown = "  ".join(
                f"{k} {v:.4f}"
                for k, v in evals.items()
                if isinstance(v, float) and "per_second" not in k
            )
            self._progress.console.print(f"step {state.global_step}: eval {shown}")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the live display (also called when training is interrupted)."""
        if self._progress is not None:
            self._progress.stop()
        self._progress, self._task = None, None
