"""`GET /metrics`: the whole deployment's metrics in Prometheus's text format (`service.metrics`),
behind `Authorization: Bearer $METRICS_TOKEN`; with no `METRICS_TOKEN`, no metrics (404): the
scraper's token is its own, so rotating the admin tokens never breaks it."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from service.metrics import exposition
from service.operations.admin_auth import AdminAuth
from service.operations.overview import Overview


class MetricsAPI:
    def __init__(self, auth: AdminAuth | None, overview: Overview) -> None:
        self.auth = auth
        self.overview = overview

    async def get(self, request: Request) -> Response:
        if self.auth is None:
            raise HTTPException(404, "metrics are off: set METRICS_TOKEN to serve them")
        await self.auth.check(request)
        subscriptions, _ = await self.overview.subscriptions.scan()
        queues, _ = await self.overview.depths(subscriptions)
        totals = await self.overview.metrics.totals()
        health = await self.overview.deployment.report()
        return Response(exposition(totals, queues, health), media_type=CONTENT_TYPE_LATEST)
