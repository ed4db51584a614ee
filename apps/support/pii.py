"""Mask personal data (emails, phone numbers, card and account numbers) before storing text.

Masking happens before a question is retrieved against, sent to the generator or written
to the database, so the bot never needs, logs or repeats a customer's card number.
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
# 13-19 digits, optionally grouped by spaces or dashes: card numbers (checked with Luhn).
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
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
    """``text`` with personal data replaced by [EMAIL], [CARD], [ACCOUNT] or [PHONE]."""
    text = _EMAIL.sub("[EMAIL]", text)
    text = _IBAN.sub("[ACCOUNT]", text)
    text = _CARD.sub(_card, text)
    text = _PHONE.sub(_phone, text)
    return _ACCOUNT.sub("[ACCOUNT]", text)


_PLACEHOLDER = re.compile(r"\[(?:EMAIL|CARD|ACCOUNT|PHONE)\]")


def strip_placeholders(text: str) -> str:
    """``text`` without mask placeholders, for retrieval: "[EMAIL]" says nothing about what
    the customer wants but pulls the query towards "change my email" templates."""
    return " ".join(_PLACEHOLDER.sub(" ", text).split()) or text
