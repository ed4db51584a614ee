"""Mask personal data (emails, phone numbers, card and account numbers) before storing text.

Masking happens before a question is retrieved against, sent to the generator or written
to the database, so the bot never needs, logs or repeats a customer's card number.

Customers do not write data the way forms do, so the patterns also cover lower-case IBANs
(checked with their mod-97 checksum, so that ordinary words are never taken for one),
addresses with non-ASCII letters (``jürgen@müller.de``), spelled-out addresses
(``jane dot doe at example dot com``) and a card's expiry date and security code written
after their keyword (``exp 12/27 cvv 123``).
"""

from __future__ import annotations

import re

# Unicode-aware: local part and domain labels may hold any letter (jürgen@müller.de).
_EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")
# Spelled-out addresses: "jane dot doe at example dot com", "jane [at] example [dot] com".
# Plain " at " counts only before a domain with a spelled dot, so "meet at the store" and
# "order at northwind-outfitters.example" stay as they are.
_BRACKET_AT = r"\s*[\[({<]\s*at\s*[\])}>]\s*"
_SPELLED_DOT = r"(?:\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+)"
_LABEL = r"(?!(?:the|a|an|this|that|my|your|our|their|his|her|its)\b)[^\W_][\w-]*"
_SPELLED_EMAIL = re.compile(
    rf"(?<![\w.]){_LABEL}(?:(?:{_SPELLED_DOT}|[._+-]){_LABEL})*"
    rf"(?:\s+at\s+{_LABEL}(?:{_SPELLED_DOT}{_LABEL})+"  # jane at example dot com
    rf"|{_BRACKET_AT}{_LABEL}(?:(?:{_SPELLED_DOT}|\.){_LABEL})+)"  # jane [at] example.com
    r"(?![\w-])",
    re.IGNORECASE,
)
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,4})?\b")
# 13-19 digits, optionally grouped by spaces or dashes: card numbers (checked with Luhn).
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
# A card's expiry date and security code, recognised by the keyword before them.
_EXPIRY = re.compile(
    r"\b(?:exp(?:iry|iration|ires|\.)?(?:\s*date)?|valid\s+(?:thru|through|until)|"
    r"g[üu]ltig\s+bis|date\s+d'expiration|caducidad|vence)\s*[:.]?\s*"
    r"(?:0?[1-9]|1[0-2])\s*[/-]\s*(?:\d{4}|\d{2})\b",
    re.IGNORECASE,
)
_CVV = re.compile(
    r"\b(?:cvv2?|cvc2?|cid|csc|security\s+code|card\s+verification(?:\s+(?:code|value))?|"
    r"pr[üu]fnummer|cryptogramme)\s*(?:code|number|no\.?|is|:|=|-|#)*\s*\d{3,4}\b",
    re.IGNORECASE,
)
_PHONE = re.compile(r"(?<![\w+(])(?:\+|00|\()?\d[\d ()./-]{6,18}\d\b")
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})")
_ACCOUNT = re.compile(r"\b\d{8,}\b")


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` passes the Luhn checksum used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """True when ``text`` (spaces allowed, any case) passes the IBAN mod-97 checksum."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rotated = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rotated)) % 97 == 1


def _iban(match: re.Match[str]) -> str:
    text = match.group(0)
    # Upper case is how IBANs are printed; other spellings must prove it with the checksum
    # ("me12 have been here" has the shape of one).
    return "[ACCOUNT]" if text.isupper() or iban_ok(text) else text


# Words that come before " at <site> dot com" in ordinary prose ("visit us at example dot
# com"): a site named that way is not someone's address.
_NOT_A_MAILBOX = re.compile(
    r"us|me|him|them|it|look|visit|find|online|shop|order|available|here|there|is|are|was|be",
    re.IGNORECASE,
)


def _spelled_email(match: re.Match[str]) -> str:
    text = match.group(0)
    local = re.split(r"\s+at\s+", text, maxsplit=1, flags=re.IGNORECASE)[0]
    return text if _NOT_A_MAILBOX.fullmatch(local) else "[EMAIL]"


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[CARD]" if luhn_ok(digits) else "[ACCOUNT]"


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    # Dates ("2024-05-01", "01/05/2024") and amounts ("1,299.00") are not phone numbers.
    if len(digits) < 7 or _DATE.fullmatch(text):
        return text
    if text.isdigit():  # an unbroken run of digits is an account or order number
        return "[ACCOUNT]" if len(digits) >= 8 else text
    return "[PHONE]"


def mask_pii(text: str) -> str:
    """``text`` with personal data replaced by [EMAIL], [CARD], [ACCOUNT], [PHONE],
    [EXPIRY] or [CVV]."""
    text = _EMAIL.sub("[EMAIL]", text)
    text = _SPELLED_EMAIL.sub(_spelled_email, text)
    text = _IBAN.sub(_iban, text)
    text = _CARD.sub(_card, text)
    text = _EXPIRY.sub("[EXPIRY]", text)
    text = _CVV.sub("[CVV]", text)
    text = _PHONE.sub(_phone, text)
    return _ACCOUNT.sub("[ACCOUNT]", text)


_PLACEHOLDER = re.compile(r"\[(?:EMAIL|CARD|ACCOUNT|PHONE|EXPIRY|CVV)\]")


def strip_placeholders(text: str) -> str:
    """``text`` without mask placeholders, for retrieval: "[EMAIL]" says nothing about what
    the customer wants but pulls the query towards "change my email" templates."""
    return " ".join(_PLACEHOLDER.sub(" ", text).split()) or text
