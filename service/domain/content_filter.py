"""Filters on content: which events a subscription receives, beyond their types.

A filter is a JSON object whose keys are dotted paths into the event (`type`,
`data.recording.recording_type`, `data.recording.recording_duration_ms`, `data.callback.From`,
`data.source`, ...) and whose values are a value the path must equal, or an object of operators:
`$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte`, `$in`, `$nin`, `$prefix`, `$exists`. The keys `$and`
and `$or` (lists of filters) and `$not` (a filter) combine filters; every key of one object must
hold. `{}` matches every event. Example:

    {"data.recording.recording_type": "conference",
     "data.recording.recording_duration_ms": {"$gte": 30000}}

A filter is checked when the subscription is written (`check`: what is wrong, named by its
place) and evaluated when an event is fanned out (`matches`): an event that does not match is
never queued for the subscription. No code of the caller's runs: it is data, read here.
Comparisons hold between numbers, or between strings; anything else does not match.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 10
MAX_BYTES = 4096
COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
OPERATORS = (*COMPARISONS, "$in", "$nin", "$prefix", "$exists")
MISSING = object()


def check(spec: Any) -> None:
    """ValueError naming the place and the problem, unless `spec` is a filter."""
    if len(json.dumps(spec, default=str)) > MAX_BYTES:
        raise ValueError(f"is over {MAX_BYTES} bytes")
    _check(spec, "", 1)


def _check(spec: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"{where or 'the filter'}: nested deeper than {MAX_DEPTH} levels")
    if not isinstance(spec, dict):
        raise ValueError(f"{where or 'the filter'}: must be an object")
    for key, value in spec.items():
        place = f"{where}.{key}" if where else key
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise ValueError(f"{place}: must be a list of filters")
            for n, each in enumerate(value):
                _check(each, f"{place}[{n}]", depth + 1)
        elif key == "$not":
            _check(value, place, depth + 1)
        elif key.startswith("$"):
            raise ValueError(f"{place}: not an operator a filter may start with")
        elif not key or any(not part for part in key.split(".")):
            raise ValueError(f"{place or 'a key'}: a dotted path of names")
        elif isinstance(value, dict):
            _check_operators(value, place)


def _check_operators(operators: dict[str, Any], place: str) -> None:
    if not operators:
        raise ValueError(f"{place}: an empty object of operators")
    for name, operand in operators.items():
        where = f"{place}.{name}"
        if name not in OPERATORS:
            raise ValueError(f"{where}: not one of {', '.join(OPERATORS)}")
        if name in ("$in", "$nin") and not isinstance(operand, list):
            raise ValueError(f"{where}: must be a list")
        if name == "$prefix" and not isinstance(operand, str):
            raise ValueError(f"{where}: must be a string")
        if name == "$exists" and not isinstance(operand, bool):
            raise ValueError(f"{where}: must be true or false")
        if name in COMPARISONS[2:] and not _comparable(operand):
            raise ValueError(f"{where}: must be a number or a string")


def _comparable(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def matches(spec: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether `event` matches the (checked) filter `spec`."""
    for key, value in spec.items():
        if key == "$and":
            if not all(matches(each, event) for each in value):
                return False
        elif key == "$or":
            if not any(matches(each, event) for each in value):
                return False
        elif key == "$not":
            if matches(value, event):
                return False
        elif not _holds(_at(event, key), value):
            return False
    return True


def _at(event: Any, path: str) -> Any:
    """The value at a dotted path, or MISSING."""
    found = event
    for part in path.split("."):
        if not isinstance(found, dict) or part not in found:
            return MISSING
        found = found[part]
    return found


def _holds(found: Any, wanted: Any) -> bool:
    if not isinstance(wanted, dict):
        return found is not MISSING and _equal(found, wanted)
    return all(_operator(found, name, operand) for name, operand in wanted.items())


def _operator(found: Any, name: str, operand: Any) -> bool:
    if name == "$exists":
        return (found is not MISSING) is operand
    if found is MISSING:
        return name in ("$ne", "$nin")
    if name == "$eq":
        return _equal(found, operand)
    if name == "$ne":
        return not _equal(found, operand)
    if name == "$in":
        return any(_equal(found, each) for each in operand)
    if name == "$nin":
        return not any(_equal(found, each) for each in operand)
    if name == "$prefix":
        return isinstance(found, str) and found.startswith(operand)
    if not (_comparable(found) and _comparable(operand)):
        return False
    if isinstance(found, str) != isinstance(operand, str):
        return False
    if name == "$gt":
        return bool(found > operand)
    if name == "$gte":
        return bool(found >= operand)
    if name == "$lt":
        return bool(found < operand)
    return bool(found <= operand)


def _equal(found: Any, wanted: Any) -> bool:
    """Equality as JSON means it: `true` is not `1`."""
    if isinstance(found, bool) or isinstance(wanted, bool):
        return isinstance(found, bool) and isinstance(wanted, bool) and found == wanted
    return bool(found == wanted)
