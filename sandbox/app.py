"""A Plivo sandbox: the parts of Plivo's API recording-relay uses, as a real HTTP server.

- Recording API: retrieve, list (filters, paging, the 7-day default window, 30-day maximum),
  delete; objects shaped as Plivo's, numbers as strings included.
- Transcription API: create (with `transcription_callback_url`), retrieve by `type`, delete,
  list. A transcription is ready after `Faults.transcription_delay` seconds and then posts
  Plivo's signed transcription callback.
- HTTP Basic auth, Plivo's error body `{"api_id", "error"}`, media URLs serving audio.
- `POST /sandbox/calls` simulates a recorded call: it creates the recording (`added_at`: in the
  past) and sends the signed recording callback to the relay, `<Record>` style or API style,
  once (a relay that is down never hears of it; `"callback": false` loses it on purpose).
- `PUT /sandbox/faults` injects latency, 5xx, 429 bursts, failing or slow transcriptions, and
  Plivo's rate limit; `GET /sandbox/stats` counts the API requests it answered;
  `GET /sandbox/callbacks` lists the callbacks it sent and when each was answered.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sandbox.state import Account, Faults, SandboxState, SentCallback, Transcription
from service.plivo.signature import sign_v3

log = logging.getLogger("plivo_sandbox")

Handler = Callable[[Request, Account], Awaitable[Response]]
ADD_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
RECORDING_FILTERS = (
    "from_number",
    "to_number",
    "call_uuid",
    "conference_name",
    "mpc_name",
    "mpc_uuid",
    "conference_uuid",
)
MEDIA_CHUNK = 256 * 1024


async def media_chunks(recording_id: str, variant: str, size: int) -> AsyncIterator[bytes]:
    """A recording's audio, made up: `size` bytes from a generator seeded by its id."""
    generator = random.Random(f"{recording_id}/{variant}")
    sent = 0
    while sent < size:
        chunk = generator.randbytes(min(MEDIA_CHUNK, size - sent))
        sent += len(chunk)
        yield chunk


def media_bytes(recording_id: str, variant: str, size: int) -> bytes:
    """What `media_chunks` streams, whole (for tests)."""
    generator = random.Random(f"{recording_id}/{variant}")
    parts = []
    while size > 0:
        parts.append(generator.randbytes(min(MEDIA_CHUNK, size)))
        size -= MEDIA_CHUNK
    return b"".join(parts)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of a single `Range: bytes=a-b` (or `a-`, `-n`); all of it without one,
    None when it cannot be satisfied."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec or "-" not in spec:
        return 0, size
    first, _, last = spec.strip().partition("-")
    if not (first + last).isdigit():
        return 0, size
    if not first:
        start, end = max(0, size - int(last or 0)), size
    else:
        start, end = int(first), min(size, int(last) + 1 if last else size)
    return (start, end) if start < end else None


async def _sliced(
    chunks: AsyncIterator[bytes], start: int, end: int, delay: float
) -> AsyncIterator[bytes]:
    offset = 0
    async for chunk in chunks:
        if offset and delay:
            await asyncio.sleep(delay)
        piece = chunk[max(0, start - offset) : max(0, end - offset)]
        offset += len(chunk)
        if piece:
            yield piece
        if offset >= end:
            return


def plivo_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"api_id": str(uuid.uuid4()), "error": message}, status_code=status)


