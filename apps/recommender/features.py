"""The feature pipeline: candidate generation and the ranker's feature rows.

Each signal scores the whole catalogue for one user; candidates are the union of each
signal's top items (so a cold item found only by its text still competes); each candidate
becomes one row of :data:`FEATURES`, the ranker's input.

:class:`CandidateFeatures` follows scikit-learn's conventions (hyper-parameters in
``__init__``, which does no work; fitted attributes end in ``_``; ``fit`` returns self): it
fits the collaborative models on an event log, takes the already-fitted text models, and turns
a user into candidates and feature rows. :func:`hold_out` is the split that gives the ranker
its labels: each user's latest event, which the pipeline must not have seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aigc_apps.errors import DataError

from .collaborative import DAY, EASE, Popularity, Transitions
from .content import ContentModel, recency_weights
from .dataset import Interactions
from .interest import InterestModel

FEATURES = [
    "ease",
    "ease_recent",
    "ease_last5",
    "trans_last1",
    "trans_last3",
    "trans_recent",
    "content_profile",
    "content_last",
    "interest",
    "pop",
    "pop_30d",
    "pop_365d",
    "item_age_days",
    "is_cold",
    "history_len",
]

# Signals whose top items become candidates, and how many each contributes. ``text_query``
# (a free-text interest) is a candidate source and blended in by the recommender, not a
# ranker feature: held-out training events come with no free text.
CANDIDATE_SOURCES = {
    "ease_recent": 0.4,
    "trans_last3": 0.2,
    "content_profile": 0.15,
    "interest": 0.15,
    "text_query": 0.3,
    "pop_30d": 0.1,
}


@dataclass
class UserContext:
    """What is known about a user right now: ordered history (item indices) and times."""

    history: np.ndarray
    times: np.ndarray
    interest_vec: np.ndarray | None = None
    text_vec: np.ndarray | None = None
    now: float | None = None

    @property
    def ref_time(self) -> float:
        if self.now is not None:
            return self.now
        return float(self.times[-1]) if len(self.times) else 0.0


@dataclass
class FeatureBuilder:
    """Signals, candidates and feature rows of one user from already-fitted models."""

    ease: EASE
    transitions: Transitions
    popularity: Popularity
    content: ContentModel | None = None
    interest_V: np.ndarray | None = None
    history_cap: int = 300
    _log_pop: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._log_pop = np.log1p(self.popularity.counts)

    def signals(self, ctx: UserContext) -> dict[str, np.ndarray]:
        """Every feature as a catalogue-length vector (user constants as scalars)."""
        h = np.asarray(ctx.history, dtype=np.int64)[-self.history_cap :]
        n = self.popularity.n_items
        zero = np.zeros(n, dtype=np.float32)
        t = ctx.ref_time
        out: dict[str, np.ndarray] = {}
        # One gather of the history's EASE rows serves all three EASE features.
        weights = np.zeros((3, len(h)), dtype=np.float32)
        weights[0] = 1.0
        m = min(len(h), 100)
        if m:
            weights[1, -m:] = recency_weights(m, 10.0)
        weights[2, -5:] = 1.0
        out["ease"], out["ease_recent"], out["ease_last5"] = self.ease.scores_many(h, weights)
        out["trans_last1"] = self.transitions.scores(h[-1:])
        out["trans_last3"] = self.transitions.scores(h[-3:])
        out["trans_recent"] = self.transitions.scores(
            h[-20:], recency_weights(min(len(h), 20), 3.0)
        )
        if self.content is not None and len(h):
            out["content_profile"] = self.content.V @ self.content.profile(h)
            last = self.content.V[h[-3:]].mean(axis=0)
            out["content_last"] = self.content.V @ (last / max(float(np.linalg.norm(last)), 1e-12))
        else:
            out["content_profile"] = out["content_last"] = zero
        if self.interest_V is not None and ctx.interest_vec is not None:
            out["interest"] = self.interest_V @ ctx.interest_vec
        else:
            out["interest"] = zero
        if self.content is not None and ctx.text_vec is not None:
            out["text_query"] = self.content.V @ ctx.text_vec
        else:
            out["text_query"] = zero
        out["pop"] = self._log_pop
        out["pop_30d"] = np.log1p(self.popularity.window(t, 30))
        out["pop_365d"] = np.log1p(self.popularity.window(t, 365))
        age = (t - self.popularity.first_seen) / DAY
        out["item_age_days"] = np.where(
            np.isfinite(age), np.sign(age) * np.log1p(np.abs(age)), -1.0
        )
        out["is_cold"] = (self.popularity.counts == 0).astype(np.float32)
        out["history_len"] = np.full(n, np.log1p(len(ctx.history)), dtype=np.float32)
        return out

    def candidates(
        self,
        sig: dict[str, np.ndarray],
        n: int,
        exclude: np.ndarray | None = None,
        only: np.ndarray | None = None,
    ) -> np.ndarray:
        """Union of each source's top items, ``n`` in all at most (before de-duplication)."""
        total = len(self._log_pop)
        allowed = np.ones(total, dtype=bool)
        if only is not None:
            allowed[:] = False
            allowed[np.asarray(only, dtype=np.int64)] = True
        if exclude is not None and len(exclude):
            allowed[np.asarray(exclude, dtype=np.int64)] = False
        pool = np.flatnonzero(allowed)
        if len(pool) <= n:
            return pool
        picked: list[np.ndarray] = []
        for name, share in CANDIDATE_SOURCES.items():
            s = sig[name][pool]
            if not np.any(s):
                continue
            m = min(max(1, int(share * n)), len(pool))
            picked.append(pool[np.argpartition(-s, m - 1)[:m]])
        # Fill up with popular items so every list has enough candidates.
        picked.append(pool[np.argsort(-self._log_pop[pool], kind="stable")[: max(10, n // 10)]])
        return np.unique(np.concatenate(picked))

    @staticmethod
    def matrix(sig: dict[str, np.ndarray], cand: np.ndarray) -> np.ndarray:
        return np.stack([sig[f][cand] for f in FEATURES], axis=1).astype(np.float32)


def distinct(history: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each item once, at its latest event (order by that event kept).

    The collaborative models count a repeated item once (:meth:`Interactions.matrix`); a
    history that repeats one item fifty times would multiply that item's EASE row and
    transitions fifty-fold and its length feature with them, far outside anything the ranker
    was trained on (fifty purchases of one fantasy book then ranked crime titles at 1.0)."""
    history = np.asarray(history, np.int64)
    times = np.asarray(times, float)
    if len(history) < 2:
        return history, times
    _, last = np.unique(history[::-1], return_index=True)
    keep = np.sort(len(history) - 1 - last)
    if len(keep) == len(history):
        return history, times
    return history[keep], times[keep]


@dataclass
class HeldOut:
    """The ranker's labels: ``targets[n]`` is user ``users[n]``'s held-out next item.

    ``inner`` is the log without those events and without any event of the
    ``simulated_cold`` items, so the ranker also sees what a cold target looks like."""

    inner: Interactions
    users: np.ndarray
    targets: np.ndarray
    simulated_cold: np.ndarray


def hold_out(log: Interactions, *, max_users: int, cold_fraction: float, seed: int = 0) -> HeldOut:
    """Each user's latest event (users with at least 3 events; ``max_users`` of them at most),
    plus every event of a random ``cold_fraction`` of the held-out items."""
    rng = np.random.default_rng(seed)
    inner, users, targets = log.leave_last_out(min_history=2)
    if len(users) > max_users:
        pick = np.sort(rng.choice(len(users), max_users, replace=False))
        users, targets = users[pick], targets[pick]
    distinct = np.unique(targets)
    n_cold = round(cold_fraction * len(distinct))
    cold = rng.choice(distinct, n_cold, replace=False) if n_cold else np.zeros(0, np.int64)
    return HeldOut(inner.subset(~np.isin(inner.item, cold)), users, targets, cold)


@dataclass
class RankerRows:
    """Feature rows ``x`` of held-out users' candidates, ``y`` 1 for the held-out item;
    ``groups`` numbers the user (position in :attr:`HeldOut.users`) of each row."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray

    @property
    def n_users(self) -> int:
        return len(np.unique(self.groups))


class CandidateFeatures:
    """Candidates and their feature rows for any user, from models fitted on an event log.

    ``l2``: EASE regularisation; ``window``: transition window in steps; ``n_candidates``:
    candidates per request (before de-duplication); ``history_cap``: latest events used.
    Fitted: ``builder_`` (the :class:`FeatureBuilder`), ``content_`` and ``interest_`` (the
    text models given to :meth:`fit`, or None).
    """

    def __init__(
        self, l2: float = 100.0, window: int = 5, n_candidates: int = 200, history_cap: int = 300
    ) -> None:
        self.l2 = l2
        self.window = window
        self.n_candidates = n_candidates
        self.history_cap = history_cap

    def fit(
        self,
        log: Interactions,
        *,
        content: ContentModel | None = None,
        interest: InterestModel | None = None,
    ) -> CandidateFeatures:
        """Fit EASE, transitions and popularity on ``log``; the text models come fitted."""
        ease, transitions = EASE(self.l2).fit(log), Transitions(self.window).fit(log)
        return self._set(ease, transitions, Popularity().fit(log), content, interest)

    def state(self) -> dict[str, np.ndarray]:
        """The fitted collaborative models as named arrays (``collaborative.npz``)."""
        b = self.builder_
        return {**b.ease.state(), **b.transitions.state(), **b.popularity.state()}

    def load_state(
        self,
        state: dict[str, np.ndarray],
        *,
        content: ContentModel | None = None,
        interest: InterestModel | None = None,
    ) -> CandidateFeatures:
        """The fitted pipeline whose :meth:`state` was ``state`` (instead of :meth:`fit`)."""
        ease = EASE.from_state(state, self.l2)
        transitions = Transitions.from_state(state, self.window)
        return self._set(ease, transitions, Popularity.from_state(state), content, interest)

    def resized(
        self,
        n_items: int,
        *,
        content: ContentModel | None = None,
        interest: InterestModel | None = None,
    ) -> CandidateFeatures:
        """This fitted pipeline over a catalogue grown to ``n_items`` (items added after
        training: cold, no collaborative signal yet), with text models that cover them."""
        b = self.builder_
        out = CandidateFeatures(self.l2, self.window, self.n_candidates, self.history_cap)
        return out._set(
            b.ease.resized(n_items),
            b.transitions.resized(n_items),
            b.popularity.resized(n_items),
            content,
            interest,
        )

    def _set(
        self,
        ease: EASE,
        transitions: Transitions,
        popularity: Popularity,
        content: ContentModel | None,
        interest: InterestModel | None,
    ) -> CandidateFeatures:
        self.content_, self.interest_ = content, interest
        interest_V = interest.item_V if interest is not None else None
        self.builder_ = FeatureBuilder(
            ease, transitions, popularity, content, interest_V, self.history_cap
        )
        return self

    # ---------------------------------------------------------------- one user
    def context(
        self, history: np.ndarray, times: np.ndarray, text: str | None = None
    ) -> UserContext:
        """A serving request: history with times (may be empty) and an optional free text.

        The history is made :func:`distinct` (as the models were fitted), and the time the
        popularity and age features are read at is the user's latest event but never after
        the training log's last one: for events made after training, the windows would
        otherwise be empty and every known item look years old, a user no trained row
        resembles (the ranker then preferred any item with no interactions, even junk)."""
        history, times = distinct(history, times)
        ivec = None
        if self.interest_ is not None and len(history):
            ivec = self.interest_.user_vectors([history])[0]
        tvec = None
        if text:
            if self.content_ is None:
                raise DataError(
                    "a free-text interest needs a content encoder (train with --encoder)"
                )
            tvec = self.content_.encode([text])[0]
        trained_until = float(self.builder_.popularity.times[-1])
        now = min(float(times[-1]), trained_until) if len(times) else trained_until
        return UserContext(np.asarray(history, np.int64), np.asarray(times, float), ivec, tvec, now)

    def signals(self, ctx: UserContext) -> dict[str, np.ndarray]:
        return self.builder_.signals(ctx)

    def candidates(
        self,
        sig: dict[str, np.ndarray],
        exclude: np.ndarray | None = None,
        only: np.ndarray | None = None,
    ) -> np.ndarray:
        return self.builder_.candidates(sig, self.n_candidates, exclude=exclude, only=only)

    matrix = staticmethod(FeatureBuilder.matrix)

    # ---------------------------------------------------------------- training rows
    def rows(self, heldout: HeldOut) -> RankerRows:
        """Rows of each held-out user whose target is among their candidates.

        The pipeline must have been fitted on ``heldout.inner``: the targets are unseen."""
        inner = heldout.inner
        hist, b = inner.histories(), inner.bounds()
        ivecs = None
        if self.interest_ is not None:
            ivecs = self.interest_.user_vectors(
                [distinct(hist[u], inner.ts[b[u] : b[u + 1]])[0] for u in heldout.users]
            )
        xs, ys, gs = [], [], []
        for n, (u, target) in enumerate(zip(heldout.users, heldout.targets, strict=True)):
            ivec = ivecs[n] if ivecs is not None else None
            sig = self.signals(UserContext(*distinct(hist[u], inner.ts[b[u] : b[u + 1]]), ivec))
            cand = self.candidates(sig, exclude=hist[u])
            if target not in cand:
                continue
            xs.append(self.matrix(sig, cand))
            ys.append(cand == target)
            gs.append(np.full(len(cand), n))
        if len(xs) < 2:
            raise DataError(
                "too little history to train the ranker: need users with at least 3 events "
                f"(found {len(heldout.users)} such users)"
            )
        return RankerRows(np.concatenate(xs), np.concatenate(ys).astype(int), np.concatenate(gs))
