"""Nothing a caller sends to the management API or the media links produces a 5xx: schemathesis
generates requests from `GET /v1/openapi.json` (valid and invalid ones, and chains that follow
the document's links from a created subscription to the operations on it) against the app
served for real.

No worker runs, so no webhook is sent, and the URL guard resolves every name to loopback, so no
DNS query leaves the machine."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from redis.asyncio import Redis

from service.ssrf import URLGuard
from service.web.app import create_app
from tests.support.servers import serve
from tests.support.settings import ADMIN_TOKEN, make_settings

SCHEMATHESIS = str(Path(sys.executable).parent / "st")


async def loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


async def test_no_request_to_the_management_api_gets_a_5xx(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    settings = make_settings(
        redis_url,
        delivery_allow_networks="127.0.0.0/8",
        # It tries wrong tokens on purpose, by the hundred: the throttle would answer the rest.
        auth_failures_per_address=100_000,
        auth_failures_in_all=100_000,
    )
    guard = URLGuard(settings.delivery_allow_networks, resolve=loopback)
    har = tmp_path / "run.har"
    async with serve(create_app(settings, guard)) as url:
        process = await asyncio.create_subprocess_exec(
            SCHEMATHESIS,
            "run",
            f"{url}/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {ADMIN_TOKEN}",
            "--checks",
            "not_a_server_error",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "25",
            "--seed",
            "20261125",
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--report",
            "har",
            "--report-har-path",
            str(har),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(240):
            output, _ = await process.communicate()
    text = output.decode(errors="replace")
    entries = json.loads(har.read_text())["log"]["entries"]
    answers = [
        (e["request"]["method"], e["request"]["url"], e["response"]["status"]) for e in entries
    ]
    server_errors = [a for a in answers if a[2] >= 500]
    assert server_errors == [], text[-3000:]
    assert process.returncode == 0, text[-3000:]
    assert len(answers) > 200  # it really ran
    assert {status for _, target, status in answers if "/media/" in target} >= {403}
    # The stateful phase reached subscriptions that exist (links from the created one).
    reached = {
        (method, status)
        for method, target, status in answers
        if "/v1/subscriptions/sub_" in target and status in (200, 202, 204)
    }
    assert {("GET", 200), ("DELETE", 204)} <= reached, sorted(reached)
