"""The `worker` process of the Procfile: `python -m workers`.

If Redis goes away (a restart, a failover) the worker does not exit: it waits until Redis
answers again and carries on (`workers.worker.WorkerProcess`). Jobs it was running are taken up
again when their locks lapse (`WORKER_JOB_TIMEOUT` + 10 s), so nothing is lost, and the PaaS
sees no crash to back off from. SIGTERM ends it within `WORKER_SHUTDOWN_GRACE` seconds.
"""

from __future__ import annotations

import asyncio

from service.logs import configure
from service.settings import Settings, load_settings
from service.storage.archive import require
from workers.worker import WorkerProcess


async def serve(settings: Settings) -> None:
    process = WorkerProcess(settings)
    process.install_signal_handlers()
    await process.run()


def main() -> None:
    settings = load_settings()
    configure(settings.log_level)
    require(settings.archive_url)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
