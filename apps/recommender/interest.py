"""Interest model: a two-tower text encoder tuned to map a user's recent items to the next one.

Query tower input: the titles and tags of the user's last few items; item tower input: the
candidate's text. Supervision is the user's next interaction (positive) against the other
items in the batch (in-batch negatives, with every item this user interacted with masked out,
so negatives are sampled items the user did not interact with), via the core's contrastive
tuning (optionally LoRA) of the small MiniLM encoder.

Why an encoder and not the bundled causal LM: a two-tower model embeds every item once and
scores a user against the whole catalogue with one matrix product, so `for-user` stays within
milliseconds; a cross-encoder or LLM would need one forward pass per (user, candidate) pair,
hundreds per request, which a CPU cannot serve at p95 <= 50 ms, and LoRA-tuning SmolLM2 on
thousands of histories does not fit the 15-minute CPU training budget.

Every weight is tuned by default, a choice made on validation data only
(``benchmarks/select_defaults.py recommender``: MovieLens-small without each user's test
item, the second-to-last interaction as the target, the model trained on the earlier ones,
full ranking): tuning every weight and LoRA tie on validation HR@10 (0.1426 each, 24 users
hit by only one of them each way), and every weight wins validation NDCG@10, the tie-break
fixed before the run (0.0760 against 0.0714). The margin is small.
``InterestConfig(lora=True)`` tunes LoRA adapters instead (the core's PEFT path), whose
artefact is a small adapter on the shared base rather than a whole encoder.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from aigc_apps.settings import get_settings

from .dataset import Catalog, Interactions


def default_encoder() -> str:
    """The workspace's default encoder (``AIGC_ENCODER``), read when a config is made."""
    return get_settings().default_encoder


@dataclass
class InterestConfig:
    """``base``: encoder to tune (default ``AIGC_ENCODER``); ``history``: items shown to the
    query tower; ``max_pairs``: training pairs (latest first); ``lora``: tune LoRA adapters
    (default False: every weight, see the module docstring), shaped by ``lora_r``,
    ``lora_alpha`` (default 2 x rank) and ``lora_dropout``; None takes the core's
    contrastive-tuning defaults (r 16, dropout 0.1)."""

    base: str = field(default_factory=default_encoder)
    history: int = 5
    max_pairs: int = 3000
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float | None = None
    lora: bool = False
    max_length: int = 96
    seed: int = 0
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def lora_knobs(self) -> dict[str, Any]:
        """The LoRA settings given, in the core's spelling (alpha follows a given rank)."""
        alpha = self.lora_alpha or (2 * self.lora_r if self.lora_r else None)
        knobs = {"lora_r": self.lora_r, "lora_alpha": alpha, "lora_dropout": self.lora_dropout}
        return {name: value for name, value in knobs.items() if value is not None}


class InterestPair(NamedTuple):
    """One training example: a user's history text, the text of what came next, and who/what."""

    query: str
    positive: str
    user: int
    item: int


def _short(catalog: Catalog, i: int) -> str:
    tags = ", ".join(catalog.tags[i][:4])
    return f"{catalog.titles[i]} ({tags})" if tags else catalog.titles[i]


class InterestModel:
    def __init__(self, config: InterestConfig | None = None) -> None:
        self.config = config or InterestConfig()
        self._cache: dict[str, np.ndarray] = {}

    def query_text(self, catalog: Catalog, history: np.ndarray) -> str:
        recent = [int(i) for i in np.asarray(history)[-self.config.history :]][::-1]
        return "recently liked: " + "; ".join(_short(catalog, i) for i in recent)

    def pairs(self, catalog: Catalog, log: Interactions) -> list[InterestPair]:
        """(history text, next item text) for each user's latest steps, round-robin over users."""
        b = log.bounds()
        per_user = [list(range(b[u + 1] - 1, b[u], -1)) for u in range(log.n_users)]
        out: list[InterestPair] = []
        depth = 0
        while len(out) < self.config.max_pairs and any(len(p) > depth for p in per_user):
            for u, positions in enumerate(per_user):
                if depth < len(positions) and len(out) < self.config.max_pairs:
                    p = positions[depth]
                    history = log.item[max(b[u], p - self.config.history) : p]
                    item = int(log.item[p])
                    out.append(
                        InterestPair(
                            self.query_text(catalog, history), catalog.text(item), u, item
                        )
                    )
            depth += 1
        return out

    def fit(self, catalog: Catalog, log: Interactions, out_dir: Path) -> InterestModel:
        """Tune the encoder on (history -> next item); an item the same user also interacted
        with is never one of that pair's in-batch negatives."""
        from aigc_apps.embeddings import Encoder
        from aigc_apps.encoder_tuning import ContrastiveTuningConfig, tune_encoder

        cfg = self.config
        pairs = self.pairs(catalog, log)
        self.pairs_used = len(pairs)
        b = log.bounds()
        seen = {u: frozenset(log.item[b[u] : b[u + 1]].tolist()) for u in {p.user for p in pairs}}
        tuning = ContrastiveTuningConfig(
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            max_length=cfg.max_length,
            lora=cfg.lora,
            seed=cfg.seed,
            **cfg.lora_knobs(),
        )
        tune_encoder(
            cfg.base,
            [(p.query, p.positive) for p in pairs],
            out_dir,
            tuning,
            groups=[p.item for p in pairs],
            exclude=[seen[p.user] for p in pairs],
            show_progress=False,
        )
        self.encoder = Encoder.from_pretrained(out_dir, max_length=cfg.max_length)
        self.catalog = catalog
        self.item_V = self.encoder.encode(catalog.texts(), batch_size=64)
        self.folder = Path(out_dir)
        return self

    def user_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        """One unit vector per history; cached by the recent items that define it."""
        keys = [
            hashlib.sha1(np.asarray(h[-self.config.history :], np.int64).tobytes()).hexdigest()
            for h in histories
        ]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            texts = [self.query_text(self.catalog, histories[i]) for i in missing]
            vecs = self.encoder.encode(texts, batch_size=64)
            for i, v in zip(missing, vecs, strict=False):
                self._cache[keys[i]] = v
        return (
            np.stack([self._cache[k] for k in keys])
            if keys
            else np.zeros((0, self.item_V.shape[1]))
        )

    def text_vector(self, text: str) -> np.ndarray:
        return self.encoder.encode([f"recently liked: {text}"])[0]

    def save(self, folder: Path) -> None:
        np.save(folder / "interest_vectors.npy", self.item_V)

    @classmethod
    def load(
        cls, folder: Path, catalog: Catalog, config: InterestConfig, encoder_dir: Path
    ) -> InterestModel:
        from aigc_apps.embeddings import Encoder

        model = cls(config)
        model.catalog = catalog
        model.item_V = np.load(folder / "interest_vectors.npy")
        model.encoder = Encoder.from_pretrained(encoder_dir, max_length=config.max_length)
        model.folder = encoder_dir
        return model
