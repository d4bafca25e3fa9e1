"""The job run for each accepted recording.

For now it takes the recording off the queue and marks it picked up; the pipeline (fetch
details, transcribe, collect, emit events) is built on this entry point.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from service.store import recording_key

log = logging.getLogger("recording_relay.worker")


async def process_recording(ctx: dict[str, Any], recording_id: str) -> str:
    redis = ctx["redis"]
    now_ms = int(time.time() * 1000)
    await redis.hset(
        recording_key(recording_id), mapping={"status": "picked_up", "updated_at": now_ms}
    )
    log.info("recording %s picked up", recording_id)
    return "picked_up"
