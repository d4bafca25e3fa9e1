"""Log set-up shared by the web and worker processes: one line per event, to stderr.

Log lines carry strings that callers chose (paths, ids, URLs, error texts), so every line is
written with its control characters escaped (`\\x00`, `\\r`, `\\n` ...): a caller can neither
forge a line nor hide one. A traceback, which is the relay's own text, keeps its lines.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# C0 controls, DEL, C1 controls and Unicode's line and paragraph separators, each written as
# its Python escape.
ESCAPES = {
    code: chr(code).encode("unicode_escape").decode()
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).translate(ESCAPES)


def configure(level: str) -> None:
    """Set up the root logger, unless something (a test runner) already has."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
