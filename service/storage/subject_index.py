"""Who each archived recording is of, kept in the archive itself: the lookup behind erasure by
person (`POST /v1/erasures`), which must find every recording of a phone number without
listing the archive.

Layout (no phone number in clear: each is a keyed hash, HMAC-SHA-256 under the index key):

    index/numbers/<hash of the number's digits>/<YYYYMMDD>-<recording_id>   (empty)
    index/calls/<hash of the call UUID>/<YYYYMMDD>-<recording_id>           (empty)
    index/recordings/<recording_id>.json   {"day", "auth_id", "entries": [the two kinds above]}

Finding a number's recordings is one listing of its folder (a page per 1000 recordings); each
entry's name says the recording and its day. A recording's own record says where it is, whose
account it is, and which entries name it, so erasing it deletes them all without a look
anywhere else. Written when a recording is final (`workers.pipeline.announce.finish`), before
its `state.json`; `python -m workers reindex` writes it for recordings archived before.

The key is `ERASURE_INDEX_KEY` or, unset, one the relay makes and keeps in Redis
(`service.storage.keyring`): if that is lost with Redis, `python -m workers reindex` indexes the
archive again under the new one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass

from service.domain.erasure import digits
from service.settings import Settings
from service.storage.archive import Archive
from service.storage.keyring import Keyring

NUMBERS = "index/numbers"
CALLS = "index/calls"
RECORDS = "index/recordings"


@dataclass(frozen=True)
class Entry:
    """A recording an index folder names."""

    recording_id: str
    day: str  # `2026/11/25`, its archive day


@dataclass(frozen=True)
class IndexRecord:
    """What the index keeps of one recording (`index/recordings/<id>.json`)."""

    recording_id: str
    day: str
    auth_id: str
    entries: list[str]

    def keys(self) -> list[str]:
        """Every object of the index that names the recording, its record included."""
        return [*self.entries, record_key(self.recording_id)]


def index_key(settings: Settings, keyring: Keyring) -> bytes | Keyring:
    """The index's key: ERASURE_INDEX_KEY, or the relay's own in the keyring."""
    key = settings.erasure_index_key
    return key.get_secret_value().encode() if key is not None else keyring


def record_key(recording_id: str) -> str:
    return f"{RECORDS}/{recording_id}.json"


class SubjectIndex:
    """Writes and reads the index of who each archived recording is of."""

    def __init__(self, archive: Archive, key: bytes | Keyring) -> None:
        """`key`: ERASURE_INDEX_KEY, or the keyring that keeps the relay's own."""
        self.archive = archive
        self._key = key

    async def _hash(self, kind: str, value: str) -> str:
        if isinstance(self._key, Keyring):
            self._key = await self._key.key("erasure-index")
        mac = hmac.new(self._key, f"{kind}\n{value}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    async def number_folder(self, number: str) -> str:
        return f"{NUMBERS}/{await self._hash('number', digits(number))}"

    async def call_folder(self, call_uuid: str) -> str:
        return f"{CALLS}/{await self._hash('call', call_uuid.lower())}"

    async def write(
        self,
        recording_id: str,
        day: str,
        auth_id: str,
        numbers: set[str],
        call_uuid: str | None,
    ) -> IndexRecord:
        """Index a recording under each of its numbers and its call (writing it again writes
        the same objects)."""
        name = f"{day.replace('/', '')}-{recording_id}"
        folders = [await self.number_folder(n) for n in sorted(numbers)]
        if call_uuid:
            folders.append(await self.call_folder(call_uuid))
        record = IndexRecord(recording_id, day, auth_id, [f"{f}/{name}" for f in folders])
        document = {"day": day, "auth_id": auth_id, "entries": record.entries}
        await asyncio.gather(*(self.archive.put(entry, b"") for entry in record.entries))
        await self.archive.put(record_key(recording_id), json.dumps(document).encode())
        return record

    async def find(self, folder: str) -> list[Entry]:
        """The recordings an index folder names (`number_folder`, `call_folder`)."""
        found = []
        for key in await self.archive.keys(folder):
            day, _, recording_id = key.rpartition("/")[2].partition("-")
            if len(day) == 8 and recording_id:
                found.append(Entry(recording_id, f"{day[:4]}/{day[4:6]}/{day[6:]}"))
        return found

    async def record(self, recording_id: str) -> IndexRecord | None:
        """The recording's index record, if it is indexed."""
        raw = await self.archive.get(record_key(recording_id))
        if raw is None:
            return None
        document = json.loads(raw)
        return IndexRecord(
            recording_id, document["day"], document.get("auth_id", ""), document["entries"]
        )
