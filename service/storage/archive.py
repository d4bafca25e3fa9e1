"""The archive: the durable copy of every recording, in the customer's own object store.

`ARCHIVE_URL` names the store: `file:///path`, `s3://bucket/prefix` (AWS or any S3-compatible
store, configured by `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`), `gs://bucket/prefix` or `az://container/prefix` (the
standard Google and Azure variables). One library serves them all: obstore.

Layout, one prefix per recording, partitioned by the day (UTC) the relay accepted it, so that a
day can be listed, copied or expired by a bucket lifecycle rule, and a query engine can read
`recordings/*/*/*/*/recording.json`:

    recordings/2026/11/25/<recording_id>/
        callback.json        the recording callback that started it (normalised, raw params in)
        recording.json       Plivo's Recording object, numbers as numbers
        transcription.json   Plivo's `transcription` result (or its callback), redacted
        raw.json             Plivo's `raw` result, redacted
        diarized.json        Plivo's `diarized` result, redacted
        transcript.json      the transcript as people read it (`service.domain.transcript`)
        transcript.txt       the same, one turn a paragraph
        transcript.vtt       the same as WebVTT, when timed
        audio.<format>       the audio (mp3 or wav, as Plivo recorded it), streamed from Plivo
        audio.original.<format>  the pre-denoised audio, with ARCHIVE_ORIGINAL (where there is one)
        events/<type>.json   each event as it was emitted (each attempt refreshes its media link)

Beside the recordings (`service.storage.subject_index`, `service.storage.holds`,
`service.storage.audit`): `index/` (who each recording is of, as keyed hashes: erasure by
person), `holds/` (legal holds) and `audit/` (every erasure, hold and release).

Every object is written whole in one put (an object store never shows half an object; the file
store writes a temporary file and renames it), and writing the same object again writes the
same bytes, so a worker killed mid-write leaves nothing that its re-run does not repair.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import secrets
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import obstore
from obstore.exceptions import BaseError
from obstore.store import AzureStore, GCSStore, LocalStore, S3Store, from_url

UPLOAD_PART_BYTES = 5 * 1024 * 1024  # parts of a multipart upload (S3's least)
LIST_PAGE = 1000  # keys one listing request returns (S3's, GCS's and Azure's page)
DELETE_BATCH = 1000  # keys one bulk delete request takes (S3's DeleteObjects)


class ArchiveUnavailable(Exception):
    """The store did not take or give an object: the work waits and is tried again."""


RECORDINGS = "recordings"  # the recordings' prefixes are under it, by day
DAY_FORMAT = "%Y/%m/%d"  # a day partition's name: 2026/11/25


def day_of(epoch_ms: int | float) -> str:
    """The day partition of a recording accepted at `epoch_ms`: `2026/11/25`."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime(DAY_FORMAT)


def day_named(when: date) -> str:
    """The day partition of a date."""
    return when.strftime(DAY_FORMAT)


def date_of(day: str) -> date | None:
    """The date a day partition is of (None for a folder that is no day)."""
    try:
        return datetime.strptime(day, DAY_FORMAT).date()
    except ValueError:
        return None


def day_prefix(day: str) -> str:
    """Where a day's recordings are."""
    return f"{RECORDINGS}/{day}"


def recording_prefix(recording_id: str, day: str) -> str:
    return f"{day_prefix(day)}/{recording_id}"


def recording_at(key: str) -> tuple[str, str]:
    """The recording a key under `recordings/` is of: its day and its id."""
    _, year, month, date_, recording_id = key.split("/")[:5]
    return f"{year}/{month}/{date_}", recording_id


