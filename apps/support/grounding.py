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
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from decimal import Decimal


def _words(text: str) -> list[str]:
    return text.split()


# A sentence ends at . ! or ? and a space, but not inside "2 p.m. Eastern" or "e.g. a tent",
# nor after a list number ("1. Choose a method").
SENTENCE_END = re.compile(
    r"(?:(?<!\b[apAP]\.[mM])(?<!\b[eE]\.[gG])(?<!\b[iI]\.[eE])(?<![\s(]\d)(?<![\s(]\d\d)"
    r"(?<!^\d)(?<!^\d\d)\.|[!?])[\"')\]]*\s+",
    re.MULTILINE,
)
_UNITS = _words(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
)
_TENS = _words("twenty thirty forty fifty sixty seventy eighty ninety")
WORD_NUMBERS = {w: n for n, w in enumerate(_UNITS)} | {w: 20 + 10 * n for n, w in enumerate(_TENS)}
_WORDNUM = rf"(?:{'|'.join(_TENS)})(?:[- ](?:{'|'.join(_UNITS[1:10])}))?|{'|'.join(_UNITS)}"
NUM = rf"(?:\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|\d+(?:\.\d+)?|\b(?:{_WORDNUM})\b)"
_NUM_RE = re.compile(NUM, re.IGNORECASE)
_MONTHS = "january february march april may june july august september october november december"
MONTHS = {m: i for i, m in enumerate(_MONTHS.split(), start=1)}
MONTHS |= {m[:3]: i for m, i in list(MONTHS.items())} | {"sept": 9}
_MONTH = rf"(?:{'|'.join(sorted(MONTHS, key=len, reverse=True))})\b\.?"
_ORD = r"(?:st|nd|rd|th)?"
_CURRENCY = {"$": "usd", "us$": "usd", "usd": "usd", "dollar": "usd", "dollars": "usd",
             "c$": "cad", "cad": "cad", "€": "eur", "eur": "eur", "euro": "eur", "euros": "eur",
             "£": "gbp", "gbp": "gbp", "cent": "cent", "cents": "cent"}  # fmt: skip
