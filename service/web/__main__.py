"""The `web` process of the Procfile: `python -m service.web`.

Checks the configuration, the archive and Redis's eviction policy before anything starts, then
serves the app with uvicorn on `$HOST:$PORT` with `$WEB_CONCURRENCY` processes.
"""

from __future__ import annotations

import uvicorn

from service.logs import configure
from service.settings import load_settings
from service.storage import connections, server
from service.storage.archive import require


def main() -> None:
    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    require(settings.archive_url)
    server.require(settings.redis_url_for_logs, connections.web(settings))
    uvicorn.run(
        "service.web.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.web_concurrency,
        log_level=settings.log_level,
        # uvicorn's loggers go through the relay's handler (`service.logs`: text or JSON).
        log_config=None,
        # Query strings carry callback parameters: the app logs what matters, not every request.
        access_log=False,
        # X-Forwarded-Proto and -For, from FORWARDED_ALLOW_IPS only (uvicorn's; loopback by
        # default): the scheme when PUBLIC_BASE_URL is unset, and the client's address that the
        # throttling of wrong admin tokens counts by.
        proxy_headers=True,
        server_header=False,
        # Bounded request heads and a deadline for receiving each request (service.web.http_limits).
        http="service.web.http_limits:BoundedHttpToolsProtocol",
    )


if __name__ == "__main__":
    main()
