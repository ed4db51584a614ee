"""Step-wise batched decoding: many prompts share each forward pass of a causal LM.

:class:`BatchDecoder` keeps one key/value cache for all its rows (left-padded, as
``generate`` pads a batch) and runs ONE forward pass per decoding step for every row. Each
row has its own decoding settings (greedy or sampled with its own temperature, top-k,
top-p and seeded random generator), its own ``max_new_tokens`` and stop strings, and, on a
PEFT model, its own LoRA adapter (PEFT's mixed-batch ``adapter_names``; rows without one
run the bare base). Rows that finish leave the cache at once; new rows are prefilled
together and join the running batch at the next step, their cache left-padded to the
running one's length (so joining needs plain ``DynamicLayer`` caches, which Llama, Qwen,
Mistral without sliding windows... use; see :attr:`BatchDecoder.can_join`). On those, a
prompt head that many requests share (a system message) is prefilled once and each row from
the tokens after it (:mod:`~aigc_apps.engines.prefix`).

Greedy rows give the text ``Generator.generate`` gives for the same prompt alone: the same
prompt ids, positions, masks and argmax; only floating-point rounding differs with the
batch's shape, as it does for ``generate_batch``. It is not thread-safe: one thread drives
it (the serving engine's worker).
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from aigc_apps.engines.prefix import Prefix, PrefixStore
from aigc_apps.generation import GenerationConfig, _held_back, cut_at_stop

if TYPE_CHECKING:
    from aigc_apps.generation import Generator

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch
MIN_TEMPERATURE = 1e-5  # below it sampling is greedy: dividing would overflow float32


@dataclass(eq=False)
class Row:
    """One prompt being answered; ``tag`` is the caller's handle (e.g. a reply queue)."""

    prompt_ids: list[int]
    config: GenerationConfig
    adapter: str | None = None
    tag: Any = None
    generated: list[int] = field(default_factory=list)
    emitted: str = ""  # text handed out so far
    text: str = ""  # the reply once finished (stop strings cut)
    finish_reason: str | None = None
    rng: torch.Generator | None = None

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        return len(self.generated)


@dataclass
class Update:
    """What one step did to a row: the newly visible text; ``row.finish_reason`` once done."""

    row: Row
    text: str

    @property
    def finished(self) -> bool:
        return self.row.finish_reason is not None


