"""Coalescing concurrent calls into batches, with at most one batch in flight.

Under load many callbacks are in flight at once in one web process, and each Redis round trip
costs redis-py well over 100 us of CPU (packing, syscalls, the pool, timeouts): more than the
rest of a callback's handling. A `Batcher` sends the first call at once, alone; calls made while
a batch is out wait for it to come back and then go together in the next one. With no load
nothing waits; under load the batches grow by themselves. Each caller gets its own result, or
its own error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Calls `send(items)` (which returns one result per item, in order) on batches of calls."""

    def __init__(
        self, send: Callable[[list[Item]], Awaitable[Sequence[Result]]], max_batch: int = 256
    ) -> None:
        self.send = send
        self.max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._drainer: asyncio.Task[None] | None = None  # sending while not done

    async def __call__(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            await self._send_batch(batch)

    async def _send_batch(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self.send([item for item, _ in batch])
        except BaseException as error:  # every caller hears of the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
