"""Configuration comes from the environment and is checked before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from service.settings import Settings, load_settings

SECRET = "do-not-print-this-token"
GOOD = {
    "PLIVO_AUTH_ID": "MATESTACCOUNT0000001",
    "PLIVO_AUTH_TOKEN": SECRET,
    "ADMIN_TOKEN": "admin-secret",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "ARCHIVE_URL": "file:///tmp/relay-archive",
}


def test_defaults_and_subaccounts() -> None:
    settings = load_settings(
        {**GOOD, "PLIVO_SUBACCOUNTS": "SATESTSUBACCOUNT0001:tok1, SATESTSUBACCOUNT0002:tok2"}
    )
    assert settings.plivo_api_url == "https://api.plivo.com"
    assert settings.plivo_verify_signatures is True
    assert settings.port == 8000 and settings.web_concurrency == 1
    token = settings.token_for("SATESTSUBACCOUNT0002")
    assert token is not None and token.get_secret_value() == "tok2"
    assert settings.token_for("MATESTACCOUNT0000001") is not None
    assert settings.token_for("SAUNKNOWN00000000000") is None
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"PLIVO_AUTH_TOKEN": None}, "PLIVO_AUTH_TOKEN is required"),
        ({"PLIVO_AUTH_ID": "nope"}, "PLIVO_AUTH_ID must be a 20-character"),
        ({"PORT": "eighty"}, "PORT"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL must be a redis://"),
        ({"PLIVO_SUBACCOUNTS": "SAX:tok"}, "PLIVO_SUBACCOUNTS must be"),
        ({"PUBLIC_BASE_URL": "relay.example.com"}, "PUBLIC_BASE_URL must be an http"),
        ({"PLIVO_VERIFY_SIGNATURES": "maybe"}, "PLIVO_VERIFY_SIGNATURES"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL must be one of debug, info, warning, error"),
        ({"REDIS_URL": "redis://127.0.0.1:notaport/0"}, "REDIS_URL has a port"),
        ({"REDIS_URL": "redis://127.0.0.1:99999/0"}, "REDIS_URL has a port"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/notadb"}, "REDIS_URL has a database"),
        ({"WORKER_SHUTDOWN_GRACE": "60"}, "WORKER_SHUTDOWN_GRACE"),
        ({"SUBSCRIPTIONS_MAX": "0"}, "SUBSCRIPTIONS_MAX"),
        ({"ARCHIVE_URL": "/var/archive"}, "ARCHIVE_URL must be a file:///path"),
        ({"ARCHIVE_URL": None}, "ARCHIVE_URL is required"),
    ],
)
def test_bad_configuration_exits_with_one_line_naming_the_variable(
    change: dict[str, str | None], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(SystemExit) as exit_info:
        load_settings(environ)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("configuration error:")
    assert named in err
    assert SECRET not in err


def refusals(**change: str) -> list[str]:
    """What each process (web, worker) says when it refuses to start with `change`: one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "ADMIN_", "REDIS_"))}
    env.update({**GOOD, **change})
    lines = []
    for module in ("service.web", "workers"):
        result = subprocess.run(
            [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        lines.append(line)
    return lines


def test_processes_refuse_to_start_on_bad_configuration() -> None:
    expected = (
        "configuration error: PLIVO_AUTH_ID must be a 20-character Plivo Auth ID"
        " starting with MA or SA"
    )
    assert refusals(PLIVO_AUTH_ID="bad-id") == [expected, expected]


def test_settings_are_immutable() -> None:
    settings = load_settings(GOOD)
    assert isinstance(settings, Settings)
    with pytest.raises(ValueError):
        settings.port = 1  # type: ignore[misc]


def test_the_redis_url_is_logged_without_its_password() -> None:
    settings = load_settings({**GOOD, "REDIS_URL": f"redis://user:{SECRET}@cache.internal:6380/2"})
    assert settings.redis_url_for_logs == "redis://user:***@cache.internal:6380/2"
    assert load_settings(GOOD).redis_url_for_logs == GOOD["REDIS_URL"]


def test_processes_refuse_to_start_with_an_unusable_archive() -> None:
    for line in refusals(ARCHIVE_URL="file:///proc/no-archive-can-live-here"):
        assert line.startswith("configuration error: ARCHIVE_URL is unusable:")
