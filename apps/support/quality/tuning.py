"""Fine-tuning on the company's own data: the retriever's encoder and the answer generator.

Retriever: contrastive pairs (example question -> another example of the same intent,
dialogue question -> its answer), with the intent as the group so that two questions of
one intent are never each other's negatives. A calibration split of examples is held out
of tuning, so the handoff threshold is fitted on questions the encoder has not seen.
Generator: LoRA SFT on dialogue pairs, template questions with their answers, and answers
corrected (or approved) through feedback. Each run is registered in the model registry
(app ``support``, role ``encoder`` or ``generator``) and becomes the active one.

Tuning works on what the service hands it (:class:`Tunable`): the answerer it tunes (index and
calibration, :mod:`~apps.support.answers.answerer`) and the stores and models behind it. The service
calls this module; this module never imports the service.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Collection, Hashable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from sqlalchemy import select

from aigc_apps.errors import DataError

from ..active_models import ENCODER_ROLE, GENERATOR_ROLE, register_model
from ..answers.answerer import HasAnswerer
from ..answers.reply import SYSTEM_PROMPT
from ..knowledge.generation import set_setting
from ..knowledge.retrieval import KnowledgeIndex, Ranking, RetrievalConfig
from ..store import Feedback, Turn

if TYPE_CHECKING:
    from aigc_apps.registry import ModelRegistry
    from aigc_apps.settings import Settings
    from aigc_apps.store import Database

    from ..active_models import SupportModels
    from ..answers.calibration import Calibration


class Tunable(HasAnswerer, Protocol):
    """What tuning needs of the support service: its answerer (whose index and calibration
    change), the database and registry it writes to, the workspace's settings, the models
    in use, and the steps that make every worker follow a change of knowledge."""

    @property
    def db(self) -> Database: ...

    @property
    def registry(self) -> ModelRegistry: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def models(self) -> SupportModels: ...

    @property
    def company(self) -> str: ...

    @property
    def encoder_name(self) -> str: ...

    @property
    def llm(self) -> str: ...

    def changing_knowledge(self) -> AbstractContextManager[None]: ...

    def reload_models(self, *roles: str) -> None: ...

    def reindex(self) -> int: ...

    def recalibrate(self, ids: Sequence[int] | None = None) -> Calibration: ...


@dataclass
class TuningReport:
    """What ``finetune`` trained; ``encoder_model`` / ``generator_model`` are the names it
    registered (see ``aigc models list --app support``)."""

    encoder_dir: str | None = None
    pairs: int = 0
    calibration_examples: int = 0
    encoder_seconds: float = 0.0
    generator_adapter: str | None = None
    sft_records: int = 0
    generator_seconds: float = 0.0
    generator_metrics: dict[str, float] = field(default_factory=dict)
    threshold: float | None = None
    retrieval: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, dict[str, float]] = field(default_factory=dict)
    encoder_model: str | None = None
    generator_model: str | None = None

    def add_generator(self, other: TuningReport) -> None:
        """Take the generator's part of ``other`` (a :func:`tune_generator` report)."""
        for name in (
            "generator_adapter",
            "sft_records",
            "generator_seconds",
            "generator_metrics",
            "generator_model",
        ):
            setattr(self, name, getattr(other, name))


def calibration_split(kb: KnowledgeIndex, fraction: float = 0.1, seed: int = 0) -> list[int]:
    """Example ids held out of tuning: ``fraction`` of each intent that has 4+ examples."""
    by_intent: dict[str, list[int]] = defaultdict(list)
    for i, m in sorted(kb.meta.items()):
        if m.kind == "example":
            by_intent[m.key].append(i)
    rng = random.Random(seed)
    held: list[int] = []
    for ids in by_intent.values():
        if len(ids) >= 4 and fraction > 0:
            held += rng.sample(ids, max(1, round(fraction * len(ids))))
    return sorted(held)


def retriever_pairs(
    kb: KnowledgeIndex,
    exclude: Collection[int] = frozenset(),
    per_example: int = 1,
    seed: int = 0,
) -> tuple[list[tuple[str, str]], list[Hashable]]:
    """(query, positive) pairs with their group (the intent), from entries not in ``exclude``:
    each example question with another of its intent and with its intent's answer text (the
    answer says what the intent covers, in the words customers will use about it)."""
    rng = random.Random(seed)
    by_intent: dict[str, list[str]] = defaultdict(list)
    for i, m in kb.meta.items():
        if m.kind == "example" and i not in exclude:
            by_intent[m.key].append(m.text)
    pairs: list[tuple[str, str]] = []
    groups: list[Hashable] = []
    for intent, texts in sorted(by_intent.items()):
        for n, text in enumerate(texts):
            others = texts[:n] + texts[n + 1 :]
            answer = kb.answers.get(intent)
            positives = [rng.choice(others) for _ in range(per_example)] if others else []
            for positive in [*positives, answer]:
                if positive:
                    pairs.append((text, positive))
                    groups.append(intent)
    for m in kb.meta.values():
        if m.kind == "pair" and m.answer and m.id not in exclude:
            pairs.append((m.text, m.answer))
            groups.append(m.key)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    return [pairs[i] for i in order], [groups[i] for i in order]


