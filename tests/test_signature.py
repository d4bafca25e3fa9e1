"""Plivo's V3 signature, checked against the vectors published in Plivo's SDK test suites."""

from __future__ import annotations

import pytest

from service.plivo.signature import canonical_v3, matches, sign_v3

TOKEN = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4"
NONCE = "31627761595286130198"
PARAMS = [
    ("Direction", "outbound"),
    ("From", "19792014278"),
    ("ALegUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
    ("CallStatus", "in-progress"),
    ("BillRate", "0.002"),
    ("ParentAuthID", "MANWVLYTK4ZWU1YTY4QA"),
    ("To", "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com"),
    ("ALegRequestUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
    ("CallUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
    ("RequestUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
    ("SIP-H-To", "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1"),
    ("SessionStart", "2020-04-08 11:34:33.238707"),
    ("Event", "StartApp"),
]
WITH_QUERY = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml/?a=b&c=d"
WITHOUT_QUERY = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml"


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("POST", WITH_QUERY, "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c="),
        ("GET", WITH_QUERY, "UBq8jAtd32wR8EK9VgxbBn4n5rpI/l1H9iN4WfSEHFQ="),
        ("POST", WITHOUT_QUERY, "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0="),
        ("GET", WITHOUT_QUERY, "i/MQsaQSAd6fiKhOh2qeeeLHZ9faldADSb3/7+Akfbc="),
    ],
)
def test_published_vectors(method: str, url: str, expected: str) -> None:
    assert sign_v3(TOKEN, NONCE, method, url, PARAMS) == expected


def test_fragment_is_not_signed() -> None:
    plain = sign_v3(TOKEN, NONCE, "POST", WITHOUT_QUERY, PARAMS)
    with_retry_fragment = sign_v3(TOKEN, NONCE, "POST", WITHOUT_QUERY + "#ct=2000&rc=3", PARAMS)
    assert with_retry_fragment == plain


def test_parameter_order_does_not_matter_but_values_do() -> None:
    shuffled = list(reversed(PARAMS))
    assert sign_v3(TOKEN, NONCE, "POST", WITHOUT_QUERY, shuffled) == sign_v3(
        TOKEN, NONCE, "POST", WITHOUT_QUERY, PARAMS
    )
    changed = [*PARAMS[:-1], ("Event", "Hangup")]
    assert sign_v3(TOKEN, NONCE, "POST", WITHOUT_QUERY, changed) != sign_v3(
        TOKEN, NONCE, "POST", WITHOUT_QUERY, PARAMS
    )


def test_canonical_forms() -> None:
    assert canonical_v3("POST", "https://h/p") == "https://h/p"
    assert canonical_v3("POST", "https://h/p?b=2&a=1") == "https://h/p?a=1&b=2"
    assert (
        canonical_v3("POST", "https://h/p?z=1", [("b", "2"), ("a", "1")]) == "https://h/p?z=1.a1b2"
    )
    assert canonical_v3("GET", "https://h/p?b=2&a=1&a=0") == "https://h/p?a=0&a=1&b=2"
    assert canonical_v3("GET", "https://h/p?x=%20y") == "https://h/p?x= y"


def test_any_of_several_signatures_matches() -> None:
    good = sign_v3(TOKEN, NONCE, "POST", WITHOUT_QUERY, PARAMS)
    assert matches(good, f"bm90LWl0, {good}")
    assert matches(good, good)
    assert not matches(good, "bm90LWl0,YWxzby1ub3Q=")
    assert not matches(good, "")
