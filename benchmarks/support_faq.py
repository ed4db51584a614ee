"""The support bot on the sample FAQ, asked by customers in their own words.

``data/support/customer_questions.csv``: 336 questions written for this benchmark in
customers' words (8 per FAQ intent, many naming a product) and 84 out-of-scope ones, split
in halves: ``validation`` (every choice below) and ``test`` (read once, by ``--test``).
The bot runs as shipped: templates, documents and past dialogues ingested from
``data/support/kb``; each question decided as ``ask`` would.

Per pipeline it prints top-1 before the threshold and, at the threshold chosen on the
validation half (the most right answers with wrong ones <= ``--max-wrong`` of in-scope
questions, see ``apps/support/quality/outcomes.py``), the shares answered right, wrong (another
template, a dialogue's answer, or a generated answer: counted against the budget) and
handed off, and the out-of-scope questions handed off.

The rule, written before the first run (2026-12-07):
- A lever (answer text, lexical head, contrastive tuning on the FAQ's own examples) is kept
  when it raises the validation share answered right at <= 3% wrong by at least 2
  questions (of 168) over the pipeline without it; a smaller gain is a tie, and a tie keeps
  the cheaper pipeline (fewer model passes per question, then less tuning time).
- Weights within a lever are chosen the same way on validation; ties keep the smaller one.
- The bot's default encoder is the one whose chosen pipeline answers more validation
  questions right at <= 3% wrong, if its in-process template answer p95 is <= 100 ms here;
  a difference under 2 questions goes to the cheaper encoder (MiniLM).
- ``--test`` reads the test half once, for the chosen pipeline and the baseline.

Usage: python benchmarks/support_faq.py [--test] [--encoders minilm-l6,mpnet-base]
    [--tune-epochs 1] [--json]
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aigc_apps.settings import get_settings  # noqa: E402
from apps.support import RetrievalConfig, SupportService  # noqa: E402
from apps.support.answers.reply import clean_question  # noqa: E402
from apps.support.quality.outcomes import (  # noqa: E402
    choose_threshold,
    embed_questions,
    refit_confidence,
    score_questions,
    shares,
    with_confidence,
)

QUESTIONS = ROOT / "data" / "support" / "customer_questions.csv"
KB = ROOT / "data" / "support" / "kb"
NN = RetrievalConfig(k=10, answer_weight=0.0, lexical_weight=0.0)  # the nearest example
CONFIGS: dict[str, list[RetrievalConfig]] = {
    "nn": [NN],
    "answer": [replace(NN, answer_weight=w) for w in (0.25, 0.5, 1.0)],
    "lexical": [replace(NN, lexical_weight=w) for w in (0.03, 0.1, 0.3)],
    "answer+lexical": [
        replace(NN, answer_weight=a, lexical_weight=w)
        for a in (0.25, 0.5, 1.0)
        for w in (0.03, 0.1, 0.3)
    ],
}
# How confidence is computed: fitted on the knowledge base's own examples (leave-one-out) on
# the top score, or on the top score and the margin, or fitted on the validation questions.
MODES = ("loo", "loo+margin", "fitted")


def read_questions(path: Path, split: str) -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    return [r["text"] for r in rows], [r["intent"] for r in rows]


def prepare(bot: SupportService, cfg: RetrievalConfig, mode: str) -> None:
    """The bot scoring with ``cfg`` (heads fitted if it weighs them), its confidence fitted
    on the knowledge base (leave-one-out; "fitted" starts from the margin fit)."""
    bot.set_retrieval(cfg)
    bot.recalibrate(margin=mode != "loo")


def evaluate_config(
    bot: SupportService,
    cfg: RetrievalConfig,
    texts: list[str],
    labels: list[str],
    vecs: np.ndarray,
    max_wrong: float,
) -> list[dict[str, Any]]:
    """One scoring config under each confidence mode, the threshold chosen on these
    questions; "shipped" is the leave-one-out threshold a user gets without them."""
    results = []
    prepare(bot, cfg, "loo")
    loo = copy.deepcopy(bot.calibration)
    scored = score_questions(bot, texts, labels, vecs)
    prepare(bot, cfg, "loo+margin")
    margin = copy.deepcopy(bot.calibration)
    fitted = copy.deepcopy(margin)
    shipped = {"loo": loo.threshold, "loo+margin": margin.threshold}
    for mode, cal, rows in (
        ("loo", loo, scored),
        ("loo+margin", margin, with_confidence(scored, margin)),
        ("fitted", fitted, refit_confidence(scored, fitted)),
    ):
        chosen = choose_threshold(rows, max_wrong)
        cal.threshold = chosen.threshold
        results.append({
            "lever": "",
            "config": {k: v for k, v in asdict(cfg).items() if v and k != "vote_temperature"},
            "mode": mode,
            "chosen": chosen.to_dict(),
            "shipped": shares(rows, shipped[mode]).to_dict() if mode in shipped else None,
            "calibration": cal,
            "retrieval": cfg,
            "scored": rows,
        })
    return results


def better(a: dict[str, Any], b: dict[str, Any], n_in: int) -> bool:
    """``a`` beats ``b`` by the rule: at least 2 more questions answered right."""
    return (a["chosen"]["right"] - b["chosen"]["right"]) * n_in >= 2 - 1e-9


def best_of(results: list[dict[str, Any]], n_in: int) -> dict[str, Any]:
    """The most right answers at the budget; a gain under 2 questions keeps the earlier
    (cheaper, smaller-weight) one."""
    best = results[0]
    for r in results[1:]:
        if better(r, best, n_in):
            best = r
    return best


def public(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ("scored", "calibration", "retrieval")}


def line(key: str, c: dict[str, Any], max_wrong: float) -> str:
    oos = c["oos_handoff"]
    return (
        f"{key:40s} top1 {c['top1']:.3f} | at <= {max_wrong:.0%} wrong: right {c['right']:.3f} "
        f"wrong {c['wrong']:.3f} from documents {c['generated']:.3f} handoff "
        f"{c['handoff']:.3f} | out of scope handed off "
        + (f"{oos:.3f}" if oos is not None else "-")
    )


def ask_latency(bot: SupportService, texts: list[str], warmup: int = 10) -> dict[str, float]:
    """p50/p95 of whole ``ask`` calls that answered from a template (turn stored); only
    questions the bot routes to a template are asked (nothing is generated)."""
    texts = [t for t in texts if bot.decide(clean_question(t)).path == "template"]
    for t in texts[:warmup]:
        bot.ask(t)
    times = [r.latency_ms for r in (bot.ask(t) for t in texts) if r.path == "template"]
    arr = np.asarray(times or [np.nan])
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p95_ms": round(float(np.percentile(arr, 95)), 1),
        "calls": len(times),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", action="store_true", help="read the test half once, for the "
                    "pipeline chosen on validation and the baseline")
    ap.add_argument("--questions", type=Path, default=QUESTIONS)
    ap.add_argument("--encoders", default="minilm-l6,mpnet-base")
    ap.add_argument("--levers", default=",".join(CONFIGS))
    ap.add_argument("--tune-epochs", type=int, default=1, help="0: no contrastive tuning")
    ap.add_argument("--max-wrong", type=float, default=0.03)
    ap.add_argument("--latency", action="store_true", help="only time `ask` on template "
                    "answers of the validation questions, the bot as shipped (default encoder "
                    "and scoring, threshold from the knowledge base), beside MiniLM")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    if args.latency:
        figures = shipped_latency(args.questions, log)
        if args.json:
            print(json.dumps(figures, indent=2))
        return 0
    texts, labels = read_questions(args.questions, "validation")
    n_in = sum(label != "oos" for label in labels)
    out: dict[str, Any] = {"validation": {"questions": len(texts), "in_scope": n_in}}
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("AIGC_MODELS_DIR", str(get_settings().models_dir.resolve()))
    chosen: dict[str, Any] | None = None  # over encoders and stages, by the rule
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AIGC_HOME"] = str(Path(tmp) / "home")
        for enc in args.encoders.split(","):
            bot = SupportService(f"sqlite:///{tmp}/{enc}.db", encoder=enc)
            bot.set_retrieval(NN)
            t0 = time.perf_counter()
            bot.ingest([KB])
            log(f"== {enc}: ingested in {time.perf_counter() - t0:.1f}s")
            stages = [("frozen", 0)] + ([("tuned", args.tune_epochs)] if args.tune_epochs else [])
            for stage, epochs in stages:
                if epochs:
                    t0 = time.perf_counter()
                    rep = bot.tune(generator=False, epochs=epochs, batch_size=32)
                    out[f"{enc}/tuning_seconds"] = round(time.perf_counter() - t0, 1)
                    log(f"-- tuned on the FAQ's own examples in "
                        f"{out[f'{enc}/tuning_seconds']}s ({rep.pairs} pairs)")
                vecs = embed_questions(bot, texts)
                for lever in args.levers.split(","):
                    results = [
                        r for cfg in CONFIGS[lever]
                        for r in evaluate_config(bot, cfg, texts, labels, vecs, args.max_wrong)
                    ]
                    for mode in MODES:
                        best = best_of([r for r in results if r["mode"] == mode], n_in)
                        best.update(lever=lever, encoder=enc, stage=stage, epochs=epochs)
                        key = f"{enc}/{stage}/{lever}/{mode}"
                        out[key] = public(best)
                        log(line(key, best["chosen"], args.max_wrong), "|", best["config"])
                        if chosen is None or better(best, chosen, n_in):
                            chosen = best
            bot.close()
        assert chosen is not None
        out["chosen"] = public(chosen)
        log(f"chosen on validation: {chosen['encoder']} {chosen['stage']} {chosen['lever']} "
            f"{chosen['mode']} {chosen['config']}")
        if args.test:
            out["test"] = read_test(args, chosen, Path(tmp), log)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    return 0


def shipped_latency(questions: Path, log: Any) -> dict[str, Any]:
    """p50/p95 of whole ``ask`` calls answered from a template, for the bot as shipped
    (``mpnet-base``) and with MiniLM, on the validation questions, a quiet machine wanted."""
    texts = [t for t, y in zip(*read_questions(questions, "validation"), strict=True)
             if y != "oos"]
    figures: dict[str, Any] = {}
    os.environ.setdefault("AIGC_MODELS_DIR", str(get_settings().models_dir.resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AIGC_HOME"] = str(Path(tmp) / "home")
        for enc in ("mpnet-base", "minilm-l6"):
            with SupportService(f"sqlite:///{tmp}/{enc}.db", encoder=enc) as bot:
                bot.ingest([KB])
                figures[enc] = ask_latency(bot, texts)
                log(f"{enc}: ask (template answers) {figures[enc]}")
    return figures


def read_test(args: argparse.Namespace, chosen: dict[str, Any], tmp: Path, log: Any) -> dict:
    """The test half, read once: the chosen pipeline with everything fitted on validation
    (weights, confidence, threshold), beside today's bot (frozen MiniLM, nearest example,
    leave-one-out threshold as shipped) and the same with a validation-chosen threshold.
    Template-answer latency of whole ``ask`` calls on the chosen pipeline."""
    texts, labels = read_questions(args.questions, "test")
    val_texts, val_labels = read_questions(args.questions, "validation")
    figures: dict[str, Any] = {}
    runs = [("baseline", "minilm-l6", 0, NN, "loo"),
            ("chosen", chosen["encoder"], chosen["epochs"], chosen["retrieval"], chosen["mode"])]
    for name, enc, epochs, cfg, mode in runs:
        bot = SupportService(f"sqlite:///{tmp}/test-{name}.db", encoder=enc)
        bot.set_retrieval(NN)
        bot.ingest([KB])
        if epochs:
            bot.tune(generator=False, epochs=epochs, batch_size=32)
        prepare(bot, cfg, mode)
        shipped_threshold = bot.calibration.threshold
        bot.calibrate_on(val_texts, val_labels, args.max_wrong, refit=mode == "fitted")
        scored = score_questions(bot, texts, labels)
        at = shares(scored, bot.calibration.threshold)
        figures[name] = {"encoder": enc, "tuned_epochs": epochs, "mode": mode,
                         "config": {k: v for k, v in asdict(cfg).items() if v},
                         "at_validation_threshold": at.to_dict()}
        log(line(f"TEST {name} ({enc})", at.to_dict(), args.max_wrong))
        if name == "baseline":
            figures[name]["as_shipped"] = shares(
                with_confidence(scored, bot.calibration), shipped_threshold).to_dict()
            log(line("TEST baseline, leave-one-out threshold", figures[name]["as_shipped"],
                     args.max_wrong))
        templated = [t for t, sc in zip(texts, scored, strict=True)
                     if sc.template and sc.confidence >= bot.calibration.threshold]
        figures[name]["latency"] = ask_latency(bot, templated)
        log(f"TEST {name} ask (template answers): {figures[name]['latency']}")
        bot.close()
    return figures


if __name__ == "__main__":
    sys.exit(main())
