"""`GET /metrics`: the whole deployment's metrics in Prometheus's text format (`service.metrics`),
behind `Authorization: Bearer $METRICS_TOKEN` (`ADMIN_TOKEN` when unset)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from service.admin_auth import AdminAuth
from service.dashboard.overview import Overview
from service.metrics import exposition


class MetricsAPI:
    def __init__(self, auth: AdminAuth, overview: Overview) -> None:
        self.auth = auth
        self.overview = overview

    async def get(self, request: Request) -> Response:
        self.auth.check(request)
        subscriptions, _ = await self.overview.subscriptions.scan()
        queues, _ = await self.overview.depths(subscriptions)
        totals = await self.overview.metrics.totals()
        health = await self.overview.deployment.report()
        return Response(exposition(totals, queues, health), media_type=CONTENT_TYPE_LATEST)
