"""The relay on the Redis a PaaS sells: a connection cap (`maxclients`), an eviction policy that
would lose work, a full `noeviction` Redis, and TLS with a self-signed certificate. Each test
starts a real redis-server configured as such a plan."""

from __future__ import annotations

import asyncio
import datetime
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis

from service.local.embedded_redis import EmbeddedRedis, free_port
from tests.support.pipeline_env import Relay, running_relay, start_worker, worker_env
from tests.support.receivers import Receiver
from tests.support.servers import serve
from tests.support.settings import ADMIN_TOKEN, AUTH_ID, AUTH_TOKEN
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

ADMIT = "127.0.0.0/8"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@asynccontextmanager
async def subscribed(relay: Relay, count: int) -> AsyncIterator[list[Receiver]]:
    """`count` receivers on loopback, each subscribed to every recording event."""
    receivers = [Receiver() for _ in range(count)]
    async with AsyncExitStack() as stack:
        for receiver in receivers:
            url = await stack.enter_async_context(serve(receiver.app()))
            await relay.subscribe(f"{url}/hook")
        yield receivers


async def calls(relay: Relay, count: int, at_once: int = 16) -> list[str]:
    """`count` recorded calls whose callbacks the relay took."""
    gate = asyncio.Semaphore(at_once)

    async def one() -> str:
        async with gate:
            return await relay.call()

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def all_delivered(receivers: list[Receiver], ids: list[str], within: float) -> None:
    """Every receiver has each recording's three events (at least once: de-duplicated on
    `webhook-id`, as a subscriber does)."""

    async def done() -> bool:
        return all(
            len({r.headers["webhook-id"] for r in receiver.got if r.status == 200}) >= 3 * len(ids)
            for receiver in receivers
        )

    await eventually(done, within=within, what=f"{3 * len(ids)} webhooks to each subscriber")


async def statuses(redis: Redis, ids: list[str]) -> list[str]:
    async with redis.pipeline(transaction=False) as pipe:
        for recording_id in ids:
            pipe.hget(f"rr:recording:{recording_id}", "status")
        return [(s or b"").decode() for s in await pipe.execute()]


async def test_a_burst_with_two_subscribers_finishes_on_a_20_connection_plan(
    tmp_path: Path,
) -> None:
    with EmbeddedRedis(tmp_path / "redis", appendonly=False, config={"maxclients": "20"}) as plan:
        async with (
            running_relay(plan.url, delivery_allow_networks=ADMIT) as relay,
            subscribed(relay, 2) as receivers,
        ):
            ids = await calls(relay, 200)
            await all_delivered(receivers, ids, within=120)
            client = Redis.from_url(plan.url)
            try:
                assert set(await statuses(client, ids)) == {"transcribed"}
                stats = await client.info("stats")
                assert stats["rejected_connections"] == 0  # the defaults fit the plan
            finally:
                await client.aclose()


@contextmanager
def occupied(port: int, count: int) -> Iterator[None]:
    """`count` idle connections to the Redis on `port`, as other processes would hold."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    try:
        yield
    finally:
        for sock in sockets:
            sock.close()


async def test_a_worker_refused_connections_waits_and_carries_on_once_they_free_up(
    tmp_path: Path,
) -> None:
    with EmbeddedRedis(tmp_path / "redis", appendonly=False, config={"maxclients": "20"}) as plan:
        async with (
            running_relay(plan.url, worker=False, delivery_allow_networks=ADMIT) as relay,
            subscribed(relay, 1) as receivers,
        ):
            ids = await calls(relay, 5)
            client = Redis.from_url(plan.url)  # kept open: the plan is about to be full
            clients = int((await client.info("clients"))["connected_clients"])
            log = tmp_path / "worker.log"
            with occupied(plan.port, 20 - clients + 1):  # the plan is full
                worker = await start_worker(
                    worker_env(relay, LOG_LEVEL="info", DELIVERY_ALLOW_NETWORKS=ADMIT), log
                )

                async def refused() -> bool:  # Redis closes the connection: a reset or EPIPE
                    return "waiting for Redis" in log.read_text()

                try:
                    await eventually(refused, what="the worker refused its connections")
                except AssertionError:
                    worker.kill()
                    raise
            assert int((await client.info("stats"))["rejected_connections"]) > 0
            await client.aclose()
            try:
                await all_delivered(receivers, ids, within=60)
                assert worker.returncode is None
            finally:
                worker.send_signal(signal.SIGTERM)
                await worker.wait()


def relay_process_env(url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": url,
        "PLIVO_AUTH_ID": AUTH_ID,
        "PLIVO_AUTH_TOKEN": AUTH_TOKEN,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "ARCHIVE_URL": f"file://{tmp_path}/archive",
        "PORT": str(free_port()),
        **extra,
    }


async def refusal(command: str, env: dict[str, str]) -> tuple[int, str]:
    """Start `python -m <command>`, which is to refuse to start; its status and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", command, env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(30):
            _, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, err.decode()


