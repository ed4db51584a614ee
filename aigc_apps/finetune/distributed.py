"""What ``LoraTrainer`` needs to run unchanged under ``accelerate launch`` or ``torchrun``.

Data parallelism itself is transformers' ``Trainer`` (through accelerate): it wraps the
model in DDP (gloo on CPU, NCCL on GPU), shards the batches and all-reduces gradients.
What is left to the SDK is *who writes*: every process reads the data and builds the
model, but only the main process writes files, the registry entry and the terminal
output. Before the process group exists (reading data, loading the model) the rank comes
from the launcher's environment variables; afterwards from the Trainer's ``Accelerator``.
"""

from __future__ import annotations

import os
from typing import Any

import torch

# torchrun / accelerate set RANK; Open MPI and Intel MPI (accelerate's multi-CPU) theirs.
_RANK_VARS = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
_WORLD_VARS = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def _env_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return default


def launch_rank() -> int:
    """This process's rank as the launcher set it (0 when not launched by one)."""
    return _env_int(_RANK_VARS, 0)


def launch_world_size() -> int:
    """How many processes the launcher started (1 when not launched by one)."""
    return _env_int(_WORLD_VARS, 1)


def process_device(device: torch.device) -> torch.device:
    """``cuda`` without an index means this process's own GPU (``LOCAL_RANK``) under a launcher.

    (Only the 4-bit base is placed before the Trainer; the Trainer places everything else.)
    """
    local = _env_int(("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"), -1)
    if device.type == "cuda" and device.index is None and local >= 0:
        return torch.device("cuda", local)
    return device


def is_main_launch_process() -> bool:
    return launch_rank() == 0


def quiet_replica() -> None:
    """On processes other than the main one, switch off transformers' own progress bars.

    (Loading weights and saving shards draw tqdm bars on every process otherwise.)
    """
    if not is_main_launch_process():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def gather_counts(accelerator: Any, *counts: int) -> list[list[int]]:
    """``counts`` from every process, in rank order: one row per process.

    A collective call: every process must make it. With one process it just wraps
    ``counts``.
    """
    if accelerator is None or accelerator.num_processes <= 1:
        return [list(counts)]
    local = torch.tensor([list(counts)], dtype=torch.long, device=accelerator.device)
    gathered = accelerator.gather(local)
    return [[int(v) for v in row] for row in gathered.cpu().tolist()]


def wait_for_everyone(accelerator: Any) -> None:
    """A barrier across processes (a no-op for one process)."""
    if accelerator is not None and accelerator.num_processes > 1:
        accelerator.wait_for_everyone()


def sharded_state_dict(trainer: Any) -> Any:
    """The full state dict when the weights are sharded (FSDP, DeepSpeed ZeRO-3), else None.

    A collective call, made on every process before the main one saves, as
    ``Trainer.save_model`` does (only the main process's copy is complete); under DDP and
    ZeRO-1/2 every process holds all the weights and the main one saves its own.
    """
    if getattr(trainer, "is_fsdp_enabled", False):
        return trainer.accelerator.get_state_dict(trainer.model)
    if getattr(trainer, "is_deepspeed_enabled", False):
        engine = trainer.deepspeed
        if engine.config.get("zero_optimization", {}).get("stage") == 3:
            return engine._zero3_consolidated_16bit_state_dict(exclude_frozen_parameters=True)
    return None
