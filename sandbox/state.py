"""The sandbox's memory: accounts, recordings, transcriptions, faults and counters.

Everything lives in this process; a sandbox starts empty and forgets on exit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class Faults:
    """Misbehaviour to inject, settable per run through `PUT /sandbox/faults`."""

    latency: float = 0.0  # seconds added to every API answer
    error_rate: float = 0.0  # share of API requests answered 500
    burst_429: int = 0  # the next N API requests get 429
    retry_after: float | None = None  # Retry-After sent with those 429s (None: no header)
    transcription_error: str | None = None  # transcriptions fail with this Plivo error text
    transcription_delay: float = 1.0  # seconds until a transcription is ready
    transcription_callback: bool = True  # False: never post the transcription callback
    # Enforce Plivo's rate limit: at most `rate_limit` requests per `rate_window` seconds.
    rate_limit: int | None = None
    rate_window: float = 5.0
    # Words in each transcript (8: a greeting; about 750: a 5-minute call, as bench/memory uses).
    transcript_words: int | None = None  # None: the default conversation
    # Bytes of each recording's audio (5 minutes of mp3 are about 2.4 MB, 4 hours 115 MB).
    media_bytes: int = 64 * 1024
    # Seconds between chunks (256 KiB) of audio: a slow download, to cut short in tests.
    media_chunk_delay: float = 0.0
    # Plivo's "HTTP Auth on recordings": media is served only with the account's Basic Auth.
    media_auth: bool = True
    # Whether `?type=original` (the pre-denoised recording, India-region accounts) exists.
    original_audio: bool = True


@dataclass
class Transcription:
    recording_id: str
    created: float
    ready_at: float
    callback_url: str | None
    error: str | None
    callback_sent: bool = False


@dataclass
class Account:
    auth_id: str
    token: str
    recordings: dict[str, dict[str, object]] = field(default_factory=dict)
    transcriptions: dict[str, Transcription] = field(default_factory=dict)


@dataclass(frozen=True)
class SentCallback:
    """A callback the sandbox sent, and when its answer came (epoch seconds; for latency)."""

    kind: str  # "recording" or "transcription"
    recording_id: str
    status: int  # the relay's answer; 0 when it could not be reached
    answered_at: float


@dataclass
class Counters:
    requests: int = 0
    by_route: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    injected_errors: int = 0
    media: int = 0  # audio downloads begun (not API requests)
    # Transcriptions created (what an account pays for), by recording: a request cut off before
    # the sandbox read it creates none.
    bought: dict[str, int] = field(default_factory=dict)


class SandboxState:
    def __init__(self, accounts: dict[str, str], base_url: str = "") -> None:
        self.accounts = {auth_id: Account(auth_id, token) for auth_id, token in accounts.items()}
        self.faults = Faults()
        self.counters = Counters()
        self.base_url = base_url  # the sandbox's own URL, for media links
        self.request_times: list[float] = []
        self.callbacks: list[SentCallback] = []  # oldest first

    def new_recording(
        self,
        auth_id: str,
        duration_ms: int,
        call_uuid: str | None = None,
        conference_name: str | None = None,
        recording_format: str = "mp3",
        from_number: str = "+14155550100",
        to_number: str = "+14155550111",
        added_at: datetime | None = None,
    ) -> dict[str, object]:
        """A recording shaped exactly as Plivo's API returns it, numbers as strings included;
        made now, or at `added_at` (a recording of the account's past)."""
        recording_id = str(uuid.uuid4())
        added = added_at or datetime.now(UTC)
        end_ms = added.timestamp() * 1000
        start_ms = end_ms - duration_ms
        recording: dict[str, object] = {
            "add_time": added.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00:00"),
            "call_uuid": call_uuid or str(uuid.uuid4()),
            "conference_name": conference_name,
            "from_number": from_number,
            "to_number": to_number,
            "monthly_recording_storage_amount": "0.00000",
            "recording_duration_ms": f"{duration_ms:.5f}",
            "recording_end_ms": f"{end_ms:.5f}",
            "recording_format": recording_format,
            "recording_id": recording_id,
            "recording_start_ms": f"{start_ms:.5f}",
            "recording_storage_duration": "0",
            "recording_storage_rate": "0.00000",
            "recording_type": "conference" if conference_name else "normal",
            "recording_url": f"{self.base_url}/media/{auth_id}/{recording_id}.{recording_format}",
            "resource_uri": f"/v1/Account/{auth_id}/Recording/{recording_id}/",
            "rounded_recording_duration": str(max(60, -(-duration_ms // 60000) * 60)),
        }
        self.accounts[auth_id].recordings[recording_id] = recording
        return recording
