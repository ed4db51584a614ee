"""Texts that threads ask to embed at the same time go through the encoder in one pass.

Any server thread that embeds one text (the support bot's question, a stated interest)
competes for the cores with every other; coalescing is a property of the encoder, not of
one app, so it lives here beside :mod:`aigc_apps.embeddings`. Under ``aigc serve`` every
support customer's message is answered in its own worker thread, and each starts by
embedding its question. Eight customers at once meant eight forward passes
of the base-size encoder side by side, each with the process's intra-op threads, on the
cores the generation engine needs: on 2 CPU cores 16 questions took 8.1 s one at a time
and 3.5 s in one call. So the first thread to ask embeds its question at once; those that
ask while that pass runs wait, and the first of them embeds all the waiting questions in
the next pass (no waiting window: a lone question is never delayed). A batched vector
differs from a lone one by float rounding only (about 2e-7 here: padding is masked).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from aigc_apps.embeddings import Encoder


@dataclass(eq=False)
class _Ask:
    text: str
    vec: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass(eq=False)
class EncodeQueue:
    """Coalesces concurrent one-text :meth:`embed` calls on ``encoder`` into one ``encode``
    (held weakly where it can be: the process's queues must not keep encoders alive)."""

    encoder_ref: Callable[[], Encoder | None]
    passes: int = 0  # encoder calls made (for tests and profiles)
    _waiting: list[_Ask] = field(default_factory=list)
    _busy: bool = False
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def embed(self, text: str) -> np.ndarray:
        ask = _Ask(text)
        with self._cond:
            self._waiting.append(ask)
            while not ask.done and self._busy:
                self._cond.wait()
            if ask.done:
                return self._result(ask)
            batch, self._waiting, self._busy = self._waiting, [], True
        vecs: np.ndarray | None = None
        error: BaseException | None = None
        try:
            encoder = self.encoder_ref()
            if encoder is None:
                raise RuntimeError("the encoder was unloaded")
            vecs = encoder.encode([a.text for a in batch])
        except BaseException as exc:  # each waiting question gets the failure
            error = exc
        with self._cond:
            self.passes += 1
            for i, a in enumerate(batch):
                a.vec, a.error, a.done = (vecs[i] if vecs is not None else None), error, True
            self._busy = False
            self._cond.notify_all()
        return self._result(ask)

    @staticmethod
    def _result(ask: _Ask) -> np.ndarray:
        if ask.error is not None:
            raise ask.error
        assert ask.vec is not None
        return ask.vec


_BATCHERS: weakref.WeakKeyDictionary[Encoder, EncodeQueue] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def encode_queue(encoder: Encoder) -> EncodeQueue:
    """The process's queue for ``encoder`` (one per loaded encoder, gone with it)."""
    with _LOCK:
        try:
            batcher = _BATCHERS.get(encoder)
            if batcher is None:
                batcher = _BATCHERS[encoder] = EncodeQueue(weakref.ref(encoder))
        except TypeError:  # not weakly referable (a test double with __slots__): no sharing
            return EncodeQueue(lambda: encoder)
        return batcher
