"""Security headers on every response the web process sends, callbacks included.

- `Content-Security-Policy`: the relay's own scripts, styles and images only, no inline script,
  forms that post only to the relay, never framed; audio from anywhere (a media link redirects
  to the bucket's signed URL).
- `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`
  (media links carry their signature in the query string).
- `Strict-Transport-Security` when the relay is served over https (`PUBLIC_BASE_URL`, or the
  request itself).
- `Cache-Control: no-store` on the dashboard and the management API, whose answers may carry a
  secret, unless the handler chose otherwise.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src *; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
ALWAYS = [
    (b"content-security-policy", POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")
PRIVATE = ("/dashboard", "/v1/")


class SecurityHeaders:
    """Adds the security headers to every response."""

    def __init__(self, app: ASGIApp, https: bool = False) -> None:
        self.app = app
        self.https = https  # the public URL is https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(ALWAYS)
        if self.https or scope.get("scheme") == "https":
            extra.append(HSTS)
        private = scope["path"].startswith(PRIVATE)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                if private and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
