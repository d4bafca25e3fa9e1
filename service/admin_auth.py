"""The management API's authentication: `Authorization: Bearer $ADMIN_TOKEN`."""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.exceptions import HTTPException
from starlette.requests import Request


class AdminAuth:
    def __init__(self, token: SecretStr) -> None:
        self._token = token.get_secret_value().encode()

    def check(self, request: Request) -> None:
        """Raise 401 unless the request carries the admin token (compared in constant time)."""
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self._token
        ):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
