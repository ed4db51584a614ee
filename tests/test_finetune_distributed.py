"""LoRA training on two CPU processes (DDP over gloo) through the real launchers.

One run is started by ``torchrun`` and stopped at step 3 (a callback raises on both ranks,
like Ctrl-C); ``aigc finetune --resume`` under ``accelerate launch`` then continues it from
its checkpoint. Both ranks must take steps, and only the main one may write the adapter,
the registry entry and the report. About 30 s on two cores (a tiny random model).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aigc_apps.registry import ModelRegistry

REPO = Path(__file__).resolve().parents[1]
RECORDS = [
    {"prompt": "where is my order", "response": "it ships today thanks"},
    {"prompt": "reset my password please", "response": "open account help reset"},
    {"prompt": "refund for broken item", "response": "sorry refund is open"},
    {"prompt": "hello", "response": "hi how can i help"},
] * 4
BATCH, STEPS, SAVE_EVERY, STOP_AT = 2, 6, 2, 3

# Run by torchrun in each process: train, record this rank's steps, stop at STOP_AT.
INTERRUPTED_RUN = """
import json, os, sys
from transformers import TrainerCallback
from aigc_apps.finetune import LoraTrainer, LoraTrainingConfig

base, data, out, stop_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rank = int(os.environ["RANK"])

class Steps(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        with open(f"{out}.rank{rank}.steps", "a") as f:
            f.write(f"{state.global_step} {args.world_size}\\n")
        if state.global_step == stop_at:
            raise KeyboardInterrupt

cfg = LoraTrainingConfig(base=base, max_steps=STEPS, save_steps=SAVE_EVERY, batch_size=BATCH,
                         learning_rate=5e-2, eval_fraction=0.0, max_length=64, logging_steps=1)
LoraTrainer(cfg, callbacks=[Steps()], progress=False).fit(data, out)
"""
for _name, _value in (("STEPS", STEPS), ("SAVE_EVERY", SAVE_EVERY), ("BATCH", BATCH)):
    INTERRUPTED_RUN = INTERRUPTED_RUN.replace(f"={_name}", f"={_value}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,  # AIGC_HOME and AIGC_MODELS_DIR come from the workspace fixture
        "CUDA_VISIBLE_DEVICES": "",  # CPU processes, gloo, even on a GPU machine
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _steps(path: Path) -> list[tuple[int, int]]:
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]  # type: ignore[misc]


@pytest.fixture
def interrupted(tiny_llm_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A 2-process run stopped at step STOP_AT, with its step-2 checkpoint left behind."""
    data, out, script = tmp_path / "chat.jsonl", tmp_path / "adapter", tmp_path / "run.py"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    script.write_text(INTERRUPTED_RUN)
    launcher = ["torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run = _launch([*launcher, str(script), str(tiny_llm_dir), str(data), str(out), str(STOP_AT)])
    assert run.returncode != 0, run.stdout + run.stderr
    assert "KeyboardInterrupt" in run.stderr, run.stderr[-3000:]
    return data, out


def test_two_processes_train_resume_and_write_once(
    interrupted: tuple[Path, Path], tiny_llm_dir: Path
) -> None:
    data, out = interrupted
    for rank in (0, 1):  # both ranks stepped, in a world of two
        assert _steps(out.with_name(f"adapter.rank{rank}.steps")) == [(1, 2), (2, 2), (3, 2)]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2"]
    assert not (out / "adapter_config.json").exists()
    assert ModelRegistry().list() == []  # an interrupted run registers nothing

    port = _free_port()
    # --multi_gpu with no GPU visible: accelerate's torchrun-based launcher, gloo on CPU
    # (``--cpu --num_processes 2`` would start one process, or need MPI)
    launcher = ["accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launcher += ["--main_process_port", str(port)]
    command = ["-m", "aigc_apps.cli", "finetune", "--data", str(data), "--out", str(out)]
    command += ["--base", str(tiny_llm_dir), "--max-steps", str(STEPS), "--batch-size", str(BATCH)]
    command += ["--lr", "5e-2", "--eval-fraction", "0", "--max-length", "64", "--resume", "--json"]
    run = _launch([*launcher, *command])
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)  # one JSON document: only the main process printed
    assert report["processes"] == 2 and report["adapter"] == str(out)
    assert run.stderr.count("error") == 0

    info = json.loads((out / "aigc_training.json").read_text())
    resumed_steps = STEPS - SAVE_EVERY
    assert info["global_step"] == STEPS and info["processes"] == 2
    # each rank took every resumed step on its own share of the batches
    assert info["process_samples"] == [resumed_steps * BATCH] * 2
    assert info["train_samples"] == 2 * resumed_steps * BATCH
    assert all(n > 0 for n in info["process_tokens"])
    assert info["train_tokens"] == sum(info["process_tokens"]) == report["train_tokens"]
    # the log of steps 1-2 came back from the checkpoint: every step once
    assert [h["step"] for h in info["history"] if "loss" in h] == list(range(1, STEPS + 1))
    assert not (out / "checkpoints").exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folders

    entries = ModelRegistry().list()
    assert [(e.name, e.path) for e in entries] == [("adapter", out.resolve())]

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aigc_apps.generation import Generator

    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("where is my order", return_tensors="pt")
    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval()
    with torch.inference_mode():
        before = base(**ids).logits
        tuned = PeftModel.from_pretrained(base, str(out)).eval()
        assert (tuned(**ids).logits - before).abs().max() > 1e-3  # the adapter trained
    reply = Generator.from_pretrained(adapter=out, device="cpu").generate(
        "where is my order", max_new_tokens=6
    )
    assert isinstance(reply, str)  # greedy decoding through the product path ran


def test_bad_input_under_two_processes(tiny_llm_dir: Path, tmp_path: Path) -> None:
    """A missing data file: one line per process, exit status 1, nothing written."""
    out = tmp_path / "adapter"
    command = ["-m", "aigc_apps.cli", "finetune", "--data", str(tmp_path / "missing.jsonl")]
    command += ["--out", str(out), "--base", str(tiny_llm_dir)]
    run = _launch(["torch.distributed.run", "--standalone", "--nproc_per_node", "2", *command])
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if "file not found" in line]
    assert 1 <= len(errors) <= 2 and all(line.startswith("error") for line in errors)
    assert not out.exists() and ModelRegistry().list() == []


@pytest.mark.parametrize(
    ("name", "kind", "sharding"),
    [
        ("ddp.yaml", "MULTI_GPU", None),
        ("deepspeed_zero2.yaml", "DEEPSPEED", 2),
        ("deepspeed_zero3.yaml", "DEEPSPEED", 3),
        ("fsdp.yaml", "FSDP", "FULL_SHARD"),
    ],
)
def test_example_accelerate_configs_load(name: str, kind: str, sharding: object) -> None:
    """The documented config files are valid accelerate configs of the kind they claim."""
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(REPO / "examples/accelerate" / name))
    assert config.distributed_type.name == kind and config.mixed_precision == "bf16"
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == sharding
        # ZeRO-3 can only save the adapter from gathered 16-bit weights
        assert config.deepspeed_config.get("zero3_save_16bit_model", sharding != 3)
    if kind == "FSDP":
        fsdp = config.fsdp_config
        assert fsdp["fsdp_sharding_strategy"] == sharding and fsdp["fsdp_use_orig_params"]
        assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
