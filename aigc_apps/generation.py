"""Text generation with a causal LM: chat templating, greedy or sampled, batched, streamed.

Greedy decoding (``temperature=0``, the default) is deterministic, so batch and single
generation give the same text and tests and benchmarks can compare outputs exactly.
Stop strings end generation early and are cut from the text, identically when streaming.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigc_apps.errors import AdapterError, AigcError, ModelNotFoundError
from aigc_apps.models import load_causal_lm, model_kind, resolve_model
from aigc_apps.settings import Settings, get_settings

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

Messages = list[dict[str, str]]
Prompt = str | Messages


@dataclass
class GenerationConfig:
    """How to generate; ``temperature=0`` means greedy (deterministic).

    ``top_k`` (0 = off) and ``top_p`` only apply when sampling; ``seed`` makes sampling
    repeatable. ``stop`` strings end generation and are not part of the returned text.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.0
    stop: list[str] = field(default_factory=list)
    system_prompt: str | None = None
    use_chat_template: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise AigcError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise AigcError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise AigcError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise AigcError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        self.stop = [s for s in self.stop if s]

    def replace(self, **overrides: Any) -> GenerationConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **overrides)


class _StopOnStrings:
    """Stops each sequence once its generated text contains a stop string."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stops: list[str], prompt_len: int):
        self.tokenizer, self.stops, self.prompt_len = tokenizer, stops, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **_: Any) -> torch.Tensor:
        import torch

        texts = self.tokenizer.batch_decode(
            input_ids[:, self.prompt_len :], skip_special_tokens=True
        )
        # a trailing U+FFFD is usually a multi-byte character still being generated
        done = [any(s in text.rstrip("\ufffd") for s in self.stops) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` up to the earliest occurrence of any stop string."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that could still grow into a stop string."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


class Generator:
    """A causal LM with its tokenizer, ready to answer prompts.

    Prompts are plain strings (wrapped as one user turn, with the optional system prompt,
    in the tokenizer's chat template) or lists of chat messages ``{"role", "content"}``.

    The model holder the engines run. Every app path of a process (the support bot, the
    server's routes, ``aigc generate``, the demo) generates through
    :class:`~aigc_apps.engines.chat_model.ChatModel`, whose pool loads one Generator per
    base model and shares it; :meth:`from_pretrained` itself always loads a fresh copy (a
    model of your own, to train, merge or wrap).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        config: GenerationConfig | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or GenerationConfig()
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"  # generation continues from the right edge

    @classmethod
    def from_pretrained(
        cls,
        model: str | None = None,
        adapter: str | Path | None = None,
        device: str | None = None,
        load_in_4bit: bool = False,
        config: GenerationConfig | None = None,
        *,
        settings: Settings | None = None,
    ) -> Generator:
        """Load ``model`` (alias, folder or id; default ``settings.default_llm``, the
        settings defaulting to the environment's).

        An ``adapter`` brings its own base model: ``model`` may be left out, and naming
        another base is an error rather than a silently mismatched pair.
        """
        settings = settings or get_settings()
        name = adapter_base(model, adapter) if adapter is not None else None
        name = name or model or settings.default_llm
        if model_kind(name) != "causal-lm":
            raise ModelNotFoundError(
                f"model '{name}' is an encoder, not a text generator: use a causal LM "
                "(see `aigc models bases`)"
            )
        lm, tokenizer = load_causal_lm(
            name, adapter=adapter, device=device, load_in_4bit=load_in_4bit, settings=settings
        )
        return cls(lm, tokenizer, config)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def count_tokens(self, text: str) -> int:
        """Number of tokens in ``text`` (no special tokens added)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- prompts ----------------------------------------------------------------------

    def format_prompt(self, prompt: Prompt, config: GenerationConfig | None = None) -> str:
        """The exact text the model continues: chat-templated unless disabled or absent."""
        config = config or self.config
        templated = self._templated(config)
        if isinstance(prompt, str):
            if not templated:
                return f"{config.system_prompt}\n\n{prompt}" if config.system_prompt else prompt
            messages: Messages = [{"role": "user", "content": prompt}]
        else:
            messages = [dict(m) for m in prompt]
            bad = [i for i, m in enumerate(messages) if "role" not in m or "content" not in m]
            if bad:
                raise AigcError(f"chat message {bad[0]} needs 'role' and 'content' keys")
        if config.system_prompt and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": config.system_prompt})
        if not templated:
            turns = [f"{m['role']}: {m['content']}" for m in messages]
            return "\n".join([*turns, "assistant:"])
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return str(text)

    def _templated(self, config: GenerationConfig) -> bool:
        """Whether prompts go through the chat template (which writes its own special tokens)."""
        return config.use_chat_template and bool(self.tokenizer.chat_template)

    def prompt_ids(self, prompt: Prompt, config: GenerationConfig | None = None) -> list[int]:
        """The token ids :meth:`generate` feeds the model for ``prompt`` (unpadded)."""
        config = config or self.config
        text = self.format_prompt(prompt, config)
        ids = self.tokenizer(text, add_special_tokens=not self._templated(config))["input_ids"]
        return list(ids)

    @property
    def eos_token_ids(self) -> set[int]:
        """Tokens that end a reply: the model's generation config's, else the tokenizer's."""
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return {int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None}

    def _inputs(self, prompts: Sequence[Prompt], config: GenerationConfig) -> Any:
        texts = [self.format_prompt(p, config) for p in prompts]
        batch = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=not self._templated(config)
        )
        return batch.to(self.device)

    # -- generation -------------------------------------------------------------------

    def _resolve(
        self, config: GenerationConfig | None, overrides: dict[str, Any]
    ) -> GenerationConfig:
        config = config or self.config
        return config.replace(**overrides) if overrides else config

    def _generate_kwargs(self, config: GenerationConfig, prompt_len: int) -> dict[str, Any]:
        from transformers import StoppingCriteriaList

        gen = copy.deepcopy(self.model.generation_config)
        gen.max_new_tokens = config.max_new_tokens
        gen.max_length = None
        gen.pad_token_id = self.tokenizer.pad_token_id
        if gen.eos_token_id is None:
            gen.eos_token_id = self.tokenizer.eos_token_id
        gen.repetition_penalty = config.repetition_penalty
        gen.do_sample = config.temperature > 0
        if gen.do_sample:
            gen.temperature, gen.top_p, gen.top_k = config.temperature, config.top_p, config.top_k
        else:
            gen.temperature, gen.top_p, gen.top_k = None, None, None
        kwargs: dict[str, Any] = {"generation_config": gen}
        if config.stop:
            stopper = _StopOnStrings(self.tokenizer, config.stop, prompt_len)
            kwargs["stopping_criteria"] = StoppingCriteriaList([stopper])
        return kwargs

    def _seeded(self, config: GenerationConfig) -> AbstractContextManager[Any]:
        """Seed sampling without disturbing the caller's global random state."""
        import torch

        if config.seed is None or config.temperature == 0:
            return nullcontext()
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        rng = torch.random.fork_rng(devices=devices)

        class _Seeded:
            def __enter__(self) -> None:
                rng.__enter__()
                torch.manual_seed(int(config.seed or 0))

            def __exit__(self, *exc: Any) -> None:
                rng.__exit__(*exc)

        return _Seeded()

    def _run(self, inputs: Any, config: GenerationConfig, **extra: Any) -> Any:
        import torch

        prompt_len = inputs["input_ids"].shape[1]
        kwargs = self._generate_kwargs(config, prompt_len)
        with torch.inference_mode(), self._seeded(config):
            output = self.model.generate(**inputs, **kwargs, **extra)
        return output[:, prompt_len:]

    def _decode(self, ids: Any, config: GenerationConfig) -> list[str]:
        texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [cut_at_stop(t, config.stop) for t in texts]

    def generate(
        self, prompt: Prompt, config: GenerationConfig | None = None, **overrides: Any
    ) -> str:
        """The model's reply to one prompt (a string or a list of chat messages)."""
        return self.generate_batch([prompt], config, **overrides)[0]

    def generate_batch(
        self,
        prompts: Sequence[Prompt],
        config: GenerationConfig | None = None,
        batch_size: int = 8,
        **overrides: Any,
    ) -> list[str]:
        """Replies to many prompts, ``batch_size`` at a time with left padding."""
        config = self._resolve(config, overrides)
        if isinstance(prompts, str):
            raise TypeError("generate_batch takes a list of prompts; use generate() for one")
        results: list[str] = []
        for start in range(0, len(prompts), max(1, batch_size)):
            inputs = self._inputs(prompts[start : start + batch_size], config)
            results.extend(self._decode(self._run(inputs, config), config))
        return results

    def stream(
        self, prompt: Prompt, config: GenerationConfig | None = None, **overrides: Any
    ) -> Iterator[str]:
        """Yield the reply in pieces as it is generated; the pieces join to ``generate()``."""
        from transformers import TextIteratorStreamer

        config = self._resolve(config, overrides)
        inputs = self._inputs([prompt], config)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        failure: list[BaseException] = []

        def work() -> None:
            try:
                self._run(inputs, config, streamer=streamer)
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        text, emitted = "", 0
        try:
            for piece in streamer:
                text += piece
                visible = cut_at_stop(text, config.stop)
                if len(visible) == len(text):
                    visible = text[: len(text) - _held_back(text, config.stop)]
                if len(visible) > emitted:
                    yield visible[emitted:]
                    emitted = len(visible)
        finally:
            thread.join()
        if failure:
            raise failure[0]
        rest = cut_at_stop(text, config.stop)[emitted:]
        if rest:
            yield rest


def adapter_base(model: str | None, adapter: str | Path) -> str:
    """The base model an SFT adapter was trained on; ``model``, if given, must be the same."""
    from aigc_apps.finetune.merge import open_adapter

    folder = open_adapter(adapter)
    if folder.base_path is None:
        raise AdapterError(f"'{adapter}' is a full (merged) model: pass it as the model")
    if folder.task != "sft":
        raise AdapterError(f"adapter '{adapter}' is a {folder.task} adapter, not a generator's")
    if model is not None and str(Path(resolve_model(model)).resolve()) != str(
        Path(folder.base_path).resolve()
    ):
        trained_on = folder.info.get("base_model") or folder.base_path
        raise AdapterError(
            f"adapter '{adapter}' was trained on '{trained_on}', not '{model}': drop the "
            "model option (the adapter brings its base)"
        )
    return folder.base_path