def tune_retriever(
    bot: Tunable,
    *,
    epochs: int = 1,
    batch_size: int = 64,
    learning_rate: float | None = None,
    max_steps: int | None = None,
    calibration_fraction: float = 0.1,
    lora: bool = False,
    lora_r: int | None = None,
    lora_alpha: int | None = None,
    lora_dropout: float | None = None,
    seed: int = 0,
    out_dir: Path | None = None,
) -> TuningReport:
    """Tune the encoder on the knowledge base, register it as the active support encoder,
    reindex and recalibrate. The tuning starts from the base of the encoder in use (a
    re-tune does not stack on the previous one). ``lora_r`` / ``lora_dropout`` left at None
    keep :class:`~aigc_apps.encoder_tuning.ContrastiveTuningConfig`'s defaults; ``lora_alpha``
    defaults to twice the rank, as everywhere."""
    from aigc_apps.encoder_tuning import ContrastiveTuningConfig, tune_encoder

    entry = bot.models.encoder_entry
    base = entry.base if entry is not None else bot.encoder_name
    kb = bot.answerer.kb
    held = calibration_split(kb, calibration_fraction, seed)
    pairs, groups = retriever_pairs(kb, set(held), per_example=max(1, epochs), seed=seed)
    if len(pairs) < 2:
        raise DataError("not enough examples to tune the retriever (ingest templates first)")
    if max_steps:
        pairs, groups = pairs[: max_steps * batch_size], groups[: max_steps * batch_size]
    out = (
        out_dir
        or bot.settings.adapters_dir / "support" / f"encoder-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    defaults = ContrastiveTuningConfig
    rank = lora_r if lora_r is not None else defaults.lora_r
    cfg = ContrastiveTuningConfig(
        epochs=1,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=64,
        symmetric=True,
        lora=lora,
        lora_r=rank,
        lora_alpha=lora_alpha if lora_alpha is not None else 2 * rank,  # the core's rule
        lora_dropout=lora_dropout if lora_dropout is not None else defaults.lora_dropout,
        seed=seed,
    )
    started = time.perf_counter()
    tune_encoder(
        base, pairs, out, cfg, groups=groups, show_progress=False, settings=bot.settings
    )
    seconds = time.perf_counter() - started
    with bot.changing_knowledge():  # every step below bumps the knowledge generation
        with bot.db.session() as s:
            set_setting(s, "calibration_ids", held)
        registered = register_model(
            bot.registry,
            ENCODER_ROLE,
            out,
            base=base,
            metrics={"pairs": len(pairs), "seconds": round(seconds, 1)},
            info={"lora": lora, "calibration_examples": len(held)},
        )
        bot.reload_models(ENCODER_ROLE)
        bot.reindex()  # every vector changes with the encoder
        chosen, grid = select_retrieval(bot, held)
        cal = bot.recalibrate(held or None)
        if held and (chosen.head_weight or chosen.lexical_weight):
            bot.answerer.kb.fit_head()  # chosen and calibrated on held-out examples; serve with all
    return TuningReport(
        encoder_dir=str(out),
        pairs=len(pairs),
        calibration_examples=len(held),
        encoder_seconds=round(seconds, 1),
        threshold=round(cal.threshold, 4),
        retrieval=asdict(chosen),
        validation=grid,
        encoder_model=registered.name,
    )


RETRIEVAL_GRID = [
    RetrievalConfig(k=10, vote_weight=v, head_weight=h, lexical_weight=w, answer_weight=a)
    for a in (0.0, 1.0)
    for w in (0.0, 0.01, 0.03, 0.1)
    for h in (0.0, 0.03, 0.1, 0.3)
    for v in (0.0, 1.0)
]


def select_retrieval(
    bot: Tunable, ids: Sequence[int], grid: Sequence[RetrievalConfig] = RETRIEVAL_GRID
) -> tuple[RetrievalConfig, dict[str, dict[str, float]]]:
    """The scoring (1-NN, kNN voting, intent heads) with the lowest held-out log-loss on ``ids``.

    ``ids`` must be examples the encoder was not tuned on; the intent heads are fitted on the
    other examples. Log-loss, not top-1, picks the weights: on ~1,000 held-out questions
    top-1 moves in steps of one question, and the weights that win it by one or two are
    noise, while log-loss scores every margin (as when fitting stacking weights). Top-1 is
    reported beside it. The choice is stored and used by ``ask``; ties keep the simpler
    (earlier) configuration.
    """
    kb = bot.answerer.kb
    indexed = set(kb.questions.ids().tolist())  # one read, not one per id (pgvector)
    ids = [i for i in ids if i in indexed]
    if not ids:
        return kb.config, {}
    if kb.fit_head(exclude=set(ids)) is None:
        grid = [g for g in grid if not g.head_weight]
    if kb.lexical is None:
        grid = [g for g in grid if not g.lexical_weight]
    vecs = kb.questions.vectors(ids)
    truths = [kb.meta[i].key for i in ids]
    results: dict[str, dict[str, float]] = {}
    best, best_loss = kb.config, math.inf
    for cfg in grid:
        kb.config = cfg
        rankings = [
            kb.rank(v, exclude=i, text=kb.meta[i].text)
            for i, v in zip(ids, vecs, strict=True)
        ]
        hits = sum(bool(r.keys) and r.keys[0] == t for r, t in zip(rankings, truths, strict=True))
        top1 = hits / len(ids)
        loss = ranking_log_loss(rankings, truths)
        name = (
            f"vote={cfg.vote_weight},head={cfg.head_weight},lexical={cfg.lexical_weight},"
            f"answer={cfg.answer_weight}"
        )
        results[name] = {"top1": round(top1, 4), "log_loss": round(loss, 4)}
        if loss < best_loss - 1e-9:
            best, best_loss = cfg, loss
    kb.config = best
    with bot.db.session() as s:
        set_setting(s, "retrieval", asdict(best))
    return best, results


TEMPERATURES = (10.0, 20.0, 30.0, 50.0, 80.0, 120.0)
MISS_LOSS = 10.0  # the true intent is not among the candidates: the same for every config


def ranking_log_loss(
    rankings: Sequence[Ranking], truths: Sequence[str], temperatures: Sequence[float] = TEMPERATURES
) -> float:
    """Mean negative log-likelihood of the true key under softmax(T * scores), at the best T.

    Scores are similarities plus weighted log-probabilities, so their scale is not a
    probability's: the temperature is fitted (over a small grid) for each configuration.
    """
    found = [
        (np.asarray(r.scores), r.keys.index(truth))
        for r, truth in zip(rankings, truths, strict=True)
        if truth in r.keys
    ]
    best = min(
        sum(float(np.logaddexp.reduce(t * s) - t * s[i]) for s, i in found) for t in temperatures
    )
    return (best + (len(truths) - len(found)) * MISS_LOSS) / max(1, len(truths))


def sft_records(bot: Tunable, max_template_examples: int = 2) -> list[dict[str, Any]]:
    """Prompt/response records: corrections and approved answers, dialogues, templates."""
    system = SYSTEM_PROMPT.format(company=bot.company)
    kb = bot.answerer.kb
    records: list[dict[str, Any]] = []
    with bot.db.session() as s:
        rows = s.execute(select(Feedback, Turn).join(Turn, Feedback.turn_id == Turn.id)).all()
        for fb, turn in rows:
            if fb.correct_answer:
                records.append({"prompt": turn.question, "response": fb.correct_answer})
            elif fb.good and turn.path != "handoff":
                records.append({"prompt": turn.question, "response": turn.answer})
    per_intent: dict[str, int] = defaultdict(int)
    for m in kb.meta.values():
        if m.kind == "pair" and m.answer:
            records.append({"prompt": m.text, "response": m.answer})
        elif m.kind == "example" and per_intent[m.key] < max_template_examples:
            answer = kb.answers.get(m.key)
            if answer:
                per_intent[m.key] += 1
                records.append({"prompt": m.text, "response": answer})
    for r in records:
        r["system"] = system
    return records


def tune_generator(
    bot: Tunable,
    *,
    max_steps: int = 30,
    batch_size: int = 4,
    lora_r: int | None = None,
    lora_alpha: int | None = None,
    lora_dropout: float | None = None,
    target_modules: str | list[str] | None = None,
    out_dir: Path | None = None,
) -> TuningReport:
    """LoRA SFT of the generator's base on :func:`sft_records`; the adapter is registered as
    the active support generator. ``lora_*`` left at None take the SFT defaults."""
    from aigc_apps.finetune import LoraTrainer, LoraTrainingConfig

    records = sft_records(bot)
    if len(records) < 2:
        raise DataError("not enough question/answer pairs for generator tuning")
    base = bot.llm
    out = (
        out_dir
        or bot.settings.adapters_dir / "support" / f"generator-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    cfg = LoraTrainingConfig(
        base=base,
        task="sft",
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=target_modules,  # type: ignore[arg-type]  # a comma list is split
        max_steps=max_steps,
        batch_size=batch_size,
        max_length=512,
        eval_fraction=0.1 if len(records) >= 20 else 0.0,
        system_col="system",
        early_stopping_patience=0,
    )
    result = LoraTrainer(cfg).fit(records, out, register=False)
    registered = register_model(
        bot.registry,
        GENERATOR_ROLE,
        result.adapter_dir,
        base=base,
        metrics=dict(result.metrics),
        info={"sft_records": len(records)},
    )
    bot.reload_models(GENERATOR_ROLE)
    return TuningReport(
        generator_adapter=str(result.adapter_dir),
        sft_records=len(records),
        generator_seconds=round(result.train_seconds, 1),
        generator_metrics=dict(result.metrics),
        generator_model=registered.name,
    )