class Archive:
    """The object store that keeps every recording: local files, S3, GCS or Azure."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        # Requests made of the store, as S3 would count them (a listing a page of 1000, a bulk
        # delete a batch of 1000): what bench/erasure reports.
        self.requests = 0
        if url.startswith("file://"):
            self.store = from_url(self.url, mkdir=True)
        else:  # configured by the store's standard environment variables
            self.store = from_url(self.url)

    async def put(self, key: str, data: bytes) -> None:
        self.requests += 1
        try:
            await obstore.put_async(self.store, key, data)
        except (BaseError, OSError) as error:
            raise ArchiveUnavailable(f"archive: cannot write {key}: {_short(error)}") from None

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes]) -> tuple[int, str]:
        """Write an object from `chunks` as they come (a multipart upload where the store has
        one: memory stays bounded whatever the size); its size and SHA-256, checked against
        what the store then holds. An error of the source propagates as it is."""
        digest = hashlib.sha256()
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        self.requests += 2
        try:
            await obstore.put_async(self.store, key, counted(), chunk_size=UPLOAD_PART_BYTES)
            stored = await obstore.head_async(self.store, key)
        except (BaseError, OSError) as error:
            cause = error.__cause__ or error.__context__
            if isinstance(cause, Exception) and not isinstance(cause, (BaseError, OSError)):
                raise cause from None  # the source failed (a download cut short)
            raise ArchiveUnavailable(f"archive: cannot write {key}: {_short(error)}") from None
        if stored["size"] != size:
            raise ArchiveUnavailable(f"archive: {key} holds {stored['size']} bytes, not {size}")
        self._remove_abandoned_parts(key)
        return size, digest.hexdigest()

    def _remove_abandoned_parts(self, key: str) -> None:
        """The file store stages an upload as `<file>#<n>` and renames it when whole: a process
        killed mid-upload leaves its stage behind. (A bucket keeps an abandoned multipart
        upload until its lifecycle rule aborts it: see the README.)"""
        path = self.local_path(key)
        if path is not None:
            for stage in path.parent.glob(f"{glob.escape(path.name)}#*"):
                stage.unlink(missing_ok=True)

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is none."""
        self.requests += 1
        try:
            result = await obstore.get_async(self.store, key)
            return bytes(await result.bytes_async())
        except FileNotFoundError:
            return None
        except (BaseError, OSError) as error:
            raise ArchiveUnavailable(f"archive: cannot read {key}: {_short(error)}") from None

    async def size(self, key: str) -> int | None:
        """The stored object's size, or None if there is none."""
        self.requests += 1
        try:
            meta = await obstore.head_async(self.store, key)
        except FileNotFoundError:
            return None
        except (BaseError, OSError) as error:
            raise ArchiveUnavailable(f"archive: cannot read {key}: {_short(error)}") from None
        return int(meta["size"])

    async def keys(self, prefix: str) -> list[str]:
        """The keys under `prefix/`, sorted."""
        try:
            found = await obstore.list(self.store, prefix).collect_async()
        except FileNotFoundError:
            return []
        except (BaseError, OSError) as error:
            raise ArchiveUnavailable(f"archive: cannot list {prefix}: {_short(error)}") from None
        finally:
            self.requests += 1
        self.requests += (len(found) - 1) // LIST_PAGE if found else 0
        return sorted(str(item["path"]) for item in found)

    async def folders(self, prefix: str) -> list[str]:
        """The "folders" right under `prefix/` (`recordings` -> `recordings/2026`, ...),
        sorted: what a listing with a delimiter gives, without the objects below them."""
        self.requests += 1
        try:
            found = await obstore.list_with_delimiter_async(self.store, prefix)
        except FileNotFoundError:
            return []
        except (BaseError, OSError) as error:
            raise ArchiveUnavailable(f"archive: cannot list {prefix}: {_short(error)}") from None
        return sorted(str(name).rstrip("/") for name in found["common_prefixes"])

    async def days(self) -> list[str]:
        """The day partitions that hold recordings (`2026/11/25`, as `day_of` names them),
        oldest first: three levels of listings with a delimiter, never a recording's objects."""
        found = []
        for year in await self.folders(RECORDINGS):
            for month in await self.folders(year):
                found += [day.removeprefix(f"{RECORDINGS}/") for day in await self.folders(month)]
        return sorted(found)

    async def delete(self, keys: list[str]) -> None:
        """Delete these objects (in bulk where the store can: S3 takes 1000 a request); one
        already gone is no error. The file store's folders left empty go too."""
        if not keys:
            return
        self.requests += (len(keys) - 1) // DELETE_BATCH + 1
        try:
            await obstore.delete_async(self.store, keys)
        except FileNotFoundError:  # the file store refuses a missing file: one by one
            for key in keys:
                try:
                    await obstore.delete_async(self.store, key)
                except FileNotFoundError:
                    pass
                except (BaseError, OSError) as error:
                    raise ArchiveUnavailable(
                        f"archive: cannot delete {key}: {_short(error)}"
                    ) from None
        except (BaseError, OSError) as error:
            raise ArchiveUnavailable(f"archive: cannot delete {keys[0]}: {_short(error)}") from None
        self._remove_empty_folders(keys)

    def _remove_empty_folders(self, keys: list[str]) -> None:
        """The file store keeps a folder per level of a key: a folder named by a recording id
        or an index hash would outlive what it held."""
        root = self.local_path("")
        if root is None:
            return
        for folder in sorted({(root / key).parent for key in keys}, reverse=True):
            while folder != root and root in folder.parents:
                try:
                    folder.rmdir()
                except OSError:  # not empty (or gone): the levels above are not either
                    break
                folder = folder.parent

    def local_path(self, key: str) -> Path | None:
        """Where a file store keeps `key` on this machine; None for the other stores."""
        if isinstance(self.store, LocalStore) and self.store.prefix is not None:
            return Path(str(self.store.prefix)) / key
        return None

    async def signed_url(self, key: str, seconds: float) -> str:
        """A URL of the store that lets anyone GET `key` for `seconds` (S3, GCS, Azure)."""
        if not isinstance(self.store, (S3Store, GCSStore, AzureStore)):
            raise TypeError("only S3, GCS and Azure stores sign URLs: serve `local_path` instead")
        try:
            url: str = await obstore.sign_async(self.store, "GET", key, timedelta(seconds=seconds))
            return url
        except (BaseError, OSError) as error:
            raise ArchiveUnavailable(f"archive: cannot sign {key}: {_short(error)}") from None

    async def reachable(self) -> bool:
        """Whether the store answers a read (for `/readyz`: no write)."""
        try:
            await self.get(".relay-probe/readiness")
        except ArchiveUnavailable:
            return False
        return True

    async def check(self) -> None:
        """Write, read back and delete a probe object: `ArchiveUnavailable` if any step fails."""
        key = f".relay-probe/{secrets.token_hex(8)}"
        await self.put(key, b"probe")
        if await self.get(key) != b"probe":
            raise ArchiveUnavailable("archive: a probe object did not read back")
        try:
            await obstore.delete_async(self.store, key)
        except (BaseError, OSError) as error:
            raise ArchiveUnavailable(f"archive: cannot delete {key}: {_short(error)}") from None


def _short(error: Exception) -> str:
    """The first line of an obstore error (the rest is a debug dump)."""
    return str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__


def require(url: str) -> None:
    """At start-up: exit with one line naming `ARCHIVE_URL` unless the store works."""
    try:
        asyncio.run(Archive(url).check())
    except Exception as error:  # a bad URL, missing credentials, an unreachable store
        print(f"configuration error: ARCHIVE_URL is unusable: {_short(error)}", file=sys.stderr)
        raise SystemExit(2) from None
