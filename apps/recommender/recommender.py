"""The recommender: fit every model, then serve for-user, similar and explanations.

Training follows the evaluation protocol one level down: each user's latest *training* event
is held out, the collaborative models and the interest model are fitted on the rest, and the
ranker learns to pick the held-out event out of the candidates. A small random share of the
held-out items also loses all its training events ("simulated cold items"), so the ranker
learns how far to trust text similarity when behaviour says nothing. The collaborative
models are then refitted on everything for serving.
"""

from __future__ import annotations

import json
import pickle
import shutil
import tempfile
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aigc_apps.errors import DataError, ModelNotFoundError, NotFoundError

from .collaborative import EASE, Popularity, Transitions
from .content import ContentModel, TextEncoder, load_encoder
from .dataset import EVENT_WEIGHTS, Catalog, Interactions
from .explain import reasons
from .interest import InterestConfig, InterestModel
from .ranker import FEATURES, FeatureBuilder, Ranker, UserContext

FORMAT = 1


@dataclass
class RecommenderConfig:
    """``encoder``: content encoder (alias, folder, ``hashing`` or None for no text model);
    ``interest``: tuned interest model settings, None to skip it; ``event_weights``: how much
    each event type counts in the collaborative model (a purchase more than a view)."""

    l2: float = 100.0
    window: int = 5
    n_candidates: int = 200
    encoder: str | None = "minilm-l6"
    interest: InterestConfig | None = field(default_factory=InterestConfig)
    ranker: str = "auto"
    sim_cold_fraction: float = 0.05
    cold_slots: int = 1
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
    def __init__(self, config: RecommenderConfig | None = None) -> None:
        self.config = config or RecommenderConfig()
        self.info: dict[str, Any] = {}

    # ---------------------------------------------------------------- training
    def fit(
        self,
        catalog: Catalog,
        log: Interactions,
        *,
        encoder: TextEncoder | None = None,
        content_vectors: np.ndarray | None = None,
    ) -> Recommender:
        """Fit content, interest, collaborative models and the ranker on ``log``."""
        cfg = self.config
        if len(log) == 0:
            raise DataError("no events to train on")
        started, cpu_started = time.perf_counter(), time.process_time()
        timings: dict[str, float] = {}
        self.catalog, self.log = catalog, log
        rng = np.random.default_rng(cfg.seed)

        tick = time.perf_counter()
        self.content = None
        if encoder is not None or cfg.encoder or content_vectors is not None:
            enc = encoder or (load_encoder(cfg.encoder) if cfg.encoder else None)
            self.content = ContentModel(enc).fit(catalog, content_vectors)  # type: ignore[arg-type]
        timings["content"] = time.perf_counter() - tick

        inner, users, targets = log.leave_last_out(min_history=2)
        if len(users) > cfg.max_ranker_users:
            pick = np.sort(rng.choice(len(users), cfg.max_ranker_users, replace=False))
            users, targets = users[pick], targets[pick]
        distinct = np.unique(targets)
        n_cold = round(cfg.sim_cold_fraction * len(distinct))
        sim_cold = rng.choice(distinct, n_cold, replace=False) if n_cold else np.zeros(0, np.int64)
        inner = inner.subset(~np.isin(inner.item, sim_cold))

        tick = time.perf_counter()
        self.interest = None
        self._work: Path | None = None
        if cfg.interest is not None:
            self._work = Path(tempfile.mkdtemp(prefix="aigc-rec-interest-"))
            weakref.finalize(self, shutil.rmtree, self._work, True)  # save_pretrained copies it
            self.interest = InterestModel(cfg.interest).fit(catalog, inner, self._work / "encoder")
        timings["interest"] = time.perf_counter() - tick

        tick = time.perf_counter()
        builder = self._builder(inner)
        hist, b = inner.histories(), inner.bounds()
        ivecs = self._interest_vectors([hist[u] for u in users])
        rows, labels, groups = [], [], []
        for n, (u, target) in enumerate(zip(users, targets, strict=False)):
            ctx = UserContext(
                hist[u], inner.ts[b[u] : b[u + 1]], ivecs[n] if ivecs is not None else None
            )
            sig = builder.signals(ctx)
            cand = builder.candidates(sig, cfg.n_candidates, exclude=hist[u])
            if target not in cand:
                continue
            rows.append(builder.matrix(sig, cand))
            labels.append(cand == target)
            groups.append(np.full(len(cand), n))
        timings["features"] = time.perf_counter() - tick
        if len(rows) < 2:
            raise DataError(
                "too little history to train the ranker: need users with at least 3 events "
                f"(found {len(users)} such users)"
            )
        x, y, g = np.concatenate(rows), np.concatenate(labels).astype(int), np.concatenate(groups)
        tick = time.perf_counter()
        self.ranker = Ranker(cfg.ranker, seed=cfg.seed).fit(x, y)
        timings["ranker"] = time.perf_counter() - tick
        recall = len(rows) / max(1, len(users))

        tick = time.perf_counter()
        self.builder = self._builder(log)
        timings["collaborative"] = time.perf_counter() - tick
        self._user_index = {name: u for u, name in enumerate(log.users)}
        self._hist, self._bounds = log.histories(), log.bounds()
        self.info = {
            "train_seconds": round(time.perf_counter() - started, 1),
            "train_cpu_seconds": round(time.process_time() - cpu_started, 1),
            "timings": {k: round(v, 1) for k, v in timings.items()},
            "ranker": self.ranker.fitted_kind,
            "ranker_rows": len(y),
            "ranker_users": len(rows),
            "candidate_recall": round(recall, 4),
            "simulated_cold_items": int(n_cold),
            "interest_pairs": getattr(self.interest, "pairs_used", 0),
            "items": len(catalog),
            "users": log.n_users,
            "events": len(log),
        }
        self.info["inner_validation"] = _ranker_validation(x, y, g, self.config)
        return self

    def _builder(self, log: Interactions) -> FeatureBuilder:
        return FeatureBuilder(
            ease=EASE(self.config.l2).fit(log),
            transitions=Transitions(self.config.window).fit(log),
            popularity=Popularity().fit(log),
            content=self.content,
            interest_V=self.interest.item_V if self.interest is not None else None,
        )

    def _interest_vectors(self, histories: list[np.ndarray]) -> np.ndarray | None:
        if self.interest is None:
            return None
        return self.interest.user_vectors(histories)

    # ---------------------------------------------------------------- serving
    def _context(
        self, history: np.ndarray, times: np.ndarray, text: str | None = None
    ) -> UserContext:
        ivec = None
        if self.interest is not None and len(history):
            ivec = self.interest.user_vectors([history])[0]
        tvec = None
        if text:
            if self.content is None:
                raise DataError(
                    "a free-text interest needs a content encoder (train with --encoder)"
                )
            tvec = self.content.encode([text])[0]
        now = None if len(times) else float(self.builder.popularity.times[-1])
        return UserContext(np.asarray(history, np.int64), np.asarray(times, float), ivec, tvec, now)

    def _score(
        self, ctx: UserContext, exclude: np.ndarray | None, only: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        sig = self.builder.signals(ctx)
        cand = self.builder.candidates(sig, self.config.n_candidates, exclude=exclude, only=only)
        if len(ctx.history):
            scores = self.ranker.score(self.builder.matrix(sig, cand))
            if ctx.text_vec is not None:  # reciprocal-rank fusion with the free-text match
                scores = _rrf(scores, sig["text_query"][cand])
        else:
            pop = sig["pop_365d"][cand]
            scores = sig["text_query"][cand] + 0.05 * pop / max(float(pop.max()), 1.0)
        order = np.argsort(-scores, kind="stable")
        return cand[order], np.asarray(scores)[order], sig

    def _top_k(
        self, cand: np.ndarray, scores: np.ndarray, sig: dict[str, np.ndarray], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` candidates, with ``cold_slots`` new-arrival slots at the end.

        An item nobody has interacted with yet cannot earn a collaborative score, so a shop
        would never show it. If the best-matching cold candidate (by text affinity: the free
        text, else the user's content and interest profile) matches at least as well as the
        median of the list, it takes the last slot. Its score stays its own.
        """
        top, top_scores = cand[:k], scores[:k]
        cold = cand[k:][sig["is_cold"][cand[k:]] > 0]
        if self.config.cold_slots <= 0 or len(cold) == 0 or len(top) < k:
            return top, top_scores
        affinity = (
            sig["text_query"]
            if np.any(sig["text_query"])
            else sig["content_profile"] + sig["interest"]
        )
        if not np.any(affinity):
            return top, top_scores
        slots = min(self.config.cold_slots, k, len(cold))
        best = cold[np.argsort(-affinity[cold], kind="stable")[:slots]]
        best = best[affinity[best] >= np.median(affinity[top])]
        if len(best) == 0:
            return top, top_scores
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
        cand, scores, sig = self._score(self._context(history, times), exclude, only)
        return self._top_k(cand, scores, sig, k)[0]

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
            top = pop.top(k, end=float(pop.times[-1]), days=30)
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
        ctx = self._context(history, times, text)
        cand, scores, sig = self._score(ctx, history if exclude_seen else None)
        out = []
        for i, s in zip(*self._top_k(cand, scores, sig, k), strict=True):
            because = reasons(self, ctx, int(i), sig) if explain else []
            out.append(
                Recommendation(
                    self.catalog.ids[i], self.catalog.titles[i], round(float(s), 4), because
                )
            )
        return RecommendationList(user, out, note)

    def similar(self, item_id: str, k: int = 10) -> list[Recommendation]:
        """Items like ``item_id``: text similarity plus co-interaction (EASE, transitions)."""
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
        score[j] = -np.inf
        top_idx = np.argsort(-score, kind="stable")[:k]
        return [
            Recommendation(self.catalog.ids[i], self.catalog.titles[i], round(float(score[i]), 4))
            for i in top_idx
        ]

    # ---------------------------------------------------------------- persistence
    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        b = self.builder
        arrays: dict[str, Any] = {
            **b.ease.state(),
            **b.transitions.state(),
            **b.popularity.state(),
        }
        np.savez(folder / "collaborative.npz", **arrays)
        np.savez(
            folder / "log.npz",
            user=self.log.user,
            item=self.log.item,
            ts=self.log.ts,
            weight=self.log.weight,
        )
        meta = {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "info": self.info,
            "features": FEATURES,
            "users": self.log.users,
            "catalog": {
                "ids": self.catalog.ids,
                "titles": self.catalog.titles,
                "descriptions": self.catalog.descriptions,
                "tags": self.catalog.tags,
            },
        }
        (folder / "recommender.json").write_text(json.dumps(meta, ensure_ascii=False))
        with open(folder / "ranker.pkl", "wb") as fh:
            pickle.dump(self.ranker, fh)
        if self.content is not None:
            self.content.save(folder)
        if self.interest is not None:
            self.interest.save(folder)
            target = folder / "interest_encoder"
            if self.interest.folder.resolve() != target.resolve():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(self.interest.folder, target)
        return folder

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, encoder: TextEncoder | None = None
    ) -> Recommender:
        folder = Path(folder)
        meta_file = folder / "recommender.json"
        if not meta_file.is_file():
            raise ModelNotFoundError(
                f"{folder}: no trained recommender here; run `aigc recommend train`"
            )
        meta = json.loads(meta_file.read_text())
        model = cls(RecommenderConfig.from_dict(meta["config"]))
        model.info = meta["info"]
        c = meta["catalog"]
        model.catalog = Catalog(c["ids"], c["titles"], c["descriptions"], c["tags"])
        log = np.load(folder / "log.npz")
        weight = log["weight"] if "weight" in log else np.ones(len(log["item"]), np.float32)
        model.log = Interactions(
            meta["users"], log["user"], log["item"], log["ts"], len(model.catalog), weight
        )
        state = dict(np.load(folder / "collaborative.npz"))
        with open(folder / "ranker.pkl", "rb") as fh:
            model.ranker = pickle.load(fh)
        model.content = None
        if (folder / "content_vectors.npy").is_file():
            enc = encoder or load_encoder(model.config.encoder or "hashing")
            model.content = ContentModel.load(folder, enc)
        model.interest = None
        if model.config.interest is not None and (folder / "interest_vectors.npy").is_file():
            model.interest = InterestModel.load(
                folder, model.catalog, model.config.interest, folder / "interest_encoder"
            )
        model.builder = FeatureBuilder(
            ease=EASE.from_state(state, model.config.l2),
            transitions=Transitions.from_state(state, model.config.window),
            popularity=Popularity.from_state(state),
            content=model.content,
            interest_V=model.interest.item_V if model.interest is not None else None,
        )
        model._user_index = {name: u for u, name in enumerate(model.log.users)}
        model._hist, model._bounds = model.log.histories(), model.log.bounds()
        return model


def _rrf(a: np.ndarray, b: np.ndarray, k: float = 20.0) -> np.ndarray:
    ra = np.argsort(np.argsort(-a, kind="stable"), kind="stable")
    rb = np.argsort(np.argsort(-b, kind="stable"), kind="stable")
    return 1.0 / (k + ra) + 1.0 / (k + rb)


def _ranker_validation(
    x: np.ndarray, y: np.ndarray, g: np.ndarray, cfg: RecommenderConfig
) -> dict[str, Any]:
    """HR@10 on 20% of held-out users for a ranker fitted on the other 80%, beside single signals.

    Measured among the candidates of users whose held-out item is a candidate."""
    groups = np.unique(g)
    if len(groups) < 20:
        return {}
    rng = np.random.default_rng(cfg.seed + 1)
    val = np.isin(g, rng.choice(groups, len(groups) // 5, replace=False))
    if y[~val].sum() == 0 or y[val].sum() == 0:
        return {}
    model = Ranker(cfg.ranker, seed=cfg.seed).fit(x[~val], y[~val])
    pred = model.score(x[val])
    out: dict[str, Any] = {"users": len(np.unique(g[val]))}
    for name, s in [("ranker", pred)] + [
        (f, x[val][:, FEATURES.index(f)])
        for f in ("ease", "ease_recent", "trans_last3", "interest", "content_profile")
    ]:
        hits = 0
        for grp in np.unique(g[val]):
            m = g[val] == grp
            top = np.argsort(-s[m], kind="stable")[:10]
            hits += int(y[val][m][top].any())
        out[f"hr@10_{name}"] = round(hits / out["users"], 4)
    return out
