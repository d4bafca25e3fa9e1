"""The arq worker: which functions it runs and how it connects, all from `Settings`."""

from __future__ import annotations

from arq.connections import RedisSettings
from arq.worker import Worker, func

from service import queue
from service.settings import Settings
from workers.recording import process_recording


def build_worker(settings: Settings, **overrides: object) -> Worker:
    """An arq worker for the relay's jobs; `overrides` are passed to arq (tests use `burst`)."""
    options: dict[str, object] = {
        "functions": [func(process_recording, name=queue.PROCESS_RECORDING)],
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": queue.QUEUE,
        "max_jobs": settings.worker_max_jobs,
        # On SIGTERM stop taking jobs, let running ones finish for this long, then hand the
        # rest back to the queue (arq re-queues cancelled jobs).
        "job_completion_wait": settings.worker_shutdown_grace,
        "keep_result": 3600,
    }
    options.update(overrides)
    return Worker(**options)  # type: ignore[arg-type]
