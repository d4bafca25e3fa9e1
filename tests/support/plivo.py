"""Sending callbacks to the relay the way Plivo does: form or query parameters, V3-signed."""

from __future__ import annotations

import json
import secrets
import time
import uuid

import httpx

from service.plivo.signature import sign_v3
from tests.support.settings import AUTH_TOKEN, PUBLIC_BASE_URL


def signed_headers(
    method: str,
    path_and_query: str,
    body_params: list[tuple[str, str]] | dict[str, str],
    token: str = AUTH_TOKEN,
    header: str = "X-Plivo-Signature-V3",
    base: str = PUBLIC_BASE_URL,
) -> dict[str, str]:
    nonce = secrets.token_hex(10)
    pairs = list(body_params.items()) if isinstance(body_params, dict) else body_params
    signature = sign_v3(token, nonce, method, base + path_and_query, pairs)
    return {header: signature, "X-Plivo-Signature-V3-Nonce": nonce}


async def post_form(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, str],
    token: str = AUTH_TOKEN,
    header: str = "X-Plivo-Signature-V3",
) -> httpx.Response:
    headers = signed_headers("POST", path, params, token, header)
    return await client.post(path, data=params, headers=headers)


async def post_json(
    client: httpx.AsyncClient, path: str, params: dict[str, object]
) -> httpx.Response:
    pairs = [(k, str(v)) for k, v in params.items()]
    headers = signed_headers("POST", path, pairs)
    headers["Content-Type"] = "application/json"
    return await client.post(path, content=json.dumps(params), headers=headers)


async def get_query(client: httpx.AsyncClient, path: str, params: dict[str, str]) -> httpx.Response:
    url = httpx.URL(path, params=params)
    path_and_query = url.raw_path.decode()
    headers = signed_headers("GET", path_and_query, [])
    return await client.get(path_and_query, headers=headers)


def rid(name: str) -> str:
    """A recording id in Plivo's format (a UUID), the same for the same name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def record_xml_params(recording_id: str, **extra: str) -> dict[str, str]:
    """What `<Record action=... callbackUrl=...>` sends, for a recording that just ended."""
    end_ms = int(time.time() * 1000)
    return {
        "RecordingID": recording_id,
        "RecordUrl": f"https://media.plivo.com/v1/Account/X/Recording/{recording_id}.mp3",
        "RecordingDuration": "12",
        "RecordingDurationMs": "12340",
        "RecordingStartMs": str(end_ms - 12340),
        "RecordingEndMs": str(end_ms),
        "CallUUID": "c2c128e2-1c8c-11e4-9bff-1db8a9db0432",
        "From": "+14155550100",
        "To": "+14155550111",
        "Direction": "inbound",
        **extra,
    }