class BatchDecoder:
    """Rows of a shared batch, advanced one token per :meth:`step`.

    ``add`` prefills new rows (giving each its first token), ``step`` gives every row its
    next token, ``drop`` removes rows whose consumer went away. Finished rows (EOS, a stop
    string, ``max_new_tokens``) leave by themselves.
    """

    def __init__(self, generator: Generator, *, prefix_cache: bool = True) -> None:
        self.generator = generator
        self.tokenizer = generator.tokenizer
        self.rows: list[Row] = []
        self.eos_ids = generator.eos_token_ids
        self.pad_id = int(self.tokenizer.pad_token_id)
        self._cache: Any = None
        self._mask: torch.Tensor | None = None  # [rows, cache length], 1 = a real token
        self._pos: torch.Tensor | None = None  # [rows, 1] position of each row's last token
        self._last: torch.Tensor | None = None  # [rows, 1] the token each row feeds next
        params = inspect.signature(_base_model(generator.model).forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._keep_last = "logits_to_keep" in params
        from transformers import DynamicCache

        # prompt heads are reused where the cache is plain layers (no sliding windows)
        self._plain = _plain_layers(DynamicCache(config=generator.model.config))
        self.prefixes: PrefixStore | None = (
            PrefixStore() if prefix_cache and self._plain else None
        )
        self.prefix_computed = 0  # head tokens prefilled for the store
        self.prefix_reused = 0  # row tokens not prefilled because their head was stored

    # -- public -------------------------------------------------------------------------

    @property
    def can_join(self) -> bool:
        """Whether new rows may join a running batch (plain dynamic cache layers only)."""
        return not self.rows or _plain_layers(self._cache)

    def add(self, rows: Sequence[Row]) -> list[Update]:
        """Prefill ``rows``, join them to the batch, and give each a first token.

        Rows that start with a known prompt head (:mod:`~aigc_apps.engines.prefix`) are
        prefilled from the tokens after it; rows of much different lengths in separate
        passes (prefill is compute-bound here: padding is work, batching saves none)."""
        if not rows:
            return []
        if self.rows and not self.can_join:
            raise RuntimeError("this model's cache cannot take rows into a running batch")
        heads = self._heads(rows)
        if not self._plain:  # one pass: these caches cannot be merged
            return self._add(rows, None)
        updates: list[Update] = []
        for group in _groups(rows, heads):
            updates.extend(self._add(group, heads[id(group[0])]))
        return updates

    def _heads(self, rows: Sequence[Row]) -> dict[int, Prefix | None]:
        """The stored head each row starts with (learning new ones first: what a row
        shares with the prompt before it)."""
        if self.prefixes is None:
            return {id(r): None for r in rows}
        for row in rows:
            wanted = self.prefixes.wanted(row.adapter, row.prompt_ids)
            if wanted is not None:
                self.prefixes.put(row.adapter, self._prefill_head(wanted, row))
        return {id(r): self.prefixes.find(r.adapter, r.prompt_ids) for r in rows}

    def _prefill_head(self, ids: tuple[int, ...], row: Row) -> Prefix:
        from transformers import DynamicCache

        device = self.generator.device
        tokens = torch.tensor([ids], device=device)
        pos = torch.arange(len(ids), device=device).unsqueeze(0)
        cache = DynamicCache(config=self.generator.model.config)
        self._forward(tokens, torch.ones_like(tokens), pos, cache, [row])
        self.prefix_computed += len(ids)
        layers: list[Any] = list(cache.layers)  # plain DynamicLayers (see __init__)
        return Prefix(ids, [(layer.keys, layer.values) for layer in layers])

    def _add(self, rows: Sequence[Row], head: Prefix | None) -> list[Update]:
        """Prefill ``rows`` (all after the same ``head``, or none) in one pass."""
        device = self.generator.device
        skip = len(head) if head is not None else 0
        width = max(len(r.prompt_ids) for r in rows) - skip
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            own = row.prompt_ids[skip:]
            ids[i, width - len(own):] = torch.tensor(own)
            mask[i, width - len(own):] = 1
            if row.config.temperature > 0 and row.rng is None:
                row.rng = torch.Generator(device=device)
                seed = row.config.seed if row.config.seed is not None else random.getrandbits(63)
                row.rng.manual_seed(int(seed) & (2**63 - 1))  # any int a client sends
        ids, mask = ids.to(device), mask.to(device)
        pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0) + skip
        from transformers import DynamicCache

        cache = DynamicCache(config=self.generator.model.config)
        if head is not None:  # the head's keys and values, one copy per row
            n = len(rows)
            for i, (k, v) in enumerate(head.layers):
                cache.update(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1), i)
            mask = torch.cat([mask.new_ones((n, skip)), mask], dim=1)
            self.prefix_reused += skip * n
        logits = self._forward(ids, mask, pos, cache, rows)
        tokens = self._choose(logits, rows)
        if self.rows:
            self._merge(cache, mask)
        else:
            self._cache, self._mask = cache, mask
            self._pos, self._last = pos[:, -1:], tokens
            self.rows = list(rows)
            return self._advance(tokens)
        assert self._pos is not None and self._last is not None
        self._pos = torch.cat([self._pos, pos[:, -1:]])
        self._last = torch.cat([self._last, tokens])
        self.rows.extend(rows)
        return self._advance(tokens, start=len(self.rows) - len(rows))

    def step(self) -> list[Update]:
        """One forward pass for every row: each gets its next token."""
        if not self.rows:
            return []
        assert self._mask is not None and self._pos is not None and self._last is not None
        mask = torch.cat([self._mask, self._mask.new_ones((len(self.rows), 1))], dim=1)
        pos = self._pos + 1
        logits = self._forward(self._last, mask, pos, self._cache, self.rows)
        self._mask, self._pos = mask, pos
        self._last = self._choose(logits, self.rows)
        return self._advance(self._last)

    def drop(self, rows: Sequence[Row]) -> None:
        """Remove ``rows`` from the batch (and their cache); unknown rows are ignored."""
        gone = {id(r) for r in rows}
        keep = [i for i, r in enumerate(self.rows) if id(r) not in gone]
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.reset()
            return
        assert self._mask is not None and self._pos is not None and self._last is not None
        index = torch.tensor(keep, device=self._mask.device)
        for layer in getattr(self._cache, "layers", []):
            if getattr(layer, "keys", None) is not None and layer.keys.numel():
                layer.batch_select_indices(index)
        self._mask, self._pos, self._last = self._mask[index], self._pos[index], self._last[index]
        self.rows = [self.rows[i] for i in keep]
        self._trim()

    def reset(self) -> None:
        self.rows, self._cache = [], None
        self._mask = self._pos = self._last = None

    # -- internals ----------------------------------------------------------------------

    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any,
        rows: Sequence[Row],
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {self._cache_arg: cache, "use_cache": True, "position_ids": pos}
        if not bool(mask.all()):  # like generate: no mask at all when nothing is padded
            kwargs["attention_mask"] = mask
        if self._keep_last:
            kwargs["logits_to_keep"] = 1
        model = self.generator.model
        if hasattr(model, "peft_config"):
            kwargs["adapter_names"] = [r.adapter or BASE_ADAPTER for r in rows]
        with torch.inference_mode():
            out = model(input_ids=ids, **kwargs)
        return out.logits[:, -1, :].float()

    def _choose(self, logits: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
        """The next token of each row: argmax, or sampled with the row's own settings."""
        tokens = logits.argmax(dim=-1)
        for i, row in enumerate(rows):
            config = row.config
            if config.temperature == 0 and config.repetition_penalty == 1:
                continue
            scores = logits[i : i + 1]
            if config.repetition_penalty != 1:
                seen = torch.tensor([row.prompt_ids + row.generated], device=scores.device)
                scores = _penalize(scores, seen, config.repetition_penalty)
            if config.temperature < MIN_TEMPERATURE:
                tokens[i] = scores.argmax(dim=-1)[0]
                continue
            probs = torch.softmax(_warp(scores, config), dim=-1)
            tokens[i] = torch.multinomial(probs, 1, generator=row.rng)[0, 0]
        return tokens.unsqueeze(-1)

    def _advance(self, tokens: torch.Tensor, start: int = 0) -> list[Update]:
        """Append each row's token, find what became visible, and retire finished rows."""
        updates = []
        for row, token in zip(self.rows[start:], tokens[:, 0].tolist(), strict=True):
            updates.append(Update(row, advance(row, int(token), self.tokenizer, self.eos_ids)))
        done = [u.row for u in updates if u.finished]
        if done:
            self.drop(done)
        return updates

    def _merge(self, cache: Any, mask: torch.Tensor) -> None:
        """Join a freshly prefilled cache to the running one, left-padding the shorter."""
        assert self._mask is not None
        width = max(self._mask.shape[1], mask.shape[1])
        assert self._cache is not None
        for old, new in zip(self._cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_left_pad(old.keys, width), _left_pad(new.keys, width)])
            old.values = torch.cat([_left_pad(old.values, width), _left_pad(new.values, width)])
        self._mask = torch.cat([_left_pad(self._mask, width, dim=1), _left_pad(mask, width, dim=1)])

    def _trim(self) -> None:
        """Drop leading cache columns that are padding for every remaining row."""
        assert self._mask is not None
        used = self._mask.any(dim=0).nonzero()
        first = int(used[0, 0]) if used.numel() else 0
        if first == 0 or not _plain_layers(self._cache):
            return
        for layer in self._cache.layers:
            layer.keys = layer.keys[:, :, first:, :]
            layer.values = layer.values[:, :, first:, :]
        self._mask = self._mask[:, first:]


