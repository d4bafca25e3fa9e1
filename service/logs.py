"""Log set-up shared by the web and worker processes: one line per event, to stderr."""

from __future__ import annotations

import logging


def configure(level: str) -> None:
    """Set up the root logger, unless something (a test runner) already has."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
