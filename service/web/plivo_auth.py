"""Deciding whether a request came from Plivo, and for which account.

The URL Plivo signed is the public one: `PUBLIC_BASE_URL` plus the path and query the request
arrived with (behind a proxy the app itself sees another scheme, host or port).
`X-Plivo-Signature-V3` is checked against the main account's token and every configured
subaccount's, which also tells which account owns the recording; `X-Plivo-Signature-Ma-V3`
against the main account's only.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

from service.plivo.signature import canonical_v3_parts, matches, sign
from service.settings import Settings
from service.web.body import CallbackParams

V3 = "x-plivo-signature-v3"
MA_V3 = "x-plivo-signature-ma-v3"
NONCE = "x-plivo-signature-v3-nonce"


class PlivoAuth:
    """Checks Plivo's V3 signatures with the tokens from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.plivo_verify_signatures
        self.public_base_url = settings.public_base_url
        self.main_auth_id = settings.plivo_auth_id
        # Subaccounts first: a subaccount's recording must be fetched with its own credentials.
        self._tokens: list[tuple[str, bytes]] = [
            (auth_id, token.get_secret_value().encode())
            for auth_id, token in settings.plivo_subaccounts.items()
        ]
        self._tokens.append(
            (settings.plivo_auth_id, settings.plivo_auth_token.get_secret_value().encode())
        )
        self._main_token = self._tokens[-1][1]

    def public_url(self, request: Request) -> str:
        """The URL Plivo called without its query, as configured there (the fragment never
        reaches us)."""
        path = request.scope.get("raw_path") or request.scope["path"].encode()
        if isinstance(path, bytes):
            path = path.decode("latin-1")
        if self.public_base_url is not None:
            return f"{self.public_base_url}{path}"
        return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}{path}"

    def verify(self, request: Request, params: CallbackParams) -> str:
        """The auth id of the account that signed the request; 403 if none did."""
        if not self.enabled:
            return self.main_auth_id
        nonce = request.headers.get(NONCE)
        v3 = request.headers.get(V3)
        ma_v3 = request.headers.get(MA_V3)
        if not nonce or not (v3 or ma_v3):
            raise HTTPException(403, f"missing Plivo signature: {V3} and {NONCE} are required")
        canonical = canonical_v3_parts(
            request.method, self.public_url(request), params.query, params.body
        )
        if v3:
            for auth_id, token in self._tokens:
                if matches(sign(token, canonical, nonce), v3):
                    return auth_id
        if ma_v3 and matches(sign(self._main_token, canonical, nonce), ma_v3):
            return self.main_auth_id
        if self.public_base_url is None:
            raise HTTPException(
                403,
                "invalid Plivo signature (PUBLIC_BASE_URL is unset, so it was checked against "
                "the URL this request arrived at: set PUBLIC_BASE_URL to the URL Plivo calls)",
            )
        raise HTTPException(403, "invalid Plivo signature")
