"""The recommender: fit every model, then serve for-user, similar and explanations.

Training follows the evaluation protocol one level down: each user's latest *training* event
is held out, the collaborative models and the interest model are fitted on the rest, and the
ranker learns to pick the held-out event out of the candidates. A small random share of the
held-out items also loses all its training events ("simulated cold items"), so the ranker
learns how far to trust text similarity when behaviour says nothing. The collaborative
models are then refitted on everything for serving.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.settings import Settings

from .cold import cold_matches, default_threshold
from .content import ContentModel, TextEncoder, load_encoder
from .dataset import EVENT_WEIGHTS, Catalog, Interactions
from .explain import Evidence, reasons_for
from .features import CandidateFeatures, FeatureBuilder, UserContext, hold_out
from .interest import InterestConfig, InterestModel, default_encoder
from .persistence import FORMAT, Fitted, ModelFormatError, load, read_meta, save
from .ranker import KINDS, Ranker, validate

__all__ = [
    "FORMAT",
    "ModelFormatError",
    "Recommendation",
    "RecommendationList",
    "Recommender",
    "RecommenderConfig",
]


@dataclass
class RecommenderConfig:
    """``encoder``: content encoder (alias, folder, ``hashing`` or None for no text model;
    default: the workspace's ``AIGC_ENCODER`` when the config is made); ``interest``: tuned
    interest model settings, None to skip it; ``event_weights``: how much each event type
    counts in the collaborative model (a purchase more than a view); ``cold_threshold``: the
    text similarity to a user's history (or stated interest) an item with no interactions
    needs to be shown to them (:mod:`.cold`; None: the value chosen on validation data for
    the encoder, 0.65 for minilm-l6, 0.55 for hashing)."""

    l2: float = 100.0
    window: int = 5
    n_candidates: int = 200
    encoder: str | None = field(default_factory=default_encoder)
    interest: InterestConfig | None = field(default_factory=InterestConfig)
    ranker: str = "auto"
    sim_cold_fraction: float = 0.05
    cold_slots: int = 1
    cold_threshold: float | None = None
    max_ranker_users: int = 5000
    seed: int = 0
    event_weights: dict[str, float] = field(default_factory=lambda: dict(EVENT_WEIGHTS))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RecommenderConfig:
        raw = dict(raw)
        if raw.get("interest") is not None:
            raw["interest"] = InterestConfig(**raw["interest"])
        return cls(**raw)


@dataclass
class Recommendation:
    item_id: str
    title: str
    score: float
    reasons: list[str] = field(default_factory=list)


@dataclass
class RecommendationList:
    user: str | None
    items: list[Recommendation]
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"user": self.user, "note": self.note, "items": [asdict(r) for r in self.items]}


class Recommender:
    """``config`` holds every hyper-parameter; :meth:`fit` (or :meth:`from_pretrained`) sets
    ``catalog``, ``log``, ``content``, ``interest``, ``features`` (the serving
    :class:`CandidateFeatures`), ``ranker`` and ``info`` (the training report)."""

    def __init__(
        self, config: RecommenderConfig | None = None, *, settings: Settings | None = None
    ) -> None:
        self.config = config or RecommenderConfig()
        self.settings = settings  # the workspace's, for the parts (None: the environment's)
        self.info: dict[str, Any] = {}
        # indices of withdrawn items (the store's; set by the service): never recommended
        self.withdrawn = np.zeros(0, np.int64)

    # ---------------------------------------------------------------- training
    def fit(
        self,
        catalog: Catalog,
        log: Interactions,
        *,
        encoder: TextEncoder | None = None,
        content_vectors: np.ndarray | None = None,
    ) -> Recommender:
        """Fit content, interest, collaborative models and the ranker on ``log``.

        ``encoder`` replaces the configured content encoder; ``content_vectors`` are the
        catalogue's embeddings when already known (they skip encoding)."""
        cfg = self.config
        if len(log) == 0:
            raise DataError("no events to train on")
        if cfg.ranker not in KINDS:
            raise ValueError(f"unknown ranker kind {cfg.ranker!r} ({', '.join(KINDS)})")
        clock = _Clock()
        self.catalog, self.log = catalog, log
        with clock("content"):
            self.content = self._fit_content(catalog, encoder, content_vectors)
        heldout = hold_out(
            log, max_users=cfg.max_ranker_users, cold_fraction=cfg.sim_cold_fraction, seed=cfg.seed
        )
        with clock("interest"):
            self.interest = self._fit_interest(catalog, heldout.inner)
        with clock("features"):
            rows = self._fit_features(heldout.inner).rows(heldout)
        with clock("ranker"):
            self.ranker = Ranker(cfg.ranker, seed=cfg.seed).fit(rows.x, rows.y)
        with clock("collaborative"):  # serve with every event
            self.features = self._fit_features(log)
        self._index_users()
        self.info = {
            **clock.report(),
            "ranker": self.ranker.kind_,
            "ranker_rows": len(rows.y),
            "ranker_users": rows.n_users,
            "candidate_recall": round(rows.n_users / max(1, len(heldout.users)), 4),
            "simulated_cold_items": len(heldout.simulated_cold),
            "interest_pairs": getattr(self.interest, "pairs_used", 0),
            "items": len(catalog),
            "users": log.n_users,
            "events": len(log),
        }
        self.info["inner_validation"] = validate(
            self.ranker, rows.x, rows.y, rows.groups, seed=cfg.seed + 1
        )
        return self

    def _fit_content(
        self, catalog: Catalog, encoder: TextEncoder | None, vectors: np.ndarray | None
    ) -> ContentModel | None:
        """Item text embeddings (None without an encoder)."""
        if encoder is None and not self.config.encoder and vectors is None:
            return None
        enc = encoder or (
            load_encoder(self.config.encoder, self.settings) if self.config.encoder else None
        )
        return ContentModel(enc, settings=self.settings).fit(  # type: ignore[arg-type]
            catalog, vectors
        )

    def _fit_interest(self, catalog: Catalog, inner: Interactions) -> InterestModel | None:
        """The two-tower interest model, tuned on the events the ranker does not predict."""
        self._work: Path | None = None
        if self.config.interest is None:
            return None
        self._work = Path(tempfile.mkdtemp(prefix="aigc-rec-interest-"))
        weakref.finalize(self, shutil.rmtree, self._work, True)  # save_pretrained copies it
        return InterestModel(self.config.interest).fit(catalog, inner, self._work / "encoder")

    def _fit_features(self, log: Interactions) -> CandidateFeatures:
        """Collaborative models on ``log`` beside the fitted text models."""
        return self._new_features().fit(log, content=self.content, interest=self.interest)

    def _new_features(self) -> CandidateFeatures:
        cfg = self.config
        return CandidateFeatures(l2=cfg.l2, window=cfg.window, n_candidates=cfg.n_candidates)

    def _index_users(self) -> None:
        self._user_index = {name: u for u, name in enumerate(self.log.users)}
        self._hist, self._bounds = self.log.histories(), self.log.bounds()

    @property
    def cold_threshold(self) -> float:
        """The text similarity an item with no interactions needs to enter a top-k."""
        if self.config.cold_threshold is not None:
            return self.config.cold_threshold
        return default_threshold(self.config.encoder)

    @property
    def builder(self) -> FeatureBuilder:
        """The serving feature builder (its ``ease``, ``transitions``, ``popularity``...)."""
        return self.features.builder_

    def _evidence(self) -> Evidence:
        """What :func:`~.explain.reasons_for` reads of this model."""
        return Evidence(self.catalog, self.builder, self.content, self.cold_threshold)

    # ---------------------------------------------------------------- serving
    def _score(
        self, ctx: UserContext, exclude: np.ndarray | None, only: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        sig = self.features.signals(ctx)
        if len(self.withdrawn):
            gone = self.withdrawn
            exclude = gone if exclude is None else np.concatenate([exclude, gone])
        cand = self.features.candidates(sig, exclude=exclude, only=only)
        if len(ctx.history):
            scores = self.ranker.score(self.features.matrix(sig, cand))
            if ctx.text_vec is not None:  # reciprocal-rank fusion with the free-text match
                scores = _rrf(scores, sig["text_query"][cand])
        else:
            pop = sig["pop_365d"][cand]
            scores = sig["text_query"][cand] + 0.05 * pop / max(float(pop.max()), 1.0)
        order = np.argsort(-scores, kind="stable")
        return cand[order], np.asarray(scores)[order], sig

    def _top_k(
        self,
        ctx: UserContext,
        cand: np.ndarray,
        scores: np.ndarray,
        sig: dict[str, np.ndarray],
        k: int,
        bar: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` candidates, cold items only above the bar, with ``cold_slots``
        new-arrival slots at the end.

        An item nobody has interacted with yet has no collaborative signal, so the ranker
        cannot tell a relevant new arrival from junk. Such an item stays in the list only if
        its text is similar to the user's history or stated interest by at least
        ``cold_threshold`` (:mod:`.cold`). Since a cold item cannot earn a collaborative
        score, a shop would rarely show one: the most similar cold candidate that clears the
        bar takes the last slot. Its score stays its own. ``bar=False`` (a ranking restricted
        to chosen items, as the evaluation's "among cold items") only orders.
        """
        cold_at = np.flatnonzero(sig["is_cold"][cand] > 0)
        if not bar:
            return cand[:k], scores[:k]
        if len(cold_at):
            sim, _ = cold_matches(self.content, ctx, cand[cold_at])
            passed = sim >= self.cold_threshold
            keep = np.ones(len(cand), dtype=bool)
            keep[cold_at[~passed]] = False
            order = {int(c): s for c, s in zip(cand[cold_at[passed]], sim[passed], strict=True)}
            cand, scores = cand[keep], scores[keep]
        top, top_scores = cand[:k], scores[:k]
        if self.config.cold_slots <= 0 or not len(cold_at) or len(top) < k:
            return top, top_scores
        cold = np.array([c for c in cand[k:] if int(c) in order], np.int64)
        if len(cold) == 0:
            return top, top_scores
        slots = min(self.config.cold_slots, k, len(cold))
        best = cold[np.argsort([-order[int(c)] for c in cold], kind="stable")[:slots]]
        where = {int(c): n for n, c in enumerate(cand)}
        top = np.concatenate([top[: k - len(best)], best])
        return top, np.array([scores[where[int(i)]] for i in top])

    def rank_history(
        self,
        history: np.ndarray,
        times: np.ndarray,
        k: int = 10,
        exclude: np.ndarray | None = None,
        only: np.ndarray | None = None,
    ) -> np.ndarray:
        """Top-``k`` item indices for a history (the evaluation's entry point)."""
        ctx = self.features.context(history, times)
        cand, scores, sig = self._score(ctx, exclude, only)
        return self._top_k(ctx, cand, scores, sig, k, bar=only is None)[0]

    def user_events(self, user: str) -> tuple[np.ndarray, np.ndarray]:
        u = self._user_index.get(user)
        if u is None:
            return np.zeros(0, np.int64), np.zeros(0)
        return self._hist[u], self.log.ts[self._bounds[u] : self._bounds[u + 1]]

    def recommend(
        self,
        user: str | None = None,
        *,
        k: int = 10,
        exclude_seen: bool = True,
        events: list[tuple[str, float]] | None = None,
        text: str | None = None,
        explain: bool = False,
    ) -> RecommendationList:
        """Top-``k`` for a known user, a history of ``(item_id, timestamp)`` events, or free text.

        A user with neither history nor text gets the recently popular items and a note.
        """
        note = None
        if events is not None:
            known = [(self.catalog.index[i], t) for i, t in events if i in self.catalog.index]
            if len(known) < len(events):
                note = (
                    f"{len(events) - len(known)} events name items the model does not know; ignored"
                )
            known.sort(key=lambda e: e[1])
            history = np.array([i for i, _ in known], np.int64)
            times = np.array([t for _, t in known], float)
        else:
            history, times = (
                self.user_events(user) if user is not None else (np.zeros(0, np.int64), np.zeros(0))
            )
        if not len(history) and not text:
            pop = self.builder.popularity
            top = pop.top(k + len(self.withdrawn), end=float(pop.times[-1]), days=30)
            top = top[~np.isin(top, self.withdrawn)][:k]
            why = f"unknown user {user!r}" if user is not None else "no history or interest given"
            items = [
                Recommendation(
                    self.catalog.ids[i],
                    self.catalog.titles[i],
                    float(pop.counts[i]),
                    ["popular right now"] if explain else [],
                )
                for i in top
            ]
            return RecommendationList(user, items, f"{why}: showing popular items")
        ctx = self.features.context(history, times, text)
        cand, scores, sig = self._score(ctx, history if exclude_seen else None)
        top, top_scores = self._top_k(ctx, cand, scores, sig, k)
        explained = (
            reasons_for(self._evidence(), ctx, [int(i) for i in top], sig) if explain else None
        )
        out = [
            Recommendation(
                self.catalog.ids[i], self.catalog.titles[i], round(float(s), 4),
                explained[n] if explained is not None else [],
            )
            for n, (i, s) in enumerate(zip(top, top_scores, strict=True))
        ]
        return RecommendationList(user, out, note)

    def similar(self, item_id: str, k: int = 10) -> list[Recommendation]:
        """Items like ``item_id``: text similarity plus co-interaction (EASE, transitions).

        At most ``k`` other items (fewer when the catalogue is smaller); never ``item_id``."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if item_id not in self.catalog.index:
            raise NotFoundError(f"unknown item {item_id!r}")
        j = self.catalog.index[item_id]
        n = len(self.catalog)
        score = np.zeros(n, np.float32)
        parts = []
        if self.content is not None:
            parts.append(self.content.V @ self.content.V[j])
        parts.append(self.builder.ease.scores(np.array([j])))
        parts.append(self.builder.transitions.scores(np.array([j])))
        for p in parts:
            top = float(np.abs(p).max())
            if top > 0:
                score += p / top
        others = np.flatnonzero(np.isfinite(score))
        others = others[others != j]  # never the item itself, never a non-finite score
        others = others[~np.isin(others, self.withdrawn)]
        top_idx = others[np.argsort(-score[others], kind="stable")[:k]]
        return [
            Recommendation(self.catalog.ids[i], self.catalog.titles[i], round(float(score[i]), 4))
            for i in top_idx
        ]

    # ---------------------------------------------------------------- persistence
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write every fitted part to ``folder`` (see :mod:`.persistence`)."""
        fitted = Fitted(
            self.config.to_dict(), self.info, self.catalog, self.log, self.ranker, self.content,
            self.interest, self.features.state(),
        )
        return save(fitted, Path(folder))

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, encoder: TextEncoder | None = None,
        settings: Settings | None = None,
    ) -> Recommender:
        """A model written by :meth:`save_pretrained`; ``encoder`` replaces the saved
        content encoder's name (the vectors are saved, only new texts need it)."""
        folder = Path(folder)
        meta = read_meta(folder)
        model = cls(RecommenderConfig.from_dict(meta["config"]), settings=settings)
        cfg = model.config
        fitted = load(folder, meta, encoder, encoder_name=cfg.encoder, interest=cfg.interest,
                      settings=settings)
        model.info, model.catalog, model.log = fitted.info, fitted.catalog, fitted.log
        model.ranker, model.content, model.interest = fitted.ranker, fitted.content, fitted.interest
        model.features = model._new_features().load_state(
            fitted.collaborative, content=model.content, interest=model.interest
        )
        model._index_users()
        return model


def _rrf(a: np.ndarray, b: np.ndarray, k: float = 20.0) -> np.ndarray:
    ra = np.argsort(np.argsort(-a, kind="stable"), kind="stable")
    rb = np.argsort(np.argsort(-b, kind="stable"), kind="stable")
    return 1.0 / (k + ra) + 1.0 / (k + rb)


class _Clock:
    """Wall time of each named training step, and of the whole fit."""

    def __init__(self) -> None:
        self.started, self.cpu_started = time.perf_counter(), time.process_time()
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        tick = time.perf_counter()
        yield
        self.timings[step] = time.perf_counter() - tick

    def report(self) -> dict[str, Any]:
        return {
            "train_seconds": round(time.perf_counter() - self.started, 1),
            "train_cpu_seconds": round(time.process_time() - self.cpu_started, 1),
            "timings": {k: round(v, 1) for k, v in self.timings.items()},
        }
