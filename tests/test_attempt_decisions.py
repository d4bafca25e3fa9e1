"""What follows from a webhook attempt's answer (`service.domain.attempts.decide`): no server,
no Redis, the whole retry policy."""

from __future__ import annotations

import pytest

from service.domain.attempts import Attempt, Decision, Outcome, RetryPolicy, decide

POLICY = RetryPolicy(schedule=(0, 5, 300, 1800), disable_after=86_400)


def answer(status: int | None, retry_after: float | None = None) -> Attempt:
    error = None if status is not None else "ConnectError: refused"
    return Attempt(at=0.0, status_code=status, retry_after=retry_after, error=error)


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_succeeds_and_counts_no_failure(status: int) -> None:
    assert decide(answer(status), 3, 0.0, POLICY, 1.0) == Decision(Outcome.SUCCEEDED)


@pytest.mark.parametrize("status", [None, 301, 400, 404, 429, 500, 503])
def test_anything_else_is_tried_again_along_the_schedule(status: int | None) -> None:
    first = decide(answer(status), 0, 0.0, POLICY, 1.0)
    assert first == Decision(Outcome.RETRY, retry_in=5, counts=True)
    third = decide(answer(status), 2, 0.0, POLICY, 1.0)
    assert third.retry_in == 1800


def test_the_delay_carries_its_jitter() -> None:
    assert decide(answer(500), 1, 0.0, POLICY, 0.8).retry_in == pytest.approx(240)
    assert decide(answer(500), 1, 0.0, POLICY, 1.2).retry_in == pytest.approx(360)


def test_a_retry_after_longer_than_the_schedule_is_honoured_a_shorter_one_not() -> None:
    assert decide(answer(503, retry_after=900), 1, 0.0, POLICY, 1.0).retry_in == 900
    assert decide(answer(503, retry_after=1), 1, 0.0, POLICY, 1.0).retry_in == 300


def test_a_spent_schedule_fails_the_delivery_without_disabling() -> None:
    spent = decide(answer(500), len(POLICY.schedule) - 1, 0.0, POLICY, 1.0)
    assert spent == Decision(Outcome.FAILED, counts=True)


def test_410_gone_fails_at_once_and_disables_the_subscription() -> None:
    gone = decide(answer(410), 0, 0.0, POLICY, 1.0)
    assert gone.outcome == Outcome.FAILED and gone.counts
    assert gone.disable == "the endpoint answered 410 Gone"


def test_failing_past_the_disable_window_disables_on_the_next_failure() -> None:
    still = decide(answer(500), 0, POLICY.disable_after - 1, POLICY, 1.0)
    assert still.outcome == Outcome.RETRY and still.disable is None
    over = decide(answer(500), 0, POLICY.disable_after, POLICY, 1.0)
    assert over.outcome == Outcome.FAILED
    assert over.disable == "failing without a success for too long"


def test_a_success_after_a_long_failing_run_is_still_a_success() -> None:
    assert decide(answer(200), 0, 10 * 86_400, POLICY, 1.0).outcome == Outcome.SUCCEEDED


def test_an_attempt_log_keeps_no_field_its_log_says_itself() -> None:
    attempt = Attempt(at=1.0, subscription_id="s", recording_id="r", msg_id="m", type="t")
    assert set(attempt.record()) == {
        "at",
        "status_code",
        "latency_ms",
        "error",
        "response_body",
        "retry_after",
    }
