"""Personal data the masker used to miss (issue 10, item 13), and prose it must leave alone."""

from __future__ import annotations

import pytest

from apps.support.answers.pii import iban_ok, mask_pii, strip_placeholders


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # IBANs in any case; lower case must pass the checksum
        ("IBAN de89 3704 0044 0532 0130 00 please", "IBAN [ACCOUNT] please"),
        ("iban: De89370400440532013000", "iban: [ACCOUNT]"),
        ("IBAN GB82 WEST 1234 5698 7654 32 please", "IBAN [ACCOUNT] please"),
        ("gb82 west 1234 5698 7654 32", "[ACCOUNT]"),
        # addresses with non-ASCII letters
        ("write to jürgen@müller.de today", "write to [EMAIL] today"),
        ("ZOË.Ødegaard@posten.no", "[EMAIL]"),
        # a card's expiry date and security code after their keyword
        ("card 4111 1111 1111 1111 exp 12/27 cvv 123", "card [CARD] [EXPIRY] [CVV]"),
        ("expiry date: 03/2029, CVC: 1234", "[EXPIRY], [CVV]"),
        ("valid thru 7/26 security code 987", "[EXPIRY] [CVV]"),
        ("Prüfnummer 321", "[CVV]"),
        # spelled-out addresses
        ("jane dot doe at example dot com", "[EMAIL]"),
        ("mail Jane DOT Doe AT Example DOT Com now", "mail [EMAIL] now"),
        ("jane [at] example [dot] com", "[EMAIL]"),
        ("jane.doe (at) example.com", "[EMAIL]"),
        ("bob at mail dot example dot co dot uk, thanks", "[EMAIL], thanks"),
    ],
)
def test_missed_personal_data_is_masked(text: str, masked: str) -> None:
    assert mask_pii(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "I left it at the store",
        "back in the dot com era",
        "I worked at the dot com boom",
        "look at example dot com",
        "visit us at northwind dot com",
        "You can follow your order at northwind-outfitters.example/orders: sign in",
        "me12 have been here before",  # the shape of a lower-case IBAN, not the checksum
        "we expect 12/27 deliveries and 123 parcels",
        "the expedition starts at 9 am",
        "order 2024-05-01, 3 tents, $129.99",
        "Check a balance with the card number and PIN.",
    ],
)
def test_ordinary_text_is_not_masked(text: str) -> None:
    assert mask_pii(text) == text


def test_iban_checksum() -> None:
    assert iban_ok("DE89 3704 0044 0532 0130 00") and iban_ok("gb82west12345698765432")
    assert not iban_ok("DE88 3704 0044 0532 0130 00") and not iban_ok("me12havebeenhere")


def test_new_placeholders_are_left_out_of_retrieval() -> None:
    assert strip_placeholders("my card [EXPIRY] [CVV] was declined") == "my card was declined"
