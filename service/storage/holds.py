"""Legal holds, kept in the archive (`holds/<recording_id>.json`): a held recording is skipped
by retention and by erasure by person, and its erasure is refused (409) until the hold is
released. The archive keeps them, not Redis, so that losing Redis loses no hold."""

from __future__ import annotations

from service.domain.erasure import Hold
from service.storage.archive import Archive

HOLDS = "holds"


def hold_key(recording_id: str) -> str:
    return f"{HOLDS}/{recording_id}.json"


class Holds:
    """The legal holds in force."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    async def get(self, recording_id: str) -> Hold | None:
        raw = await self.archive.get(hold_key(recording_id))
        return None if raw is None else Hold.model_validate_json(raw)

    async def place(self, hold: Hold) -> None:
        await self.archive.put(hold_key(hold.recording_id), hold.model_dump_json().encode())

    async def release(self, recording_id: str) -> None:
        await self.archive.delete([hold_key(recording_id)])

    async def held(self) -> set[str]:
        """The ids of every held recording (a listing: a request per 1000 holds)."""
        names = [key.rpartition("/")[2] for key in await self.archive.keys(HOLDS)]
        return {name.removesuffix(".json") for name in names if name.endswith(".json")}

    async def all(self) -> list[Hold]:
        """Every hold, newest first (the dashboard's list)."""
        found = [await self.get(recording_id) for recording_id in await self.held()]
        return sorted((h for h in found if h), key=lambda h: -h.placed_at)
