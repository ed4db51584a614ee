"""Check a generated answer against the passages it cites, sentence by sentence.

A small generator copies the right price and then adds a "3-week process" or a "$12 quote"
of its own. Every checkable fact of an answer sentence (amounts, percentages, durations,
dates, times, plain numbers, e-mail addresses, URLs, phone numbers and names) must appear in
the passages, compared in a normal form ("$25" = "25 dollars" = "USD 25", "two weeks" =
"2 weeks", "1-2" = "1 to 2", "1,000" = "1000"). A number must also be bound as the passages
bind it: when a word next to it in the answer occurs in the passages but never in a passage
sentence holding that number ("a $12 quote" where $12 is what a tent pole costs), it is
unsupported. A sentence with an unsupported fact is dropped; when nothing useful is left, the
best-matching sentences of the passages are quoted instead, or nobody answers (handoff).

Model-free and deterministic: the same rules run on the streamed answer, a sentence at a
time, and on the whole answer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from .facts import NUMERIC, WORD_NUMBERS, Fact, extract_facts, with_parts

__all__ = ["Fact", "extract_facts"]  # re-exported: callers check facts through this module


def _words(text: str) -> list[str]:
    return text.split()


# A sentence ends at . ! or ? and a space, but not inside "2 p.m. Eastern" or "e.g. a tent",
# nor after a list number ("1. Choose a method").
SENTENCE_END = re.compile(
    r"(?:(?<!\b[apAP]\.[mM])(?<!\b[eE]\.[gG])(?<!\b[iI]\.[eE])(?<![\s(]\d)(?<![\s(]\d\d)"
    r"(?<!^\d)(?<!^\d\d)\.|[!?])[\"')\]]*\s+",
    re.MULTILINE,
)
STOP = set(
    _words(
        "a an the and or but if then than so of to in on at by for from with without into onto "
        "about above after before over under up down out off within until upon per via as is are "
        "was were be been being am do does did done have has had having will would shall should "
        "can could may might must it its it's this that these those there here their they them "
        "we our us you your yours he she his her i me my mine who whom which what when where why "
        "how all any both each few more most other some such no nor not only own same too very "
        "just also plus around approximately usually normally typically generally up yes please "
        "thank thanks sorry however unfortunately hello hi dear note sure absolutely certainly "
        "take takes taking took cost costs costing get gets got make makes need needs pay pays "
        "charge charges one ones there's i'm i'll we'll you'll we're you're don't can't "
        "let lets"
    )
)
ALIASES = {"us": "united states", "u.s": "united states", "usa": "united states",
           "uk": "united kingdom", "eu": "european union", "et": "eastern", "est": "eastern",
           "edt": "eastern"}  # fmt: skip
# What kind of fact answers a question that asks this way.
ANSWER_KINDS = {
    r"\bhow long\b": {"duration"},
    r"\bhow (?:much|expensive)\b|\b(?:cost|price|fee|charge)": {"money"},
    r"\bhow (?:many|quickly|soon|fast)\b": {"duration", "number"},
    r"\bwhen\b|\buntil\b|\bdeadline\b|\bwhat time\b": {"date", "time", "weekday", "duration"},
    r"\bpercent|\bdiscount": {"percent"},
}


def stem(word: str) -> str:
    """A crude stem, enough to match "repairs"/"repair" and "shipping"/"ship"."""
    w = word.lower().replace("’", "'").removesuffix("'s")
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    for suffix in ("ing", "ed"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            w = w[: -len(suffix)]
            if len(w) > 2 and w[-1] == w[-2] and w[-1] not in "aeiousl":
                w = w[:-1]
            break
    return w[:6]


def content_stems(text: str) -> set[str]:
    """Stems of the words that carry meaning (no stop words, no numbers)."""
    words = re.findall(r"[A-Za-z][A-Za-z'’-]*", text)
    return {stem(w) for w in words if len(w) > 2 and w.lower() not in STOP}


def split_sentences(text: str) -> list[str]:
    """Sentences (and lines) of ``text``, stripped, none empty."""
    out = []
    for line in text.splitlines():
        start = 0
        for m in SENTENCE_END.finditer(line + " "):
            out.append(line[start : m.end()].strip())
            start = m.end()
        out.append(line[start:].strip())
    return [s for s in out if s]


@dataclass(frozen=True)
class SentenceCheck:
    """One answer sentence, its facts and those of them no passage supports."""

    text: str
    facts: tuple[Fact, ...]
    unsupported: tuple[Fact, ...]

    @property
    def ok(self) -> bool:
        return not self.unsupported


@dataclass(frozen=True)
class GroundingResult:
    """The sentences of a checked answer: ``kept`` pass, ``dropped`` had unsupported facts."""

    sentences: tuple[SentenceCheck, ...]

    @property
    def kept(self) -> list[str]:
        return [s.text for s in self.sentences if s.ok]

    @property
    def dropped(self) -> list[SentenceCheck]:
        return [s for s in self.sentences if not s.ok]

    @property
    def text(self) -> str:
        return " ".join(self.kept)


@dataclass
class Evidence:
    """What the passages say, indexed per sentence, for checking answer sentences."""

    passages: Sequence[str]
    question: str = ""
    known: Sequence[str] = ()
    _sentences: list[tuple[set[str], set[str], set[str]]] = field(
        init=False, default_factory=list
    )  # per passage sentence: normal forms, word stems, kinds of fact
    _stems: set[str] = field(init=False, default_factory=set)
    _keys: set[str] = field(init=False, default_factory=set)
    _text: str = field(init=False, default="")

    def __post_init__(self) -> None:
        for passage in self.passages:
            for sentence in split_sentences(passage):
                facts = extract_facts(sentence)
                keys = {k for f in facts for k in with_parts(f)}
                stems = content_stems(sentence)
                self._sentences.append((keys, stems, {f.kind for f in facts}))
                self._stems |= stems
                self._keys |= keys
        texts = [*self.passages, self.question, *self.known]
        self._text = " " + " ".join(" ".join(t.lower().split()) for t in texts) + " "

    def supports(self, fact: Fact, neighbours: AbstractSet[str] = frozenset()) -> bool:
        """A fact is supported when a passage sentence holds it (all its normal forms),
        unless it is bound to another thing: a word next to it in the answer (``neighbours``)
        goes with a different fact of its kind in the passages and never with this one
        ("a $12 quote" where the quote is "above $40" and $12 a tent pole's price)."""
        if fact.kind == "name":
            return self._has_name(fact.text)
        if fact.kind == "url":  # the same address, or the site of one the passages give
            url = fact.keys[0]
            return any(k == url or k.startswith(url + "/") for k in self._keys)
        holding = [st for keys, st, _ in self._sentences if all(k in keys for k in fact.keys)]
        if not holding:
            return False
        bound = neighbours & self._stems
        if not bound or any(bound & st for st in holding):
            return True
        kinds = NUMERIC if fact.kind == "number" else {fact.kind, "number"}
        return not any(bound & st and kinds & ks for _, st, ks in self._sentences)

    def _has_name(self, name: str) -> bool:
        low = re.sub(r"['’]s?$", "", name.lower())
        for variant in (low, ALIASES.get(low.replace(".", ""), low)):
            if re.search(rf"(?<!\w){re.escape(variant)}(?!\w)", self._text):
                return True
        # "Northwind Trail Promise", "Northwind-branded": each capitalised word is written
        # so in the passages.
        source = " ".join([*self.passages, *self.known])
        words = [w for w in re.split(r"[\s-]+", re.sub(r"['’]s?$", "", name)) if w[:1].isupper()]
        several = len(words) > 1 or "-" in name
        return several and all(re.search(rf"\b{re.escape(w)}\b", source) for w in words)

    def check(self, sentence: str) -> SentenceCheck:
        facts = extract_facts(sentence)
        bad = tuple(f for f in facts if not self.supports(f, _neighbours(sentence, f, facts)))
        return SentenceCheck(sentence, tuple(facts), bad)


def _neighbours(sentence: str, fact: Fact, facts: Sequence[Fact], reach: int = 3) -> set[str]:
    """The stems of the nearest content word on each side of a numeric fact, within
    ``reach`` words and before a clause break or another fact ("a $12 quote": "quote")."""
    if fact.kind not in NUMERIC:
        return set()
    others = [(f.start, f.end) for f in facts if f is not fact]
    tokens = [
        t
        for t in re.finditer(r"[A-Za-z][A-Za-z'’-]*|[,;:()\[\]]", sentence)
        if not fact.start <= t.start() < fact.end
    ]
    left = [t for t in tokens if t.end() <= fact.start][::-1]
    right = [t for t in tokens if t.start() >= fact.end]
    out: set[str] = set()
    for side in (left, right):
        for t in side[:reach]:
            w = t.group(0)
            if not w[0].isalpha() or any(s <= t.start() < e for s, e in others):
                break
            if len(w) > 2 and w.lower() not in STOP and w.lower() not in WORD_NUMBERS:
                out.add(stem(w))
                break
    return out


def check_answer(
    answer: str, passages: Sequence[str], question: str = "", known: Sequence[str] = ()
) -> GroundingResult:
    """Each sentence of ``answer`` with its facts checked against ``passages``; names the
    customer wrote in ``question`` and ``known`` names (the company's) count as supported."""
    evidence = Evidence(passages, question, known)
    return GroundingResult(tuple(evidence.check(s) for s in split_sentences(answer)))


def useful(kept: Sequence[str], question: str) -> bool:
    """Something is left worth sending: a fact other than a name, or a word of the question."""
    asked = content_stems(question)
    facts = (f for s in kept for f in extract_facts(s) if f.kind != "name")
    return any(facts) or any(content_stems(s) & asked for s in kept)


def extractive_answer(question: str, passages: Sequence[str], most: int = 2) -> str | None:
    """Up to ``most`` sentences of the passage whose best sentence shares the most with the
    question (words weighted by rarity across the passages' sentences; the top passage wins
    a tie), quoted and cited by its number; None when no passage shares a word with it."""
    asked = content_stems(question)
    wanted = {
        k for cue, kinds in ANSWER_KINDS.items() if re.search(cue, question, re.I) for k in kinds
    }
    per_passage = [split_sentences(p) for p in passages]
    all_sentences = [content_stems(s) for ss in per_passage for s in ss]

    def score(sentence: str) -> float:
        n = len(all_sentences)
        shared = content_stems(sentence) & asked
        weight = sum(
            1.0 + math.log((n + 1) / (1 + sum(w in s for s in all_sentences))) for w in shared
        )
        # "How long ...?" is answered by a sentence that holds a duration.
        fits = shared and wanted & {f.kind for f in extract_facts(sentence)}
        return weight + (1.0 if fits else 0.0)

    scored = [[score(s) for s in ss] for ss in per_passage]
    best_of = [max(sc, default=0.0) for sc in scored]
    if not best_of or max(best_of) <= 0:
        return None
    ref = best_of.index(max(best_of))
    sentences, scores = per_passage[ref], scored[ref]
    best = sorted(range(len(sentences)), key=lambda i: -scores[i])[:most]
    chosen = sorted(i for i in best if scores[i] >= 0.5 * scores[best[0]])
    return f'"{" ".join(sentences[i] for i in chosen)}" [{ref + 1}]'


def grounded(
    answer: str, question: str, passages: Sequence[str], known: Sequence[str] = ()
) -> tuple[str, str]:
    """What to send for a generated ``answer``: (text, how). ``how`` is "checked" (the
    sentences that passed), "extractive" (quoted passage sentences after what passed) or
    "none" (nothing to send: the caller hands off)."""
    result = check_answer(answer, passages, question, known)
    return finish(result.kept, bool(result.dropped), question, passages)


def finish(
    kept: Sequence[str], dropped: bool, question: str, passages: Sequence[str]
) -> tuple[str, str]:
    """Kept sentences as they are unless a drop left nothing useful; then an extractive
    answer follows them, or (text, "none") when there is none either."""
    text = " ".join(kept)
    if kept and (not dropped or useful(kept, question)):
        return text, "checked"
    quote = extractive_answer(question, passages)
    if quote is None:
        return text, "none"
    return (f"{text} {quote}" if text else quote), "extractive"
