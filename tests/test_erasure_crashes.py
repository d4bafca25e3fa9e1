"""Erasure under kills: workers killed at random moments while recordings are both in their
pipeline and being erased leave nothing half done that the next worker does not finish."""

from __future__ import annotations

import json
import random
import signal
from collections import defaultdict

import pytest

from service.storage.archive import Archive
from tests.support.pipeline_env import kill_at_random, relay_for_kills, start_worker
from tests.support.settings import ADMIN_TOKEN, AUTH_ID
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_workers_killed_mid_erasure_leave_every_recording_erased_once(
    redis_url: str,
) -> None:
    async with relay_for_kills(redis_url, max_jobs=3, plivo_latency=0.15) as (
        relay,
        receiver,
        env,
    ):
        ids = [await relay.call() for _ in range(12)]
        chance = random.Random(21)
        erasures: dict[str, str] = {}

        async def erase(recording_id: str) -> None:
            asked = await relay.http.delete(
                f"{relay.url}/v1/recordings/{recording_id}", headers=AUTH
            )
            assert asked.status_code == 202, asked.text
            erasures[recording_id] = asked.json()["erasure_id"]

        async def erase_some(kill: int) -> None:
            if kill == 1:  # half of them while their pipelines run
                for recording_id in ids[::2]:
                    await erase(recording_id)
            if kill == 4:  # the rest, wherever they are by then
                for recording_id in ids[1::2]:
                    await erase(recording_id)

        await kill_at_random(env, 8, chance, erase_some)
        relay.faults.latency = 0
        survivor = await start_worker(env)
        try:

            async def all_erased() -> bool:
                for erasure_id in erasures.values():
                    got = await relay.http.get(
                        f"{relay.url}/v1/erasures/{erasure_id}", headers=AUTH
                    )
                    if got.json()["status"] == "running":
                        return False
                return True

            await eventually(all_erased, within=90, what="every erasure ended")

            def erased_ids() -> set[str]:
                bodies = [json.loads(r.body) for r in receiver.got if r.status == 200]
                return {
                    b["data"]["recording_id"] for b in bodies if b["type"] == "recording.erased"
                }

            async def every_subscriber_told() -> bool:
                return erased_ids() == set(ids)

            await eventually(every_subscriber_told, within=60, what="every recording.erased")
        finally:
            survivor.send_signal(signal.SIGTERM)
            await survivor.wait()
        archive = Archive(relay.settings.archive_url)
        left = await archive.keys("recordings") + await archive.keys("index")
        assert [key for key in left if any(i in key for i in ids)] == []
        account = relay.sandbox.state.accounts[AUTH_ID]
        assert not set(ids) & set(account.recordings)
        assert all(n <= 1 for n in relay.sandbox.state.counters.bought.values())  # none twice
        # Per recording: one recording.erased (retries carry one webhook-id), and it came last.
        last: dict[str, str] = {}
        erased_messages: defaultdict[str, set[str]] = defaultdict(set)
        for received in receiver.got:
            body = json.loads(received.body)
            recording_id = body["data"]["recording_id"]
            last[recording_id] = body["type"]
            if body["type"] == "recording.erased":
                erased_messages[recording_id].add(received.headers["webhook-id"])
        assert last == dict.fromkeys(ids, "recording.erased")
        assert all(len(erased_messages[i]) == 1 for i in ids)
        for recording_id in ids:
            status = await relay.http.get(f"{relay.url}/v1/recordings/{recording_id}", headers=AUTH)
            assert status.json()["status"] == "erased"
