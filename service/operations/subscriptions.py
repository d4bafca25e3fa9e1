"""Adding and changing subscriptions: what the management API and the dashboard share.

A subscription's URL must be one the relay may send to (`service.ssrf`); a stored record the
relay cannot read answers `Conflict` where it would be shown or changed, and can be deleted.
"""

from __future__ import annotations

from pydantic import ValidationError

from service import endpoint_tls
from service.domain.endpoint_auth import BasicAuth, ClientTLS, OAuth2
from service.domain.problems import Conflict, Invalid, NotFound, invalid
from service.domain.subscriptions import Subscription, SubscriptionCreate, SubscriptionPatch
from service.ssrf import RefusedURL, URLGuard
from service.storage.deliveries import Deliveries
from service.storage.subscriptions import LimitReached, SubscriptionStore, Unreadable


class Subscriptions:
    """The subscriptions, as an operator changes them."""

    def __init__(self, store: SubscriptionStore, deliveries: Deliveries, guard: URLGuard) -> None:
        self.store = store
        self.deliveries = deliveries
        self.guard = guard

    async def find(self, subscription_id: str) -> Subscription:
        """The subscription (`NotFound`; `Conflict` if its record is unreadable)."""
        found = await self.store.get(subscription_id)
        if found is None:
            raise NotFound("no such subscription")
        if isinstance(found, Unreadable):
            raise Conflict(f"the stored subscription is unreadable ({found.error}); delete it")
        return found

    async def add(self, wanted: SubscriptionCreate) -> Subscription:
        """Create a subscription to a URL the relay may send to (`Invalid`, or `Conflict` past
        the limit)."""
        await self._check_url(wanted.url)
        await self._check_auth(wanted.auth, wanted.tls)
        try:
            return await self.store.create(wanted)
        except LimitReached as error:
            raise Conflict(str(error)) from None

    async def change(self, subscription: Subscription, patch: SubscriptionPatch) -> Subscription:
        """`subscription` with `patch` applied and stored (`Invalid` naming the field)."""
        if "url" in patch.model_fields_set and patch.url is not None:
            await self._check_url(patch.url)
        auth = patch.auth if isinstance(patch.auth, BasicAuth | OAuth2) else None
        await self._check_auth(auth, patch.tls)
        try:
            return await self.store.update(subscription, patch)
        except ValidationError as error:
            raise invalid(error) from None

    async def remove(self, subscription_id: str) -> None:
        """Delete a subscription and what waits for it (`NotFound`)."""
        if not await self.store.delete(subscription_id):
            raise NotFound("no such subscription")
        await self.deliveries.drop(subscription_id)

    async def _check_url(self, url: str, field: str = "url") -> None:
        try:
            await self.guard.check(url)
        except RefusedURL as error:
            raise Invalid(field, str(error)) from None

    async def _check_auth(self, auth: BasicAuth | OAuth2 | None, tls: ClientTLS | None) -> None:
        """The token URL under the webhook URL's rules; a certificate that pairs with its
        key, a CA that loads (`Invalid` naming the field)."""
        if isinstance(auth, OAuth2):
            await self._check_url(auth.token_url, "auth.token_url")
        if tls is not None and not tls.empty:
            try:
                endpoint_tls.context(tls)
            except endpoint_tls.BadTLS as error:
                raise Invalid("tls", str(error)) from None
