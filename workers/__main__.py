"""The `worker` process of the Procfile: `python -m workers`."""

from __future__ import annotations

from service.logs import configure
from service.settings import load_settings
from workers.worker import build_worker


def main() -> None:
    settings = load_settings()
    configure(settings.log_level)
    build_worker(settings).run()


if __name__ == "__main__":
    main()
