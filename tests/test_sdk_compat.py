"""Plivo's official Python SDK, pointed at the sandbox's base URL, works against it unchanged.

The SDK has no base-URL option: its module constants are the base URLs, so they are set (and
restored); its code runs as shipped. It is synchronous, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import plivo  # type: ignore[import-untyped]
import plivo.rest.client as client_module  # type: ignore[import-untyped]
import pytest

from tests.support.sandbox_fixture import running_sandbox
from tests.support.settings import AUTH_ID, AUTH_TOKEN

BASES = [name for name in dir(client_module) if name.endswith("BASE_URI") or "FALLBACK" in name]


@contextmanager
def sdk_pointed_at(url: str) -> Iterator[None]:
    saved = {name: getattr(client_module, name) for name in BASES}
    for name in BASES:
        setattr(client_module, name, f"{url}/v1/Account" if name.endswith("URI") else url)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(client_module, name, value)


async def test_official_sdk_reads_lists_and_deletes_recordings() -> None:
    async with running_sandbox() as sandbox:
        made = [sandbox.sandbox.state.new_recording(AUTH_ID, 12_000) for _ in range(3)]
        rid = str(made[0]["recording_id"])

        def with_sdk() -> tuple[str, int, int]:
            with sdk_pointed_at(sandbox.url):
                client = plivo.RestClient(AUTH_ID, AUTH_TOKEN)
                got = client.recordings.get(rid)
                listed = client.recordings.list(limit=2)
                client.recordings.delete(rid)
                with pytest.raises(plivo.exceptions.ResourceNotFoundError):
                    client.recordings.get(rid)
                return got.recording_id, len(listed), listed.meta["total_count"]

        recording_id, page, total = await asyncio.to_thread(with_sdk)
        assert recording_id == rid
        assert (page, total) == (2, 3)
