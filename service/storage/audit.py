"""The audit trail of erasure, kept in the archive under `audit/` (ids only, never a phone
number: an erasure by person names the person by nothing but its id):

    audit/erasures/<erasure_id>.json            the erasure: who asked, when, why, and the
                                                outcome of each step for each recording
    audit/holds/<recording_id>/<ms>-placed.json a hold placed (who, when, why)
    audit/holds/<recording_id>/<ms>-released.json  and released

Written once each, when the erasure ends or the hold changes; `GET /v1/erasures/{id}` reads the
erasure's record once Redis has forgotten its progress.
"""

from __future__ import annotations

import json
from typing import Any

from service.storage.archive import Archive

AUDIT = "audit"


def erasure_key(erasure_id: str) -> str:
    return f"{AUDIT}/erasures/{erasure_id}.json"


class AuditLog:
    """Audit records in the archive."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    async def erasure(self, erasure_id: str, record: dict[str, Any]) -> None:
        await self.archive.put(erasure_key(erasure_id), json.dumps(record, indent=1).encode())

    async def erasure_record(self, erasure_id: str) -> dict[str, Any] | None:
        raw = await self.archive.get(erasure_key(erasure_id))
        return None if raw is None else dict(json.loads(raw))

    async def hold(self, recording_id: str, at: int, what: str, record: dict[str, Any]) -> None:
        """`what`: placed or released."""
        key = f"{AUDIT}/holds/{recording_id}/{at}-{what}.json"
        await self.archive.put(key, json.dumps(record, indent=1).encode())
