"""Signed media links: how a subscriber fetches a recording's audio without Plivo's credentials.

A link is the relay's own URL, `<PUBLIC_BASE_URL>/media/<recording_id>.<format>?expires=<epoch
seconds>&signature=<HMAC-SHA256, base64url>`, signed over the file name and the expiry with
`MEDIA_SIGNING_KEY` (when unset, a key the relay keeps in Redis: `service.storage.keyring`,
independent of the admin tokens) and valid for `MEDIA_LINK_TTL`
seconds. Every event about a recording carries one (`data.media`); every webhook attempt,
replay and recovery carries a fresh one. `?type=original` may be added to a link to ask for the
pre-denoised copy: it is the same recording, so it is not part of what is signed. A
transcribed recording's links also name its transcript, `<recording_id>.transcript.<form>`
(`json`, `txt`, `vtt`), signed the same way.

`service.web.media` serves the links.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from service.domain.events import Media
from service.settings import Settings


class KeySource(Protocol):
    """Where a key comes from when the settings give none (`service.storage.keyring`)."""

    async def key(self, name: str) -> bytes: ...


class LinkRefused(Exception):
    """The link is not one the relay signed, or it has expired (the message says which)."""


class MediaLinks:
    """Makes and checks media links; `ready()` (once) before either."""

    def __init__(self, settings: Settings, keyring: KeySource) -> None:
        self._key: bytes | None = None
        if settings.media_signing_key is not None:
            self._key = settings.media_signing_key.get_secret_value().encode()
        self.keyring = keyring
        self.base = f"{settings.public_base_url or ''}/media"
        self.ttl = settings.media_link_ttl

    async def ready(self) -> MediaLinks:
        """These links, with their key (the relay's own from Redis, the first time, unless
        `MEDIA_SIGNING_KEY` is set)."""
        if self._key is None:
            self._key = await self.keyring.key("media")
        return self

    def link(
        self,
        recording_id: str,
        audio_format: str,
        now: float | None = None,
        transcript: Iterable[str] = (),
    ) -> Media:
        """A link to the recording's audio, valid for `MEDIA_LINK_TTL` from `now`, and to its
        transcript in each of the forms named (`json`, `txt`, `vtt`)."""
        expires = int(time.time() if now is None else now) + self.ttl
        forms = {
            form: self.url(f"{recording_id}.transcript.{form}", expires) for form in transcript
        }
        return Media(
            url=self.url(f"{recording_id}.{audio_format}", expires),
            format=audio_format,
            expires_at=datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z"),
            transcript=forms or None,
        )

    def url(self, name: str, expires: int) -> str:
        """The signed URL of `name` (`<recording_id>.<format>`, or
        `<recording_id>.transcript.<form>`), valid until `expires` (epoch seconds)."""
        return f"{self.base}/{name}?expires={expires}&signature={self._sign(name, expires)}"

    def check(self, name: str, expires: str | None, signature: str | None) -> None:
        """`LinkRefused` unless `name` (`<recording_id>.<format>`) with these query values is a
        link the relay signed that has not expired."""
        if not expires or not signature:
            raise LinkRefused("the media link needs its expires and signature parameters")
        if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
            raise LinkRefused("the media link's expires is not a time")
        if not hmac.compare_digest(signature.encode(), self._sign(name, int(expires)).encode()):
            raise LinkRefused("the media link's signature is not valid")
        if int(expires) < time.time():
            raise LinkRefused("the media link has expired: ask for the event again (replay)")

    def _sign(self, name: str, expires: int) -> str:
        if self._key is None:
            raise RuntimeError("MediaLinks.ready() was not awaited")
        mac = hmac.new(self._key, f"{name}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
