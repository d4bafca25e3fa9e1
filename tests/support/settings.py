"""The accounts, tokens and settings the tests share: each test's settings point at its own
Redis database and an archive of its own."""

from __future__ import annotations

import tempfile

from service.settings import Settings

AUTH_ID = "MATESTACCOUNT0000001"
AUTH_TOKEN = "test-main-auth-token-0123456789"
SUB_AUTH_ID = "SATESTSUBACCOUNT0001"
SUB_AUTH_TOKEN = "test-subaccount-token-abcdef"
ADMIN_TOKEN = "test-admin-token"
PUBLIC_BASE_URL = "https://relay.example.com"


def make_settings(redis_url: str, **overrides: object) -> Settings:
    """Settings for a test: its Redis database, and an archive of its own (a new directory)."""
    values: dict[str, object] = {
        "redis_url": redis_url,
        "archive_url": f"file://{tempfile.mkdtemp(prefix='relay-archive-')}",
        "plivo_auth_id": AUTH_ID,
        "plivo_auth_token": AUTH_TOKEN,
        "plivo_subaccounts": f"{SUB_AUTH_ID}:{SUB_AUTH_TOKEN}",
        "public_base_url": PUBLIC_BASE_URL,
        "admin_token": ADMIN_TOKEN,
    }
    values.update(overrides)
    return Settings.model_validate(values)
