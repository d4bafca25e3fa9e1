"""The deployment's health as an operator reads it: `GET /v1/health`, the dashboard's overview
and `/metrics` (workers' heartbeats, how long due work has waited, Redis's figures, warnings)."""

from __future__ import annotations

import time
from pathlib import Path

from redis.asyncio import Redis

from service.local.embedded_redis import EmbeddedRedis
from service.storage import jobs
from tests.support.pipeline_env import Relay, running_relay
from tests.support.settings import ADMIN_TOKEN
from tests.support.waiting import eventually
from tests.test_dashboard import logged_in
from tests.test_metrics import METRICS_TOKEN, scrape, value

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def report(relay: Relay) -> dict:
    answer = await relay.http.get(f"{relay.url}/v1/health", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_the_health_report_needs_the_admin_token(redis_url: str) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        answer = await relay.http.get(f"{relay.url}/v1/health")
        assert answer.status_code == 401


async def test_no_worker_alive_is_a_warning_until_one_beats(redis_url: str) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        found = await report(relay)
        assert found["workers"]["alive"] == 0
        assert any("No worker" in warning for warning in found["warnings"])
        assert found["redis"]["maxmemory_policy"] == "noeviction"
        assert found["redis"]["connected_clients"] >= 1
        relay.start_worker()

        async def beating() -> bool:
            return (await report(relay))["workers"]["alive"] == 1

        await eventually(beating, what="the worker's heartbeat")
        found = await report(relay)
        [beat] = found["workers"]["heartbeats"]
        assert beat["alive"] and beat["seconds_ago"] < 10
        assert not any("No worker" in warning for warning in found["warnings"])
        assert relay.worker is not None
        relay.worker.stop()

        async def gone() -> bool:
            return (await report(relay))["workers"]["heartbeats"] == []

        await eventually(gone, what="a stopped worker leaving the report")


async def test_due_work_that_waits_is_reported_and_warned_of(redis: Redis, redis_url: str) -> None:
    async with running_relay(redis_url, worker=False, metrics_token=METRICS_TOKEN) as relay:
        assert (await report(relay))["queues"] == {
            "oldest_due_job_seconds": None,
            "oldest_due_webhook_seconds": None,
        }
        now_ms = int(time.time() * 1000)
        # One job due two minutes ago that no one runs, one a worker runs (its lock is held).
        await redis.zadd(jobs.QUEUE, {"waiting-job": now_ms - 120_000})
        await redis.zadd(jobs.QUEUE, {"running-job": now_ms - 600_000})
        await redis.set("arq:in-progress:running-job", 1)
        found = await report(relay)
        assert 119 < found["queues"]["oldest_due_job_seconds"] < 130
        assert any("oldest due pipeline job" in warning for warning in found["warnings"])

        samples = await scrape(relay)
        assert value(samples, "relay_queue_oldest_due_seconds", queue="jobs") > 119
        assert value(samples, "relay_workers_alive") == 0
        assert value(samples, "relay_redis_used_memory_bytes") > 0
        assert value(samples, "relay_health_warnings") >= 2  # no worker, a job waiting


async def test_memory_near_its_limit_is_warned_of_on_the_dashboard(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis", appendonly=False) as plan:
        async with running_relay(plan.url, worker=False) as relay:
            redis = Redis.from_url(plan.url)
            used = int((await redis.info("memory"))["used_memory"])
            await redis.config_set("maxmemory", int(used * 1.1))
            await redis.aclose()
            async with logged_in(relay) as (client, _):
                page = (await client.get("/dashboard/")).text
        health = page.split('id="deployment"')[1].split("</section>")[0]
        assert "of its maxmemory" in health
        assert "No worker has sent a heartbeat" in health
