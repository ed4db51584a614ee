"""LoRA training end to end on tiny random models: SFT, resume, classify, merge, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aigc_apps import ModelRegistry
from aigc_apps.errors import AdapterError, AigcError, DataError, ModelNotFoundError
from aigc_apps.finetune import (
    LoraTrainer,
    LoraTrainingConfig,
    TextClassifier,
    merge_adapter,
)

REPO = Path(__file__).resolve().parents[1]
SFT_RECORDS = [
    {"prompt": "where is my order", "response": "it ships today thanks"},
    {"prompt": "reset my password please", "response": "open account help reset"},
    {"prompt": "refund for broken item", "response": "sorry refund is open"},
    {"prompt": "hello", "response": "hi how can i help"},
] * 3


def sft_config(base: Path, **overrides) -> LoraTrainingConfig:
    params = dict(
        base=str(base),
        epochs=5,
        batch_size=4,
        learning_rate=5e-2,
        logging_steps=1,
        eval_fraction=0.0,
        max_length=64,
    )
    params.update(overrides)
    return LoraTrainingConfig(**params)


def greedy(model, tokenizer, prompt: str, n: int = 8) -> list[int]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    ids = ids.to(model.device)  # the trainer's model sits on the GPU when there is one
    with torch.inference_mode(), gpu_autocast(model):
        out = model.generate(input_ids=ids, max_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[0, ids.shape[1] :].tolist()


def logits(model, tokenizer, text: str = "where is my order") -> torch.Tensor:
    with torch.inference_mode(), gpu_autocast(model):
        return model(**tokenizer(text, return_tensors="pt").to(model.device)).logits.float().cpu()


def gpu_autocast(model):
    """On a GPU the trained model keeps the trainer's bf16 autocast; run the others alike."""
    cuda = model.device.type == "cuda"
    return torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=cuda)


@pytest.fixture(scope="module")
def sft_run(tiny_llm_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sft") / "adapter"
    trainer = LoraTrainer(sft_config(tiny_llm_dir), progress=False, register=False)
    result = trainer.fit(SFT_RECORDS, out)
    return trainer, result, out


def test_sft_loss_falls_and_folder_is_complete(sft_run) -> None:
    _, result, out = sft_run
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert len(losses) == 15  # 3 steps per epoch, logged every step
    first_epoch, last_epoch = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last_epoch < 0.8 * first_epoch
    assert result.global_step == 15 and result.train_tokens > 0 and result.tokens_per_second > 0
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "checkpoints").exists()  # removed after a finished run
    info = json.loads((out / "aigc_training.json").read_text())
    assert info["task"] == "sft" and info["config"]["lora_r"] == 8
    assert info["train_tokens"] == result.train_tokens and len(info["data_hash"]) == 64
    assert info["metrics"]["train_loss"] == pytest.approx(losses[-1])
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folders


def test_saved_adapter_reloads_identically(sft_run, tiny_llm_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    trainer, _, out = sft_run
    tok = trainer.tokenizer
    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).to(trainer.model.device).eval()
    base_logits = logits(base, tok)
    reloaded = PeftModel.from_pretrained(base, str(out)).eval()
    atol = 1e-5 if base.device.type == "cpu" else 0.1  # bf16 keeps ~3 significant digits
    assert torch.allclose(logits(reloaded, tok), logits(trainer.model, tok), atol=atol)
    assert (logits(reloaded, tok) - base_logits).abs().max() > 1e-3  # the adapter does something
    for prompt in ("where is my order", "hello"):
        assert greedy(reloaded, tok, prompt) == greedy(trainer.model, tok, prompt)


