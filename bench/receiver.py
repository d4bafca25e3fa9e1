"""The subscribers of bench/deliver.py and bench/throttle.py: one plain ASGI app, as little work
per webhook as can be.

- `POST /hook/{name}`: answers 204 at once, noting when it arrived and, from the event's
  `data.recording.queued_at` (bench/deliver.py puts it there), how long after it was queued.
- `POST /hang`: never answers (until the sender gives up).
- `POST /fail/{name}`: answers 500 (counted like a hook): a subscriber that is down.
- `GET /stats`: per path, the count, first and last arrival and the latencies; `POST /reset`.
- `GET /times`: per path, when each request arrived (epoch seconds).
- `GET /arrivals`: when each event first arrived, `{"<type> <recording_id>": epoch seconds}`
  (bench/latency).
- `POST /token`: an OAuth2 token endpoint (client credentials: any client), one token, an hour;
  `POST /oauth/{name}`: a hook that takes only a bearer token it issued (401 otherwise).

    uvicorn bench.receiver:app --port N
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

Scope = dict[str, Any]
arrivals: dict[str, list[float]] = defaultdict(list)
latencies: dict[str, list[float]] = defaultdict(list)
first_arrival: dict[str, float] = {}
issued: set[bytes] = set()
TOKEN = b"bench-token-"


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path == "/hang":
        await receive()  # returns when the sender disconnects
        return
    if path == "/stats":
        stats = {
            name: {"count": len(times), "first": times[0], "last": times[-1]}
            | {"latencies": latencies[name]}
            for name, times in arrivals.items()
        }
        await answer(send, 200, json.dumps(stats).encode())
        return
    if path == "/times":
        await answer(send, 200, json.dumps(arrivals).encode())
        return
    if path == "/arrivals":
        await answer(send, 200, json.dumps(first_arrival).encode())
        return
    if path == "/token":
        token = TOKEN + str(len(issued)).encode()
        issued.add(b"Bearer " + token)
        arrivals[path].append(time.time())
        answer_body = b'{"access_token": "%s", "token_type": "Bearer", "expires_in": 3600}' % token
        await answer(send, 200, answer_body)
        return
    if path.startswith("/oauth/"):
        given = dict(scope["headers"]).get(b"authorization")
        if given not in issued:
            await answer(send, 401, b"")
            return
    if path == "/reset":
        issued.clear()
        arrivals.clear()
        latencies.clear()
        first_arrival.clear()
        await answer(send, 204, b"")
        return
    now = time.time()
    arrivals[path].append(now)
    if path.startswith("/fail/"):
        await answer(send, 500, b"")
        return
    event = json.loads(body)
    data = event.get("data", {})
    first_arrival.setdefault(f"{event.get('type')} {data.get('recording_id')}", now)
    recording = data.get("recording") or {}
    queued_at = recording.get("queued_at")
    if queued_at is not None:
        latencies[path].append(now - queued_at)
    await answer(send, 204, b"")


async def answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json")] if body else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