def api_answer(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse({"api_id": str(uuid.uuid4()), **body}, status_code=status)


GREETING = ["hello", "thanks", "for", "calling", "how", "can", "I", "help"]
# The default call: two speakers, word timings, and what REDACT removes (a card number spoken
# digit by digit, the test Visa 4111 1111 1111 1111, and an email address).
CONVERSATION = [
    ("Speaker 0", "Hello, thanks for calling. How can I help?"),
    (
        "Speaker 1",
        "I would like to pay with my card, it is four one one one one one one one "
        "one one one one one one one one.",
    ),
    ("Speaker 0", "Thank you. The receipt goes to jane.doe@example.com, is that right?"),
    ("Speaker 1", "Yes, that is right."),
]
WORD_MS, GAP_MS = 400, 50


def transcript_text(recording_id: str, length: int | None = None) -> dict[str, Any]:
    """The three forms of a (made-up, deterministic) transcript: the default conversation, or
    `length` words in turns of 25, speakers alternating."""
    if length is None:
        turns = CONVERSATION
    else:
        words = [GREETING[n % len(GREETING)] for n in range(length)]
        turns = [
            (f"Speaker {n % 2}", " ".join(words[i : i + 25]) + ".")
            for n, i in enumerate(range(0, length, 25))
        ]
    spoken = [word.strip(".,?") for _, said in turns for word in said.split()]
    return {
        "transcription": f"{' '.join(said for _, said in turns)} ({recording_id[:8]})",
        "raw": [
            {
                "word": word,
                "start_ms": WORD_MS * n,
                "end_ms": WORD_MS * n + WORD_MS - GAP_MS,
                "confidence": 0.97,
            }
            for n, word in enumerate(spoken)
        ],
        "diarized": "".join(f"\n{speaker}: {said}\n" for speaker, said in turns),
    }


class Sandbox:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.http = httpx.AsyncClient(timeout=10)
        self.tasks: set[asyncio.Task[None]] = set()

    # -- the shared part of every API request: counting, faults, auth -------------------------

    def api(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            state, faults = self.state, self.state.faults
            state.counters.requests += 1
            route = f"{request.method} {request.scope['route'].path}"
            state.counters.by_route[route] = state.counters.by_route.get(route, 0) + 1
            if faults.latency:
                await asyncio.sleep(faults.latency)
            account = self._authenticate(request)
            if account is None:
                return plivo_error(401, "Authentication credentials invalid")
            if faults.rate_limit is not None and self._over_rate_limit(faults):
                state.counters.rate_limited += 1
                return plivo_error(429, "Too many requests")
            if faults.burst_429 > 0:
                faults.burst_429 -= 1
                state.counters.rate_limited += 1
                response = plivo_error(429, "Too many requests")
                if faults.retry_after is not None:
                    response.headers["Retry-After"] = f"{faults.retry_after:g}"
                return response
            if faults.error_rate and random.random() < faults.error_rate:
                state.counters.injected_errors += 1
                return plivo_error(500, "Internal server error")
            return await handler(request, account)

        return endpoint

    def _authenticate(self, request: Request) -> Account | None:
        auth_id = request.path_params["auth_id"]
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        account = self.state.accounts.get(auth_id)
        if account is None or user != auth_id:
            return None
        return account if secrets.compare_digest(password, account.token) else None

    def _over_rate_limit(self, faults: Faults) -> bool:
        now = time.monotonic()
        times = self.state.request_times
        while times and times[0] <= now - faults.rate_window:
            times.pop(0)
        if faults.rate_limit is not None and len(times) >= faults.rate_limit:
            return True
        times.append(now)
        return False

    # -- Recording API ---------------------------------------------------------------------

    async def get_recording(self, request: Request, account: Account) -> Response:
        recording = account.recordings.get(request.path_params["recording_id"])
        if recording is None:
            return plivo_error(404, "Recording not found")
        return api_answer(recording)

    async def delete_recording(self, request: Request, account: Account) -> Response:
        if account.recordings.pop(request.path_params["recording_id"], None) is None:
            return plivo_error(404, "Recording not found")
        return Response(status_code=204)

    async def list_recordings(self, request: Request, account: Account) -> Response:
        query = request.query_params
        try:
            limit = int(query.get("limit", "20"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            return plivo_error(400, "limit and offset must be integers")
        if not 1 <= limit <= 20:
            return plivo_error(400, "limit must be between 1 and 20")
        if offset < 0:
            return plivo_error(400, "offset must not be negative")
        bounds: dict[str, datetime] = {}
        for op in ("gt", "gte", "lt", "lte"):
            raw = query.get(f"add_time__{op}") or (query.get("add_time") if op == "gte" else None)
            if raw is not None:
                parsed = _parse_add_time(raw)
                if parsed is None:
                    return plivo_error(400, f"add_time__{op}: use YYYY-MM-DD HH:MM[:ss[.uuuuuu]]")
                bounds[op] = parsed
        storage_filters = {
            key: value
            for key, value in query.items()
            if key.startswith("recording_storage_duration")
        }
        if bounds and storage_filters:
            return plivo_error(400, "recording_storage_duration cannot be used with add_time")
        now = datetime.now(UTC).replace(tzinfo=None)
        lower = bounds.get("gt") or bounds.get("gte")
        upper = bounds.get("lt") or bounds.get("lte") or now
        if lower is None and not storage_filters:
            lower = upper - timedelta(days=7)  # Plivo's default search window
        if lower is not None and upper - lower > timedelta(days=30):
            return plivo_error(400, "add_time window must not exceed 30 days")

        def keep(recording: dict[str, Any]) -> bool:
            added = _parse_add_time(str(recording["add_time"]).split("+")[0])
            assert added is not None
            checks = {
                "gt": lambda b: added > b,
                "gte": lambda b: added >= b,
                "lt": lambda b: added < b,
                "lte": lambda b: added <= b,
            }
            if not bounds and lower is not None and added < lower:
                return False
            if any(not checks[op](bound) for op, bound in bounds.items()):
                return False
            for name in RECORDING_FILTERS:
                wanted = query.get(name)
                if wanted is not None and str(recording.get(name)) != wanted:
                    return False
            if query.get("subaccount") not in (None, account.auth_id):
                return False
            for key, value in storage_filters.items():
                op = key.rpartition("__")[2] if "__" in key else "eq"
                days, bound = int(str(recording["recording_storage_duration"])), int(value)
                ok = {"gt": days > bound, "gte": days >= bound, "lt": days < bound}.get(
                    op, days <= bound if op == "lte" else days == bound
                )
                if not ok:
                    return False
            return True

        matching = sorted(
            (r for r in account.recordings.values() if keep(r)),
            key=lambda r: str(r["add_time"]),
            reverse=True,
        )
        page = matching[offset : offset + limit]
        base = f"/v1/Account/{account.auth_id}/Recording/"
        meta = {
            "limit": limit,
            "offset": offset,
            "total_count": len(matching),
            "next": f"{base}?limit={limit}&offset={offset + limit}"
            if offset + limit < len(matching)
            else None,
            "previous": f"{base}?limit={limit}&offset={max(0, offset - limit)}" if offset else None,
        }
        objects = [{k: v for k, v in r.items() if k != "resource_uri"} for r in page]
        return api_answer({"meta": meta, "objects": objects})

    # -- Transcription API -----------------------------------------------------------------

    async def create_transcription(self, request: Request, account: Account) -> Response:
        recording_id = request.path_params["recording_id"]
        if recording_id not in account.recordings:
            return plivo_error(404, "Recording not found")
        body = await request.body()
        callback_url = None
        if body:
            try:
                document = await request.json()
            except ValueError:
                return plivo_error(400, "body must be JSON")
            callback_url = document.get("transcription_callback_url") if document else None
        self.start_transcription(account, recording_id, callback_url)
        bought = self.state.counters.bought
        bought[recording_id] = bought.get(recording_id, 0) + 1
        return api_answer({"message": "transcription in progress"}, status=201)

    def start_transcription(
        self, account: Account, recording_id: str, callback_url: str | None
    ) -> None:
        faults = self.state.faults
        now = time.time()
        transcription = Transcription(
            recording_id=recording_id,
            created=now,
            ready_at=now + faults.transcription_delay,
            callback_url=callback_url,
            error=faults.transcription_error,
        )
        account.transcriptions[recording_id] = transcription
        task = asyncio.create_task(self._finish(account, transcription))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _finish(self, account: Account, transcription: Transcription) -> None:
        await asyncio.sleep(max(0.0, transcription.ready_at - time.time()))
        if transcription.callback_url is None or not self.state.faults.transcription_callback:
            return
        recording = account.recordings.get(transcription.recording_id, {})
        duration_s = float(str(recording.get("recording_duration_ms", "0"))) / 1000
        params = {
            "recording_id": transcription.recording_id,
            "call_uuid": str(recording.get("call_uuid", "")),
            "duration": f"{duration_s:g}",
            "transcription_charge": "0" if transcription.error else "0.05",
            "transcription_rate": "0.05",
            "transcription": ""
            if transcription.error
            else transcript_text(transcription.recording_id, self.state.faults.transcript_words)[
                "transcription"
            ],
            "error": transcription.error or "",
        }
        try:
            response = await self.post_signed(account, transcription.callback_url, params)
            transcription.callback_sent = True
            self._sent("transcription", transcription.recording_id, response.status_code)
        except httpx.HTTPError as error:
            self._sent("transcription", transcription.recording_id, 0)
            log.warning(
                "transcription callback to %s failed: %s", transcription.callback_url, error
            )

    async def get_transcription(self, request: Request, account: Account) -> Response:
        recording_id = request.path_params["recording_id"]
        transcription = account.transcriptions.get(recording_id)
        if transcription is None:
            return plivo_error(404, "Transcription not found")
        kind = request.query_params.get("type", "transcription")
        if kind not in ("transcription", "raw", "diarized"):
            return plivo_error(400, "type must be one of transcription, raw, diarized")
        if time.time() < transcription.ready_at:
            return plivo_error(404, "Transcription is in progress")
        if transcription.error:
            return api_answer({"status": "failed", "error": transcription.error})
        recording = account.recordings.get(recording_id, {})
        return api_answer(
            {
                "cost": 0.05,
                "rate": 0.05,
                "recording_duration_ms": recording.get("recording_duration_ms"),
                "recording_start_ms": recording.get("recording_start_ms"),
                "status": "success",
                "transcription": transcript_text(recording_id, self.state.faults.transcript_words)[
                    kind
                ],
            }
        )

    async def delete_transcription(self, request: Request, account: Account) -> Response:
        if account.transcriptions.pop(request.path_params["recording_id"], None) is None:
            return plivo_error(404, "Transcription not found")
        return api_answer({"message": "request accepted"}, status=202)

    async def list_transcriptions(self, request: Request, account: Account) -> Response:
        objects = [
            {"recording_id": t.recording_id, "status": _status(t)}
            for t in account.transcriptions.values()
        ]
        meta = {"limit": 20, "offset": 0, "total_count": len(objects), "next": None}
        return api_answer({"meta": meta, "objects": objects[:20]})

    # -- media, simulation and control ------------------------------------------------------

    async def media(self, request: Request) -> Response:
        """A recording's audio: `media_bytes` of bytes made from its id (so a test can make
        them again: `media_bytes()`), other bytes for `?type=original`; with the account's
        Basic Auth when `media_auth` is on."""
        faults = self.state.faults
        self.state.counters.media += 1
        auth_id = request.path_params["auth_id"]
        recording_id, _, extension = request.path_params["file"].rpartition(".")
        if faults.media_auth and self._authenticate(request) is None:
            return plivo_error(401, "Authentication credentials invalid")
        account = self.state.accounts.get(auth_id)
        if account is None or recording_id not in account.recordings:
            return plivo_error(404, "Recording not found")
        original = request.query_params.get("type") == "original"
        if original and not faults.original_audio:
            return plivo_error(404, "No original recording")
        variant = "original" if original else "denoised"
        size = faults.media_bytes
        kind = "audio/mpeg" if extension == "mp3" else "audio/wav"
        headers = {"Accept-Ranges": "bytes", "X-Recording-Variant": variant}
        asked = _byte_range(request.headers.get("range", ""), size)
        if asked is None:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        start, end = asked
        if (start, end) != (0, size):
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        return StreamingResponse(
            _sliced(
                media_chunks(recording_id, variant, size), start, end, faults.media_chunk_delay
            ),
            status_code=206 if "Content-Range" in headers else 200,
            media_type=kind,
            headers=headers,
        )

    async def simulate_call(self, request: Request) -> Response:
        """Record a call and tell the relay, as Plivo would."""
        body = await request.json()
        auth_id = body.get("auth_id") or next(iter(self.state.accounts))
        account = self.state.accounts.get(auth_id)
        if account is None:
            return JSONResponse({"error": f"unknown account {auth_id}"}, status_code=400)
        relay_url = body.get("relay_url")
        if not relay_url:
            return JSONResponse({"error": "relay_url is required"}, status_code=400)
        added_at = datetime.fromisoformat(body["added_at"]) if body.get("added_at") else None
        parties = {
            name: str(body[name])
            for name in ("from_number", "to_number", "call_uuid")
            if body.get(name)
        }
        recording = self.state.new_recording(
            auth_id, int(body.get("duration_ms", 42_180)), added_at=added_at, **parties
        )
        if body.get("callback") is False:  # lost on Plivo's side: the relay never hears of it
            return JSONResponse(
                {"recording_id": recording["recording_id"], "callback_status": None}
            )
        if body.get("transcription_url"):  # <Record transcriptionType="auto" transcriptionUrl=...>
            self.start_transcription(
                account, str(recording["recording_id"]), body["transcription_url"]
            )
        params = callback_params(recording, body.get("style", "record_xml"))
        recording_id = str(recording["recording_id"])
        try:
            response = await self.post_signed(
                account, relay_url, params, body.get("method", "POST")
            )
        except httpx.HTTPError:  # the relay is down: Plivo does not try again (only timeouts)
            self._sent("recording", recording_id, 0)
            return JSONResponse({"recording_id": recording_id, "callback_status": 0})
        self._sent("recording", recording_id, response.status_code)
        return JSONResponse({"recording_id": recording_id, "callback_status": response.status_code})

    def _sent(self, kind: str, recording_id: str, status: int) -> None:
        self.state.callbacks.append(SentCallback(kind, recording_id, status, time.time()))

    async def post_signed(
        self, account: Account, url: str, params: dict[str, str], method: str = "POST"
    ) -> httpx.Response:
        """Send a callback with Plivo's V3 signature headers."""
        nonce = str(secrets.randbelow(10**20))
        if method == "GET":
            target = httpx.URL(url, params=params)
            signature = sign_v3(account.token, nonce, "GET", str(target))
            headers = {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}
            return await self.http.get(target, headers=headers)
        signature = sign_v3(account.token, nonce, "POST", url, list(params.items()))
        headers = {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}
        return await self.http.post(url, data=params, headers=headers)

    async def set_faults(self, request: Request) -> Response:
        document = await request.json()
        current = self.state.faults
        unknown = set(document) - set(vars(current))
        if unknown:
            return JSONResponse({"error": f"unknown faults: {sorted(unknown)}"}, status_code=422)
        for name, value in document.items():
            setattr(current, name, value)
        return JSONResponse(vars(current))

    async def sent_callbacks(self, request: Request) -> Response:
        """Every callback sent so far, oldest first, with when the relay answered it."""
        return JSONResponse([dataclasses.asdict(sent) for sent in self.state.callbacks])

    async def stats(self, request: Request) -> Response:
        counters = self.state.counters
        return JSONResponse(
            {
                "requests": counters.requests,
                "by_route": counters.by_route,
                "rate_limited": counters.rate_limited,
                "injected_errors": counters.injected_errors,
            }
        )


def callback_params(recording: dict[str, Any], style: str) -> dict[str, str]:
    """The recording callback Plivo sends for `recording`, in the given style."""
    duration_ms = float(recording["recording_duration_ms"])
    start_ms, end_ms = float(recording["recording_start_ms"]), float(recording["recording_end_ms"])
    if style == "api":
        return {
            "api_id": str(uuid.uuid4()),
            "record_url": str(recording["recording_url"]),
            "recording_id": str(recording["recording_id"]),
            "call_uuid": str(recording["call_uuid"]),
            "recording_duration": f"{round(duration_ms / 1000)}",
            "recording_duration_ms": f"{duration_ms:.0f}",
            "recording_start_ms": f"{start_ms:.0f}",
            "recording_end_ms": f"{end_ms:.0f}",
        }
    return {
        "RecordingID": str(recording["recording_id"]),
        "RecordUrl": str(recording["recording_url"]),
        "RecordingDuration": f"{round(duration_ms / 1000)}",
        "RecordingDurationMs": f"{duration_ms:.0f}",
        "RecordingStartMs": f"{start_ms:.0f}",
        "RecordingEndMs": f"{end_ms:.0f}",
        "CallUUID": str(recording["call_uuid"]),
        "From": str(recording["from_number"]),
        "To": str(recording["to_number"]),
        "Direction": "inbound",
    }


def _status(transcription: Transcription) -> str:
    if time.time() < transcription.ready_at:
        return "in-progress"
    return "failed" if transcription.error else "success"


def _parse_add_time(raw: str) -> datetime | None:
    for layout in ADD_TIME_FORMATS:
        try:
            return datetime.strptime(raw.strip(), layout)
        except ValueError:
            continue
    return None


def create_sandbox(accounts: dict[str, str], base_url: str = "") -> Starlette:
    """The sandbox app for these accounts ({auth_id: auth_token})."""
    sandbox = Sandbox(SandboxState(accounts, base_url))
    api = sandbox.api
    prefix = "/v1/Account/{auth_id}"
    routes = [
        Route(f"{prefix}/Recording/", api(sandbox.list_recordings), methods=["GET"]),
        Route(f"{prefix}/Recording/{{recording_id}}/", api(sandbox.get_recording), methods=["GET"]),
        Route(
            f"{prefix}/Recording/{{recording_id}}/",
            api(sandbox.delete_recording),
            methods=["DELETE"],
        ),
        Route(f"{prefix}/Transcription/", api(sandbox.list_transcriptions), methods=["GET"]),
        Route(
            f"{prefix}/Transcription/{{recording_id}}/",
            api(sandbox.get_transcription),
            methods=["GET"],
        ),
        Route(
            f"{prefix}/Transcription/{{recording_id}}/",
            api(sandbox.create_transcription),
            methods=["POST"],
        ),
        Route(
            f"{prefix}/Transcription/{{recording_id}}/",
            api(sandbox.delete_transcription),
            methods=["DELETE"],
        ),
        Route("/media/{auth_id}/{file}", sandbox.media, methods=["GET"]),
        Route("/sandbox/calls", sandbox.simulate_call, methods=["POST"]),
        Route("/sandbox/faults", sandbox.set_faults, methods=["PUT"]),
        Route("/sandbox/stats", sandbox.stats, methods=["GET"]),
        Route("/sandbox/callbacks", sandbox.sent_callbacks, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = sandbox
    return app