_UNIT = {"min": "minute", "hr": "hour"}
_B = r"(?<![\w.$€£])"  # a number starts here, not inside "X200" or "6.95"
# (kind, pattern) in priority order: an earlier kind's span is not read again by a later one.
# fmt: off
_PATTERNS = {
    "skip": r"\[(?:\d+|EMAIL|CARD|ACCOUNT|PHONE|EXPIRY|CVV)\]|\b(?:excerpt|source)s?\s*#?\d+"
            r"|(?:^\s*|(?<=[:;.!?] ))\d{1,2}[.)](?=\s)",  # citations, placeholders, list numbers
    "email": r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}",
    "url": r"\b(?:https?://)?(?:www\.)?[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|"
           r"co|us|uk|ca|eu|de|fr|example|shop|store|info|biz)\b(?:/[^\s\"'<>)\]]*)?",
    "time": rf"{_B}(\d{{1,2}})(?::([0-5]\d))?\s*([ap])\.?\s?m\b\.?|{_B}([01]?\d|2[0-3]):"
            r"([0-5]\d)(?!\d)|\b(noon|midday|midnight)\b",
    "date": rf"{_B}\d{{4}}-\d{{2}}-\d{{2}}\b|{_B}\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b|{_B}(\d{{1,2}})"
            rf"{_ORD}\s+(?:of\s+)?({_MONTH})(?:,?\s+(\d{{4}}))?\b|\b({_MONTH})\s+(\d{{1,2}})"
            rf"{_ORD}\b(?:,?\s+(\d{{4}}))?",
    "phone": r"(?<![\w+(.])(?:\+|00|\()?\d[\d ()./-]{6,18}\d\b",
    "money": rf"(?:\bUS\$|\bC\$|\$|€|£|\b(?:USD|EUR|GBP|CAD)\s?)\s?{NUM}(?:\s*(?:to|-|–)\s*"
             rf"(?:\$|€|£)?\s?{NUM})?|{_B}{NUM}\s*(?:USD|EUR|GBP|CAD|dollars?|euros?|cents?)\b",
    "percent": rf"{_B}{NUM}(?:\s*(?:to|-|–)\s*{NUM})?\s*(?:%|per\s?cent\b)",
    "duration": rf"{_B}(?:between\s+)?{NUM}(?:\s*(?:to|-|–|—|or|and)\s*{NUM})?[\s-]*"
                r"(?:(?:business|working|calendar)[\s-]+)?"
                r"(?:minute|min|hour|hr|day|week|month|year|night)s?\b",
    "weekday": r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)days?\b",
    "month": r"\b(?:January|February|March|April|June|July|August|September|October|"
             r"November|December)\b",  # case-sensitive, and never "May"
    "number": rf"{_B}\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?{_ORD}\b|{_B}\d+(?:\.\d+)?{_ORD}(?![\w])",
}
# fmt: on
PATTERNS = [(k, re.compile(p, 0 if k == "month" else re.IGNORECASE)) for k, p in _PATTERNS.items()]
_NAME = re.compile(r"(?<![\w\[])[A-Z][\w'’-]*(?:[ ]+[A-Z][\w'’-]*)*")
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
_GENERIC_NAME = set(
    _words(
        "customer customers service services support team care help desk center centre "
        "department faq faqs i dear hi hello best regards"
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
NUMERIC = {"time", "date", "money", "percent", "duration", "weekday", "month", "number"}


def _number(text: str) -> Decimal:
    """'1,000' -> 1000, 'twenty-five' -> 25, '6.95' -> 6.95."""
    text = text.lower().strip()
    if text[0].isdigit():
        return Decimal(text.replace(",", ""))
    return Decimal(sum(WORD_NUMBERS[w] for w in re.split(r"[- ]+", text) if w))


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


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


@dataclass(frozen=True)
class Fact:
    """One checkable fact: its kind, its text in the answer and its normal forms."""

    kind: str
    text: str
    keys: tuple[str, ...]
    start: int = 0
    end: int = 0


def _keys(kind: str, m: re.Match[str]) -> tuple[str, ...]:
    text = m.group(0)
    low = text.lower()
    nums = [_fmt(_number(n)) for n in _NUM_RE.findall(text)]
    if kind == "email":
        return (f"email:{low}",)
    if kind == "url":
        return (f"url:{normal_url(text)}",)
    if kind == "phone":
        return ("phone:" + re.sub(r"\D", "", text),)
    if kind == "time":
        g = m.groups()
        if g[5]:
            return (f"time:{0 if g[5].lower() == 'midnight' else 12}:00",)
        if g[3]:
            return (f"time:{int(g[3])}:{g[4]}",)
        hour = int(g[0]) % 12 + (12 if g[2].lower() == "p" else 0)
        return (f"time:{hour}:{g[1] or '00'}",)
    if kind == "date":
        g = m.groups()
        if g[1] or g[3]:
            day, month, year = (g[0], g[1], g[2]) if g[1] else (g[4], g[3], g[5])
            month_no = MONTHS[month.lower().rstrip(".")]
            return (f"date:{month_no}-{int(day)}",) + ((f"number:{year}",) if year else ())
        if "-" in text:
            year, month, day = text.split("-")
            return (f"date:{int(month)}-{int(day)}", f"number:{year}")
        return (f"date:{text}",)
    if kind == "money":
        words = re.findall(r"us\$|c\$|[$€£]|[a-z]+", low)
        cur = next((_CURRENCY[w] for w in words if w in _CURRENCY), "usd")
        if cur == "cent":
            cur, nums = "usd", [_fmt(Decimal(n) / 100) for n in nums]
        return tuple(f"money:{cur}:{n}" for n in nums)
    if kind == "percent":
        return tuple(f"percent:{n}" for n in nums)
    if kind == "duration":
        unit = re.findall(r"(minute|min|hour|hr|day|week|month|year|night)s?\b", low)[-1]
        unit = _UNIT.get(unit, unit)
        return (f"duration:{unit}:{'-'.join(nums)}",)
    if kind == "weekday":
        return (f"weekday:{low.rstrip('s')}",)
    if kind == "month":
        return (f"month:{MONTHS[low]}",)
    return (f"number:{_fmt(_number(re.sub(r'(st|nd|rd|th)$', '', low)))}",)


def normal_url(url: str) -> str:
    url = re.sub(r"^(?:https?://)?(?:www\.)?", "", url.lower())
    return url.rstrip(".,;:!?/")


def extract_facts(text: str) -> list[Fact]:
    """The checkable facts of ``text`` in order, names included (see ``_names``)."""
    taken: list[tuple[int, int]] = []
    facts: list[Fact] = []
    for kind, pattern in PATTERNS:
        for m in pattern.finditer(text):
            s, e = m.span()
            if kind == "url":
                e = s + len(m.group(0).rstrip(".,;:!?"))
            if any(s < te and ts < e for ts, te in taken):
                continue
            if kind == "phone" and len(re.sub(r"\D", "", m.group(0))) < 7:
                continue
            taken.append((s, e))
            if kind != "skip":
                facts.append(Fact(kind, text[s:e], _keys(kind, m), s, e))
    facts += _names(text, taken)
    return sorted(facts, key=lambda f: f.start)


def _names(text: str, taken: list[tuple[int, int]]) -> list[Fact]:
    """Capitalised names: runs of capitalised words, one capitalised word mid-sentence, or a
    model name ("X200", "TrailLite"). A sentence's first word is capitalised anyway, so it is
    left out unless it is a model name: "Repairs take 3 weeks" names nothing, "Trail Promise
    covers it" names "Promise" (a name invented in first place goes unseen: the price of
    never taking "Unfortunately" or "Standard" for a product)."""
    out = []
    for m in _NAME.finditer(text):
        s = m.start()
        if any(s < te and ts < m.end() for ts, te in taken):
            continue
        words = m.group(0).split()
        before = text[:s].rstrip(" \"'“‘(*-•")
        if (not before or before[-1] in ".!?:\n") and not re.search(r"\d|[a-z][A-Z]", words[0]):
            words, s = words[1:], s + len(words[0]) + 1
        words = [w for w in words if w.lower() not in ("i", "i'm", "i'll", "i've", "i'd")]
        if not words or all(w.lower() in _GENERIC_NAME for w in words):
            continue
        name = " ".join(words)
        key = re.sub(r"['’]s$", "", name.lower())
        out.append(Fact("name", name, (f"name:{key}",), s, s + len(name)))
    return out


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
                keys = {k for f in facts for k in _with_parts(f)}
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


def _with_parts(fact: Fact) -> Iterable[str]:
    """A passage fact's keys, plus the ends of a range ("3 to 5 days" also says "5 days")
    and its bare numbers (so a plain "30" in an answer matches "30 days")."""
    for key in fact.keys:
        yield key
        kind, _, rest = key.partition(":")
        if kind in ("duration", "money", "percent"):
            head, _, value = rest.rpartition(":")
            for part in value.split("-"):
                yield f"{kind}:{head}:{part}" if head else f"{kind}:{part}"
                yield f"number:{part}"
        elif kind == "date" and "-" in rest:
            month, day = rest.split("-")
            yield f"month:{month}"
            yield f"number:{day}"
        elif kind == "time":
            yield f"number:{int(rest.split(':')[0]) % 12 or 12}"


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
