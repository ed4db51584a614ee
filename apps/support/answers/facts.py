"""Checkable facts of a text and their normal forms, for the fact check (``grounding``).

Amounts, percentages, durations, dates, times, plain numbers, e-mail addresses, URLs, phone
numbers and names, each with the normal forms under which one fact written two ways compares
equal: "$25" = "25 dollars" = "USD 25", "two weeks" = "2 weeks", "1-2" = "1 to 2",
"1,000" = "1000", "2 pm" = "14:00". Regular expressions only: deterministic and model-free.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal


def _words(text: str) -> list[str]:
    return text.split()


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
_GENERIC_NAME = set(
    _words(
        "customer customers service services support team care help desk center centre "
        "department faq faqs i dear hi hello best regards"
    )
)
NUMERIC = {"time", "date", "money", "percent", "duration", "weekday", "month", "number"}


def _number(text: str) -> Decimal:
    """'1,000' -> 1000, 'twenty-five' -> 25, '6.95' -> 6.95."""
    text = text.lower().strip()
    if text[0].isdigit():
        return Decimal(text.replace(",", ""))
    return Decimal(sum(WORD_NUMBERS[w] for w in re.split(r"[- ]+", text) if w))


def fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


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
    nums = [fmt(_number(n)) for n in _NUM_RE.findall(text)]
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
            cur, nums = "usd", [fmt(Decimal(n) / 100) for n in nums]
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
    return (f"number:{fmt(_number(re.sub(r'(st|nd|rd|th)$', '', low)))}",)


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


def with_parts(fact: Fact) -> Iterable[str]:
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