def test_merged_model_gives_same_output(sft_run, tiny_llm_dir: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, _, out = sft_run
    merged_dir = merge_adapter(out, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    tok = AutoTokenizer.from_pretrained(merged_dir)
    assert not (merged_dir / "adapter_config.json").exists()
    # against the saved adapter in float32 on the CPU (the trained model may run bf16 on a GPU)
    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    adapter = PeftModel.from_pretrained(base, str(out)).eval()
    assert torch.allclose(logits(merged, tok), logits(adapter, tok), atol=1e-4)
    assert greedy(merged, tok, "hello") == greedy(adapter, tok, "hello")
    info = json.loads((merged_dir / "aigc_training.json").read_text())
    assert info["merged_from"] == str(out.resolve())


def test_resume_after_interruption(tiny_llm_dir: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    class StepRecorder(TrainerCallback):
        """Records the steps it sees; stops the run like Ctrl-C at ``stop_at``."""

        def __init__(self, stop_at: int = 0) -> None:
            self.stop_at, self.steps = stop_at, []

        def on_step_end(self, args, state, control, **kwargs):
            self.steps.append(state.global_step)
            if state.global_step == self.stop_at:
                raise KeyboardInterrupt

    out = tmp_path / "adapter"
    cfg = sft_config(tiny_llm_dir, max_steps=6, save_steps=2, epochs=1)
    with pytest.raises(KeyboardInterrupt):
        LoraTrainer(cfg, callbacks=[StepRecorder(3)], progress=False).fit(SFT_RECORDS, out)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2"]
    assert not (out / "adapter_config.json").exists()

    recorder = StepRecorder()
    result = LoraTrainer(cfg, callbacks=[recorder], progress=False).fit(
        SFT_RECORDS, out, resume=True
    )
    assert result.resumed_from is not None and result.resumed_from.endswith("checkpoint-2")
    assert recorder.steps == [3, 4, 5, 6] and result.global_step == 6
    # the log history of steps 1-2 comes back from the checkpoint, without duplicates
    assert [h["step"] for h in result.history if "loss" in h] == [1, 2, 3, 4, 5, 6]
    assert (out / "adapter_config.json").exists() and not (out / "checkpoints").exists()
    assert ModelRegistry().get("adapter").path == out.resolve()


def test_resume_without_checkpoint_starts_fresh_with_eval_data(
    tiny_llm_dir: Path, tmp_path: Path
) -> None:
    from io import StringIO

    from rich.console import Console

    buffer = StringIO()
    cfg = sft_config(tiny_llm_dir, max_steps=2)
    trainer = LoraTrainer(cfg, console=Console(file=buffer, width=120), register=False)
    result = trainer.fit(
        SFT_RECORDS[:4], tmp_path / "fresh", eval_data=SFT_RECORDS[4:6], resume=True
    )
    assert result.resumed_from is None and result.global_step == 2
    shown = " ".join(buffer.getvalue().split())  # long temp paths wrap the line
    assert "no checkpoint" in shown and "starting fresh" in shown
    assert "step 1: eval loss" in shown and "2/2" in shown  # rich progress bar and eval lines
    assert [h["step"] for h in result.history if "eval_loss" in h][:2] == [1, 2]
    assert result.metrics["eval_perplexity"] == pytest.approx(np.exp(result.metrics["eval_loss"]))


def test_classify_tiny_encoder(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "requests.csv"
    lines = (REPO / "data/core/classify_sample.csv").read_text().splitlines()
    data.write_text("\n".join([*lines, "a row without a label,"]) + "\n")
    cfg = LoraTrainingConfig(
        base=str(tiny_encoder_dir),
        task="classify",
        epochs=2,
        batch_size=16,
        learning_rate=5e-3,
        eval_fraction=0.2,
        class_weight="balanced",
        name="triage",
    )
    trainer = LoraTrainer(cfg, progress=False)
    result = trainer.fit(data, tmp_path / "clf")
    assert result.labels == ["billing", "returns", "shipping"]
    assert [s.reason for s in result.skipped] == ["empty 'label'"]
    assert {"eval_accuracy", "eval_f1_macro", "eval_loss"} <= set(result.metrics)
    assert 0.0 <= result.metrics["eval_f1_macro"] <= 1.0
    assert len([h for h in result.history if "eval_loss" in h]) >= 2  # once per epoch (+ final)
    info = json.loads((result.adapter_dir / "aigc_training.json").read_text())
    assert info["labels"] == result.labels and info["eval_examples"] == 18
    assert info["skipped_rows"] == ["row 92: empty 'label'"]
    assert ModelRegistry().get("triage").role == "classify"

    clf = TextClassifier.from_pretrained(result.adapter_dir, device="cpu")
    texts = ["where is my parcel", "I was charged twice", "return these boots", "x" * 2000]
    proba = clf.predict_proba(texts, batch_size=2)
    assert proba.shape == (4, 3) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    batch = trainer.tokenizer(texts[:3], padding=True, return_tensors="pt")
    with torch.inference_mode():
        scores = trainer.model(**batch.to(trainer.model.device)).logits.float().cpu()
    expected = torch.softmax(scores, -1).numpy()
    assert np.allclose(proba[:3], expected, atol=1e-4)  # sorting by length keeps the order
    assert clf.predict(texts) == [clf.labels[i] for i in proba.argmax(axis=1)]
    assert clf.predict_proba([]).shape == (0, 3)


def test_classify_llama_head_sets_pad_token(tiny_llm_dir: Path, tmp_path: Path) -> None:
    records = [{"text": f"refund item {i}", "label": "returns"} for i in range(6)]
    records += [{"text": f"where is parcel {i}", "label": "shipping"} for i in range(6)]
    cfg = LoraTrainingConfig(
        base=str(tiny_llm_dir), task="classify", epochs=1, batch_size=4, eval_fraction=0
    )
    trainer = LoraTrainer(cfg, progress=False, register=False)
    result = trainer.fit(records, tmp_path / "llama-clf")
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS" and "score" in config["modules_to_save"]
    clf = TextClassifier.from_pretrained(result.adapter_dir)
    assert clf.model.config.pad_token_id == trainer.tokenizer.pad_token_id
    assert set(clf.predict(["refund item", "where is parcel now please"])) <= {
        "returns",
        "shipping",
    }


# --- errors: one line, nothing left behind -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("missing.jsonl", None, DataError),
        ("empty.jsonl", "", DataError),
        ("data.parquet", "x", DataError),
        ("cols.jsonl", '{"question": "a", "answer": "b"}\n', DataError),
        ("bytes.csv", b"prompt,response\nhi,\xff\n", DataError),
        ("ok.jsonl", None, ModelNotFoundError),
    ],
)
def test_bad_input_leaves_nothing(
    tiny_llm_dir: Path, tmp_path: Path, name: str, content, error: type[AigcError]
) -> None:
    path = tmp_path / name
    base = str(tiny_llm_dir)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    if error is ModelNotFoundError:
        path.write_text('{"prompt": "a", "response": "b"}\n')
        base = str(tmp_path / "no-such-model")
    out = tmp_path / "out"
    with pytest.raises(error) as err:
        LoraTrainer(sft_config(base), progress=False).fit(path, out)
    assert "\n" not in str(err.value)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if path.exists() else [])


def test_refuses_to_overwrite_a_foreign_folder(tiny_llm_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "docs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(AdapterError, match="not an adapter folder"):
        LoraTrainer(sft_config(tiny_llm_dir), progress=False).fit(SFT_RECORDS, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_corrupt_adapter_folder(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "adapter_config.json").write_text("{not json")
    (bad / "adapter_model.safetensors").write_bytes(b"garbage")
    for call in (
        lambda: TextClassifier.from_pretrained(bad),
        lambda: merge_adapter(bad, tmp_path / "merged"),
        lambda: TextClassifier.from_pretrained(tmp_path / "nowhere"),
    ):
        with pytest.raises(AdapterError) as err:
            call()
        assert "\n" not in str(err.value)
    assert not (tmp_path / "merged").exists()


@pytest.mark.slow
def test_minilm_learns_request_types(tmp_path: Path) -> None:
    """The bundled MiniLM with LoRA separates billing/shipping/returns well above chance."""
    cfg = LoraTrainingConfig(
        base="minilm-l6", task="classify", epochs=2, batch_size=16, learning_rate=1e-2
    )
    result = LoraTrainer(cfg, progress=False).fit(
        REPO / "data/core/classify_sample.csv", tmp_path / "requests"
    )
    assert result.metrics["eval_accuracy"] >= 0.8  # 3 balanced classes: chance is 0.33
    clf = TextClassifier.from_pretrained(result.adapter_dir)
    proba = clf.predict_proba(["I was charged twice for one order", "my parcel never arrived"])
    assert proba.shape == (2, 3)
