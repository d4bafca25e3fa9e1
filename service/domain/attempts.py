"""A webhook attempt: what came back, and what follows from it.

`Attempt` is one model from the deliverer to the attempt logs (Redis, then the archive) to the
management API and its OpenAPI document. `decide` is the whole retry policy, a pure function of
the answer: succeeded; due again along `DELIVERY_RETRY_SCHEDULE` (with +/-20% jitter, never
sooner than a `Retry-After`); failed once the schedule is spent; and the subscription disabled
on `410 Gone` or after failing for `DELIVERY_DISABLE_AFTER` without a success.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

# What a log leaves out of an attempt it keeps, because the log itself says it.
SAID_BY_THE_LOG = frozenset({"subscription_id", "recording_id", "msg_id", "type"})


class Outcome(StrEnum):
    """How an attempt ended."""

    SUCCEEDED = "succeeded"
    RETRY = "retry"  # due again later
    FAILED = "failed"  # for good: visible, and can be replayed
    DROPPED = "dropped"  # its subscription was deleted: nothing is kept


class Attempt(BaseModel):
    """One webhook attempt, as the attempt logs keep it and the API shows it."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    at: float = Field(description="epoch seconds")
    subscription_id: str = ""
    recording_id: str = ""
    msg_id: str = Field(default="", description="the webhook-id")
    type: str = ""
    status_code: int | None = None
    latency_ms: float = 0.0
    error: str | None = None
    response_body: str = Field(default="", description="the first 4 KiB of the answer")
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """The endpoint said it is gone for good (410)."""
        return self.status_code == 410

    def record(self) -> dict[str, object]:
        """What an attempt log keeps of it, before it says which subscription and recording."""
        return self.model_dump(exclude=set(SAID_BY_THE_LOG))


@dataclass(frozen=True)
class Decision:
    """What follows from an attempt: its outcome, when to try again (`retry_in` s), whether
    the subscription is to be disabled (`disable`: why), and whether it counts as the
    subscriber failing (towards `DELIVERY_DISABLE_AFTER`)."""

    outcome: Outcome
    retry_in: float = 0.0
    disable: str | None = None
    counts: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """`DELIVERY_RETRY_SCHEDULE` and `DELIVERY_DISABLE_AFTER`."""

    schedule: Sequence[float]
    disable_after: float


def decide(
    attempt: Attempt, tries_before: int, failing_for: float, policy: RetryPolicy, jitter: float
) -> Decision:
    """What follows from `attempt`, the `tries_before + 1`th of its delivery, for a subscriber
    failing for `failing_for` s (0 if this is its first failure); `jitter` is a factor in
    [0.8, 1.2]."""
    if attempt.succeeded:
        return Decision(Outcome.SUCCEEDED)
    if attempt.gone:
        return Decision(Outcome.FAILED, disable="the endpoint answered 410 Gone", counts=True)
    if failing_for >= policy.disable_after:
        reason = "failing without a success for too long"
        return Decision(Outcome.FAILED, disable=reason, counts=True)
    tries = tries_before + 1
    if tries >= len(policy.schedule):
        return Decision(Outcome.FAILED, counts=True)
    delay = policy.schedule[tries] * jitter
    if attempt.retry_after is not None:
        delay = max(delay, attempt.retry_after)
    return Decision(Outcome.RETRY, retry_in=delay, counts=True)
