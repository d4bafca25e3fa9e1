"""Filters on content (`service.domain.content_filter`): what a subscription's `filter` lets
through, and what a filter may be. No server."""

from __future__ import annotations

from typing import Any

import pytest

from service.domain.content_filter import check, matches

EVENT: dict[str, Any] = {
    "type": "recording.transcribed",
    "data": {
        "source": "callback",
        "recording": {"recording_type": "conference", "recording_duration_ms": 45_000},
        "callback": {"From": "14155550100", "To": "14155550199"},
        "transcribe": True,
    },
}


@pytest.mark.parametrize(
    ("spec", "passes"),
    [
        ({}, True),
        ({"type": "recording.transcribed"}, True),
        ({"type": "recording.completed"}, False),
        ({"data.recording.recording_type": "conference"}, True),
        ({"data.recording.recording_duration_ms": {"$gte": 30_000}}, True),
        ({"data.recording.recording_duration_ms": {"$gt": 45_000}}, False),
        ({"data.recording.recording_duration_ms": {"$lt": 60_000, "$gte": 45_000}}, True),
        ({"data.callback.From": {"$prefix": "1415"}}, True),
        ({"data.callback.From": {"$in": ["14155550100", "x"]}}, True),
        ({"data.callback.From": {"$nin": ["14155550100"]}}, False),
        ({"data.source": {"$ne": "backfill"}}, True),
        ({"data.missing": {"$exists": False}}, True),
        ({"data.missing": {"$exists": True}}, False),
        ({"data.missing": "x"}, False),
        ({"data.missing": {"$ne": "x"}}, True),
        ({"data.transcribe": 1}, False),  # true is not 1
        ({"data.recording.recording_duration_ms": {"$gt": "4"}}, False),  # no number to string
        ({"$or": [{"type": "recording.completed"}, {"data.source": "callback"}]}, True),
        ({"$and": [{"type": "recording.transcribed"}, {"data.source": "backfill"}]}, False),
        ({"$not": {"data.source": "backfill"}}, True),
        (
            {
                "data.recording.recording_type": "conference",
                "data.recording.recording_duration_ms": {"$gte": 30_000},
            },
            True,
        ),
    ],
)
def test_a_filter_lets_through_what_it_says(spec: dict[str, Any], passes: bool) -> None:
    check(spec)
    assert matches(spec, EVENT) is passes


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ([], "the filter: must be an object"),
        ({"$where": "1"}, "$where: not an operator"),
        ({"a..b": 1}, "a..b: a dotted path"),
        ({"a": {"$regex": "x"}}, "a.$regex: not one of"),
        ({"a": {}}, "a: an empty object of operators"),
        ({"a": {"$in": "x"}}, "a.$in: must be a list"),
        ({"a": {"$gt": [1]}}, "a.$gt: must be a number or a string"),
        ({"a": {"$exists": 1}}, "a.$exists: must be true or false"),
        ({"$or": []}, "$or: must be a list of filters"),
        ({"$or": [{"a": 1}, 3]}, "$or[1]: must be an object"),
        ({"a": "x" * 5000}, "over 4096 bytes"),
    ],
)
def test_a_bad_filter_is_refused_naming_its_place(spec: Any, named: str) -> None:
    with pytest.raises(ValueError) as refused:
        check(spec)
    assert named in str(refused.value)


def test_filters_nest_ten_levels_and_no_more() -> None:
    spec: dict[str, Any] = {"type": "recording.transcribed"}
    for _ in range(9):
        spec = {"$and": [spec]}
    check(spec)
    assert matches(spec, EVENT)
    with pytest.raises(ValueError, match="deeper than 10"):
        check({"$and": [spec]})