@pytest.mark.parametrize("command", ["service.web", "workers"])
async def test_a_redis_that_evicts_keys_is_refused_at_start_up(
    tmp_path: Path, command: str
) -> None:
    config = {"maxmemory": "5mb", "maxmemory-policy": "allkeys-lru"}
    with EmbeddedRedis(tmp_path / "redis", appendonly=False, config=config) as plan:
        status, stderr = await refusal(command, relay_process_env(plan.url, tmp_path))
    assert status == 2, stderr
    [line] = stderr.strip().splitlines()
    assert "maxmemory-policy is allkeys-lru" in line
    assert "noeviction" in line


async def test_a_full_redis_is_an_outage_and_loses_nothing_once_memory_frees(
    tmp_path: Path,
) -> None:
    with EmbeddedRedis(tmp_path / "redis", appendonly=False) as plan:
        async with (
            running_relay(plan.url, worker=False, delivery_allow_networks=ADMIT) as relay,
            subscribed(relay, 2) as receivers,
        ):
            relay.faults.transcription_delay = 1.0  # recordings are in flight when it fills
            log = tmp_path / "worker.log"
            env = worker_env(relay, LOG_LEVEL="info", DELIVERY_ALLOW_NETWORKS=ADMIT)
            worker = await start_worker(env, log)
            client = Redis.from_url(plan.url)
            try:

                async def worker_started() -> bool:
                    return "Starting worker" in log.read_text()

                await eventually(worker_started, what="the worker's start")
                ids = await calls(relay, 30)
                await client.config_set("maxmemory", 1)  # full: every write that grows is refused

                async def worker_met_it() -> bool:
                    text = log.read_text()
                    return "refuses writes" in text

                await eventually(worker_met_it, what="the worker meeting a full Redis")
                refused = await relay.http.post(
                    f"{relay.sandbox_url}/sandbox/calls",
                    json={"relay_url": f"{relay.url}/plivo/recording"},
                )
                assert refused.json()["callback_status"] == 503  # Plivo retries it later
                ready = await relay.http.get(f"{relay.url}/readyz")
                assert ready.status_code == 503
                assert "refuses writes" in ready.json()["redis"]
                health = (await relay.http.get(f"{relay.url}/v1/health", headers=ADMIN)).json()
                assert any("maxmemory" in warning for warning in health["warnings"])

                await client.config_set("maxmemory", 0)
                await all_delivered(receivers, ids, within=90)

                async def all_final() -> bool:  # (the last event goes out just before the end)
                    return set(await statuses(client, ids)) == {"transcribed"}

                await eventually(all_final, within=30, what="every recording transcribed")
                assert worker.returncode is None  # it rode the outage out
            finally:
                await client.aclose()
                if worker.returncode is None:
                    worker.send_signal(signal.SIGTERM)
                await worker.wait()


# -- TLS -------------------------------------------------------------------------------------

DEBIAN_REDIS = "/usr/bin/redis-server"
needs_tls_redis = pytest.mark.skipif(
    not shutil.which(DEBIAN_REDIS),
    reason="TLS needs Debian's redis-server (.ci/run installs it: apt-get install redis-server)",
)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, as hosted Redis plans present."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redis.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "redis.crt", directory / "redis.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def tls_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    tls = self_signed(tmp_path)
    with EmbeddedRedis(
        tmp_path / "redis", appendonly=False, binary=DEBIAN_REDIS, tls=tls
    ) as server:
        yield server


@needs_tls_redis
async def test_a_tls_plan_with_a_self_signed_certificate_runs_the_pipeline(
    tmp_path: Path,
) -> None:
    with tls_redis(tmp_path) as plan:
        assert plan.url.startswith("rediss://")
        async with (
            running_relay(
                plan.url, redis_tls_verify="false", delivery_allow_networks=ADMIT
            ) as relay,
            subscribed(relay, 1) as receivers,
        ):
            ids = await calls(relay, 3)
            await all_delivered(receivers, ids, within=30)


@needs_tls_redis
async def test_the_urls_ssl_cert_reqs_is_honoured(tmp_path: Path) -> None:
    with tls_redis(tmp_path) as plan:
        async with running_relay(plan.url + "?ssl_cert_reqs=none", worker=False) as relay:
            ready = await relay.http.get(f"{relay.url}/readyz")
            assert ready.status_code == 200, ready.text


@needs_tls_redis
async def test_an_untrusted_certificate_stops_the_web_process_with_what_to_set(
    tmp_path: Path,
) -> None:
    password = "redis-password-never-shown"
    with tls_redis(tmp_path) as plan:
        url = plan.url.replace("rediss://", f"rediss://:{password}@")
        status, stderr = await refusal("service.web", relay_process_env(url, tmp_path))
    assert status == 2, stderr
    [line] = stderr.strip().splitlines()
    assert "CERTIFICATE_VERIFY_FAILED" in line
    assert "REDIS_TLS_VERIFY=false" in line
    assert password not in stderr


async def test_readiness_names_a_policy_that_loses_work(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis", appendonly=False) as plan:
        async with running_relay(plan.url, worker=False) as relay:
            client = Redis.from_url(plan.url)
            await client.config_set("maxmemory-policy", "volatile-lru")  # changed after start
            await client.aclose()
            ready = await relay.http.get(f"{relay.url}/readyz")
            assert ready.status_code == 503
            assert "volatile-lru" in ready.json()["redis"]
            health = (await relay.http.get(f"{relay.url}/v1/health", headers=ADMIN)).json()
            assert any("volatile-lru" in warning for warning in health["warnings"])
