"""The Plivo sandbox behaves as Plivo's API does where the relay depends on it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from service.domain.events import json_schema
from tests.support.sandbox_fixture import running_sandbox
from tests.support.settings import AUTH_ID, AUTH_TOKEN

BASE = f"/v1/Account/{AUTH_ID}"


async def test_auth_error_bodies_and_list_rules() -> None:
    async with running_sandbox() as plivo, httpx.AsyncClient(base_url=plivo.url) as http:
        unauthorised = await http.get(f"{BASE}/Recording/")
        assert unauthorised.status_code == 401
        assert set(unauthorised.json()) == {"api_id", "error"}
        auth = (AUTH_ID, AUTH_TOKEN)
        for limit in ("0", "21", "x"):
            response = await http.get(f"{BASE}/Recording/", params={"limit": limit}, auth=auth)
            assert response.status_code == 400
        now = datetime.now(UTC)
        window = {
            "add_time__gt": (now - timedelta(days=40)).strftime("%Y-%m-%d %H:%M"),
            "add_time__lt": now.strftime("%Y-%m-%d %H:%M"),
        }
        too_wide = await http.get(f"{BASE}/Recording/", params=window, auth=auth)
        assert too_wide.status_code == 400
        assert "30 days" in too_wide.json()["error"]
        for _ in range(3):
            plivo.sandbox.state.new_recording(AUTH_ID, 60_000)
        page = (await http.get(f"{BASE}/Recording/", params={"limit": 2}, auth=auth)).json()
        assert page["meta"]["total_count"] == 3
        assert page["meta"]["next"].endswith("limit=2&offset=2")
        assert page["meta"]["previous"] is None
        recording = page["objects"][0]
        assert isinstance(recording["recording_duration_ms"], str)  # Plivo's numbers-as-strings
        assert recording["recording_type"] == "normal"
        rid = recording["recording_id"]
        path = f"/media/{AUTH_ID}/{rid}.mp3"
        assert (await http.get(path)).status_code == 401  # HTTP Auth on recordings
        media = await http.get(path, params={"type": "original"}, auth=auth)
        assert media.headers["x-recording-variant"] == "original"
        denoised = await http.get(path, auth=auth)
        assert len(denoised.content) == int(denoised.headers["content-length"]) > 0
        assert denoised.content != media.content
        assert (await http.delete(f"{BASE}/Recording/{rid}/", auth=auth)).status_code == 204
        assert (await http.delete(f"{BASE}/Recording/{rid}/", auth=auth)).status_code == 404


async def test_faults_are_validated() -> None:
    async with running_sandbox() as plivo, httpx.AsyncClient(base_url=plivo.url) as http:
        response = await http.put("/sandbox/faults", json={"latencyy": 1})
        assert response.status_code == 422
        response = await http.put("/sandbox/faults", json={"latency": 0.01})
        assert response.json()["latency"] == 0.01


def test_event_schema_document_is_current() -> None:
    committed = json.loads(
        (Path(__file__).parent.parent / "docs/events.v1.schema.json").read_text()
    )
    assert committed == json.loads(json.dumps(json_schema())), (
        "the event models changed: regenerate docs/events.v1.schema.json and bump the version"
    )
