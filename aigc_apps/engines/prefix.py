"""Key/values of a prompt head that many requests share, computed once and reused.

The support bot's prompts all start with the same system message (and the chat template's
tokens around it): about 80 of a grounded prompt's ~230 tokens. Prefill is compute-bound
on a CPU, so batching rows does not make it cheaper; not computing the shared head again
does. A causal model's keys and values of a prompt's first ``n`` tokens depend on those
tokens only, so the head's are computed once (per adapter: a LoRA changes them) and every
later row that starts with it is prefilled from its own tokens after the head.

The head is learned, not configured: the longest common prefix of a prompt and the one
before it (of the same adapter), when it is at least ``min_tokens`` long. A stored head
that a new prompt shares only in part is cut to the shared part (a slice, nothing to
compute), so prompts that alternate between two heads do not recompute them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

MIN_PREFIX_TOKENS = 16  # shorter heads save less than their bookkeeping costs
MAX_HEADS = 4  # one per adapter in use, the least recently used goes first


@dataclass
class Prefix:
    """A prompt head and its per-layer keys and values, each ``[1, heads, len, dim]``."""

    ids: tuple[int, ...]
    layers: list[tuple[torch.Tensor, torch.Tensor]]

    def __len__(self) -> int:
        return len(self.ids)

    def cut(self, n: int) -> Prefix:
        """The first ``n`` tokens of this head (views: a causal model's head of a head)."""
        return Prefix(self.ids[:n], [(k[:, :, :n], v[:, :, :n]) for k, v in self.layers])


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PrefixStore:
    """The heads known per adapter (``None``: the bare base) and the last prompt of each."""

    def __init__(self, min_tokens: int = MIN_PREFIX_TOKENS, size: int = MAX_HEADS) -> None:
        self.min_tokens, self.size = min_tokens, size
        self._heads: OrderedDict[str | None, Prefix] = OrderedDict()
        self._last: dict[str | None, tuple[int, ...]] = {}

    def find(self, adapter: str | None, ids: Sequence[int]) -> Prefix | None:
        """The stored head ``ids`` starts with (cut to what they share), if long enough.

        At least one token of ``ids`` is left after the head: its logits give the row's
        first token."""
        head = self._heads.get(adapter)
        if head is None:
            return None
        n = min(common_length(head.ids, ids), len(ids) - 1)
        if n < self.min_tokens:
            return None
        if n < len(head):
            head = self._heads[adapter] = head.cut(n)
        self._heads.move_to_end(adapter)
        return head

    def wanted(self, adapter: str | None, ids: Sequence[int]) -> tuple[int, ...] | None:
        """A head worth computing for ``ids``: what they share with the adapter's previous
        prompt, when long enough and no stored head fits; ``ids`` become that prompt."""
        last, self._last[adapter] = self._last.get(adapter), tuple(ids)
        if last is None or self.find(adapter, ids) is not None:
            return None
        n = min(common_length(last, ids), len(ids) - 1)
        return tuple(ids[:n]) if n >= self.min_tokens else None

    def put(self, adapter: str | None, head: Prefix) -> None:
        self._heads[adapter] = head
        self._heads.move_to_end(adapter)
        while len(self._heads) > self.size:
            self._heads.popitem(last=False)

    def clear(self) -> None:
        self._heads.clear()
        self._last.clear()