def advance(row: Row, token: int, tokenizer: Any, eos_ids: set[int]) -> str:
    """Append ``token`` to ``row``, decide whether the row is finished, and return the text
    that became safe to show: nothing that could still turn out to start a stop string,
    and no half of a multi-byte character. The pieces join to ``row.text`` at the end."""
    row.generated.append(token)
    text = str(tokenizer.decode(row.generated, skip_special_tokens=True))
    stops = row.config.stop
    if token in eos_ids or (stops and any(s in text.rstrip("\ufffd") for s in stops)):
        row.finish_reason = "stop"
    elif len(row.generated) >= row.config.max_new_tokens:
        row.finish_reason = "length"
    visible = cut_at_stop(text, stops)
    if row.finish_reason is None:
        if len(visible) == len(text):
            visible = text[: len(text) - _held_back(text, stops)]
        visible = visible.rstrip("\ufffd")  # a multi-byte character still arriving
    else:
        row.text = visible
    if not visible.startswith(row.emitted):
        return ""  # decoding revised earlier text (rare): wait until it is stable
    new, row.emitted = visible[len(row.emitted):], visible
    return new


def _base_model(model: Any) -> Any:
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _plain_layers(cache: Any) -> bool:
    from transformers.cache_utils import DynamicLayer

    layers: list[Any] = list(getattr(cache, "layers", None) or [])
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def _groups(rows: Sequence[Row], heads: dict[int, Prefix | None]) -> list[list[Row]]:
    """``rows`` in prefill passes: one per head, split where padding the shorter rows to
    the longest would add more than a tenth of the pass's tokens."""
    by_head: dict[int, list[Row]] = {}
    for row in rows:
        by_head.setdefault(id(heads[id(row)]), []).append(row)
    out: list[list[Row]] = []
    for same in by_head.values():
        head = heads[id(same[0])]
        skip = len(head) if head is not None else 0
        group: list[Row] = []
        for row in sorted(same, key=lambda r: len(r.prompt_ids)):
            longest = len(row.prompt_ids) - skip
            tokens = sum(len(r.prompt_ids) - skip for r in group) + longest
            if group and longest * (len(group) + 1) > 1.1 * tokens:
                out.append(group)
                group = []
            group.append(row)
        out.append(group)
    return out


def _left_pad(t: torch.Tensor, width: int, dim: int = 2) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def _penalize(scores: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """transformers' repetition penalty: seen tokens' logits shrink toward (or below) 0."""
    picked = torch.gather(scores, 1, seen)
    picked = torch.where(picked < 0, picked * penalty, picked / penalty)
    return scores.scatter(1, seen, picked)


def _warp(scores: torch.Tensor, config: GenerationConfig) -> torch.Tensor:
    """Temperature, then top-k, then top-p, in transformers' order and with its rules."""
    scores = scores / config.temperature
    if config.top_k > 0:
        k = min(config.top_k, scores.shape[-1])
        threshold = torch.topk(scores, k)[0][..., -1, None]
        scores = scores.masked_fill(scores < threshold, float("-inf"))
    if config.top_p < 1:
        ordered, order = torch.sort(scores, descending=False)
        remove = ordered.softmax(dim=-1).cumsum(dim=-1) <= (1 - config.top_p)
        remove[..., -1:] = False
        scores = scores.masked_fill(remove.scatter(1, order, remove), float("-inf"))
    return scores
