"""Waiting on a condition with a deadline, never on the clock alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    condition: Callable[[], Awaitable[bool]], within: float = 20.0, what: str = "condition"
) -> None:
    """Return as soon as `condition()` is true; fail if it is not within `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within} s")
        await asyncio.sleep(0.02)
