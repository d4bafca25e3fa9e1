"""The `worker` process of the Procfile: `python -m workers`.

If Redis goes away (a restart, a failover) the worker does not exit: it waits until Redis
answers again and starts over. Jobs it was running are taken up again when their locks lapse
(`WORKER_JOB_TIMEOUT` + 10 s), so nothing is lost, and the PaaS sees no crash to back off from.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.logs import configure
from service.settings import load_settings
from workers.worker import build_worker

log = logging.getLogger("recording_relay.worker")


def main() -> None:
    settings = load_settings()
    configure(settings.log_level)
    while True:
        try:
            build_worker(settings).run()
            return
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            log.warning("lost Redis (%s); starting again once it answers", error)
        # Nothing runs now: let SIGTERM end the process at once instead of arq's handler.
        loop = asyncio.get_event_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        wait_for_redis(settings.redis_url)


def wait_for_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    delay = 0.2
    try:
        while True:
            try:
                client.ping()
                log.info("Redis answers again")
                return
            except (RedisConnectionError, RedisTimeoutError, OSError):
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
    finally:
        client.close()


if __name__ == "__main__":
    main()
