"""`/metrics`: Prometheus's text format, behind its token, summed over every process."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from service.metrics import Recorder
from service.storage.metrics import MetricsStore
from tests.support.pipeline_env import Relay, running_relay
from tests.support.receivers import Receiver
from tests.support.settings import ADMIN_TOKEN
from tests.support.waiting import eventually
from tests.test_delivery import FAST, received, subscriber

METRICS_TOKEN = "metrics-scrape-token-for-tests"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(relay: Relay, token: str = METRICS_TOKEN) -> Samples:
    answer = await relay.http.get(
        f"{relay.url}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_recording_through_the_pipeline_shows_in_every_metric(redis_url: str) -> None:
    async with running_relay(redis_url, metrics_token=METRICS_TOKEN, **FAST) as relay:
        receiver = Receiver(answers=[500, 200])  # the first attempt fails, the rest succeed
        async with subscriber(relay, receiver):
            recording_id = await relay.call()
            assert (await relay.settled(recording_id))["status"] == "transcribed"
            await received(receiver, 4)  # completed (twice), transcribed, archived

            samples: Samples = {}

            async def counted() -> bool:  # each process adds its counts every few seconds
                samples.update(await scrape(relay))
                return value(samples, "relay_webhook_attempts_total", outcome="succeeded") >= 3

            await eventually(counted, within=20, what="the counts in /metrics")
            callbacks = "relay_callbacks_total"
            assert value(samples, callbacks, kind="recording", outcome="queued") == 1
            assert value(samples, callbacks, kind="transcription", outcome="stored") == 1
            assert value(samples, "relay_recordings_accepted_total", source="callback") == 1
            assert value(samples, "relay_recordings_total", status="transcribed") == 1
            plivo = "relay_plivo_requests_total"
            assert value(samples, plivo, endpoint="GET Recording", status="200") == 1
            assert value(samples, plivo, endpoint="POST Transcription", status="201") == 1
            assert value(samples, plivo, endpoint="GET Transcription", status="200") == 2
            assert value(samples, "relay_webhook_attempts_total", outcome="retry") == 1
            assert value(samples, "relay_webhook_delivery_seconds_count") == 3
            assert value(samples, "relay_webhook_delivery_seconds_bucket", le="+Inf") == 3
            assert value(samples, "relay_transcription_seconds_count") == 1
            assert 0 < value(samples, "relay_transcription_seconds_sum") < 20
            for queue in ("pipeline_jobs_due", "webhooks_due", "webhooks_waiting"):
                assert ("relay_queue_depth", (("queue", queue),)) in samples


async def test_metrics_need_their_token_and_not_the_admin_one_when_set(redis_url: str) -> None:
    async with running_relay(redis_url, worker=False, metrics_token=METRICS_TOKEN) as relay:
        url = f"{relay.url}/metrics"
        assert (await relay.http.get(url)).status_code == 401
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert (await relay.http.get(url, headers=admin)).status_code == 401
        await scrape(relay)
    async with running_relay(redis_url, worker=False) as relay:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        off = await relay.http.get(f"{relay.url}/metrics", headers=admin)
        assert off.status_code == 404  # unset: no metrics, whatever the admin tokens
        assert "METRICS_TOKEN" in off.json()["error"]


async def test_counts_of_several_processes_add_up(redis: Redis) -> None:
    store = MetricsStore(redis)
    web, worker, other_worker = Recorder(store), Recorder(store), Recorder(store)
    web.count("relay_callbacks_total", kind="recording", outcome="queued")
    worker.count("relay_recordings_total", status="transcribed")
    other_worker.count("relay_recordings_total", status="transcribed", amount=2)
    worker.observe("relay_transcription_seconds", 3.0)
    other_worker.observe("relay_transcription_seconds", 400.0)
    for process in (web, worker, other_worker):
        await process.flush()
        assert not process.pending
    totals = await store.totals()
    assert totals[("relay_recordings_total", (("status", "transcribed"),))] == 3
    assert totals[("relay_transcription_seconds_count", ())] == 2
    assert totals[("relay_transcription_seconds", (("le", "5"),))] == 1
    assert totals[("relay_transcription_seconds", (("le", "600"),))] == 1
    [minute] = await store.minutes(1)
    assert minute[("relay_recordings_total", (("status", "transcribed"),))] == 3
