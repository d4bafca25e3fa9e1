"""`GET /v1/recordings`: the recordings of the retention window, newest first, filtered by status
and time, paged."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.support.pipeline_env import running_relay
from tests.support.settings import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_recordings_are_listed_newest_first_filtered_and_paged(redis_url: str) -> None:
    async with running_relay(redis_url) as relay:
        transcribed = [await relay.call() for _ in range(3)]
        for recording_id in transcribed:
            await relay.settled(recording_id)
        relay.faults.transcription_error = "Recording duration too long for transcription"
        failed = await relay.call()
        await relay.settled(failed)
        url = f"{relay.url}/v1/recordings"

        async def listed(**params: object) -> dict:
            response = await relay.http.get(url, params=params, headers=ADMIN)
            assert response.status_code == 200, response.text
            return response.json()

        everything = await listed()
        newest_first = [failed, *reversed(transcribed)]
        assert [r["recording_id"] for r in everything["data"]] == newest_first
        assert everything["next_cursor"] is None
        assert all(r["archived"] for r in everything["data"])
        only_failed = await listed(status="failed")
        assert [r["recording_id"] for r in only_failed["data"]] == [failed]
        assert "too long" in only_failed["data"][0]["last_error"]

        first = await listed(limit=2)
        second = await listed(limit=2, cursor=first["next_cursor"])
        pages = [r["recording_id"] for r in first["data"] + second["data"]]
        assert pages == newest_first and second["next_cursor"] is None

        cut = everything["data"][1]["accepted_at"]  # the newest transcribed one
        moment = datetime.fromtimestamp(cut / 1000, UTC).isoformat()
        older = await listed(until=moment)
        assert [r["recording_id"] for r in older["data"]] == newest_first[1:]
        assert (await listed(since=moment))["data"][-1]["recording_id"] == newest_first[1]

        for params, field in [({"status": "lost"}, "status"), ({"since": "yesterday"}, "since")]:
            bad = await relay.http.get(url, params=params, headers=ADMIN)
            assert bad.status_code == 422 and bad.json()["error"].startswith(f"{field}:")
        assert (await relay.http.get(url)).status_code == 401
