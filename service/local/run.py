"""`make run`: the whole service on a laptop, the way the PaaS runs it.

Starts a private Redis (kept in `.local/redis`) when `REDIS_URL` is unset and, when Plivo's
credentials are unset, the Plivo sandbox with a demo account and a subscriber that prints the
webhooks it verifies (`sandbox.receiver`); then runs every process of the `Procfile` with that
environment, prefixing their output with the process name, and prints how to simulate a call
and subscribe. Ctrl-C stops them all.

Everything listens on 127.0.0.1 (`HOST` to change the web process's), on ports named at the
start and configurable: `PORT` (8000), `SANDBOX_PORT` (8765), `RECEIVER_PORT` (9000). A port
already taken stops it before anything starts, naming the variable to change.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from service.local.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[2]
DEMO_AUTH_ID = "MALOCALDEMOACCOUNT01"
TOKEN_FILE = ROOT / ".local" / "admin-token"  # the admin token, when none is given


def procfile(path: Path) -> list[tuple[str, str]]:
    entries = []
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.startswith("#"):
            entries.append((name.strip(), command.strip()))
    return entries


def _relay_output(name: str, stream: IO[str], width: int) -> None:
    for line in stream:
        sys.stdout.write(f"{name:<{width}} | {line}")
        sys.stdout.flush()


class PortTaken(Exception):
    """A port `make run` needs is in use (the message names its variable)."""


def check_port(env: dict[str, str], variable: str, host: str = "127.0.0.1") -> int:
    """`env[variable]` as a port this machine can listen on (`PortTaken` if another program
    does already: its answers would be taken for ours)."""
    port = int(env[variable])
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise PortTaken(
                f"port {port} ({variable}) is taken by another program: stop it, or run with "
                f"{variable}=<a free port>"
            ) from None
    return port


def local_environment(stack: ExitStack) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The environment for the Procfile's processes, and any local-only processes to add."""
    env = dict(os.environ)
    # The Procfile says `python`: make that this environment's interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("PORT", "8000")
    env.setdefault("HOST", "127.0.0.1")
    check_port(env, "PORT", env["HOST"] if env["HOST"] not in ("0.0.0.0", "::") else "")
    if not env.get("REDIS_URL"):
        redis = stack.enter_context(EmbeddedRedis(ROOT / ".local" / "redis"))
        env["REDIS_URL"] = redis.url
        print(f"local    | private Redis on {redis.url} (data in .local/redis)")
    extra: list[tuple[str, str]] = []
    if not env.get("PLIVO_AUTH_ID"):
        env.setdefault("SANDBOX_PORT", "8765")
        sandbox_port = str(check_port(env, "SANDBOX_PORT"))
        env["PLIVO_AUTH_ID"] = DEMO_AUTH_ID
        env["PLIVO_AUTH_TOKEN"] = secrets.token_urlsafe(24)
        env["PLIVO_API_URL"] = f"http://127.0.0.1:{sandbox_port}"
        env["SANDBOX_PORT"] = sandbox_port
        env["SANDBOX_ACCOUNTS"] = f"{DEMO_AUTH_ID}:{env['PLIVO_AUTH_TOKEN']}"
        extra.append(("sandbox", f"exec {sys.executable} -m sandbox"))
        print(
            f"local    | no PLIVO_AUTH_ID: Plivo sandbox on {env['PLIVO_API_URL']} (SANDBOX_PORT)"
        )
    if not env.get("ADMIN_TOKENS") and not env.get("ADMIN_TOKEN"):
        TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
        if not TOKEN_FILE.exists():
            TOKEN_FILE.write_text(secrets.token_urlsafe(24))
            TOKEN_FILE.chmod(0o600)
        env["ADMIN_TOKEN"] = TOKEN_FILE.read_text().strip()
        print("local    | no ADMIN_TOKENS: using the one in .local/admin-token")
    if not env.get("ARCHIVE_URL"):
        env["ARCHIVE_URL"] = f"file://{ROOT / '.local' / 'archive'}"
        print("local    | no ARCHIVE_URL: the archive is in .local/archive")
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{env['PORT']}")
    print(f"local    | the relay on http://{env['HOST']}:{env['PORT']} (HOST, PORT)")
    if "SANDBOX_PORT" in env:
        env.setdefault("RECEIVER_PORT", "9000")
        receiver_port = check_port(env, "RECEIVER_PORT")
        env["RELAY_URL"] = f"http://127.0.0.1:{env['PORT']}"
        # The receiver reads the subscriptions' secrets with one admin token.
        env.setdefault("ADMIN_TOKEN", env.get("ADMIN_TOKENS", "").split(",")[0].strip())
        extra.append(("receiver", f"exec {sys.executable} -m sandbox.receiver"))
        print(
            f"local    | a subscriber printing the webhooks it verifies on "
            f"http://127.0.0.1:{receiver_port}/hook (RECEIVER_PORT)"
        )
    if "DELIVERY_ALLOW_NETWORKS" not in env:  # on a laptop, subscribers are local too
        env["DELIVERY_ALLOW_NETWORKS"] = "127.0.0.0/8,::1/128"
        print(
            "local    | webhooks may go to loopback (DELIVERY_ALLOW_NETWORKS=127.0.0.0/8,::1/128)"
        )
    return env, extra


def how_to_try(env: dict[str, str]) -> str:
    relay = env["PUBLIC_BASE_URL"]
    token = (
        "$(cat .local/admin-token)"
        if TOKEN_FILE.exists() and env.get("ADMIN_TOKEN") == TOKEN_FILE.read_text().strip()
        else "$ADMIN_TOKEN"  # one of the caller's own: not printed
    )
    lines = [
        f"callbacks: {relay}/plivo/recording",
        f"dashboard: {relay}/dashboard/ (log in with ADMIN_TOKENS, or, unset, .local/admin-token)",
    ]
    if "RECEIVER_PORT" in env:
        lines += [
            "subscribe the built-in receiver to every recording event (it prints what it gets):",
            f"  curl -s -X POST {relay}/v1/subscriptions "
            f'-H "Authorization: Bearer {token}" '
            "-H 'content-type: application/json' "
            f'-d \'{{"url": "http://127.0.0.1:{env["RECEIVER_PORT"]}/hook"}}\'',
            "simulate a recorded call:",
            f"  curl -s -X POST {env['PLIVO_API_URL']}/sandbox/calls "
            "-H 'content-type: application/json' "
            f'-d \'{{"relay_url": "{relay}/plivo/recording"}}\'',
            "then watch it (use the recording_id it printed):",
            f'  curl -s -H "Authorization: Bearer {token}" {relay}/v1/recordings/RECORDING_ID',
        ]
    return "".join(f"local    | {line}\n" for line in lines)


def main() -> int:
    with ExitStack() as stack:
        try:
            env, extra = local_environment(stack)
        except PortTaken as error:
            print(f"local    | {error}", file=sys.stderr)
            return 2
        entries = [*procfile(ROOT / "Procfile"), *extra]
        width = max(len(name) for name, _ in [*entries, ("local", "")])
        children: list[subprocess.Popen[str]] = []
        readers: list[threading.Thread] = []
        for name, command in entries:
            child = subprocess.Popen(
                ["/bin/sh", "-c", command],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # so that a stop reaches the whole process group
            )
            assert child.stdout is not None
            reader = threading.Thread(
                target=_relay_output, args=(name, child.stdout, width), daemon=True
            )
            reader.start()
            readers.append(reader)
            children.append(child)
        print(how_to_try(env), end="", flush=True)

        stopping = threading.Event()

        def stop(signum: int, frame: object) -> None:
            stopping.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping.is_set() and all(child.poll() is None for child in children):
            stopping.wait(0.2)
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        status = 0
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            status = status or (child.returncode or 0)
        for reader in readers:
            reader.join(timeout=5)
        return status if not stopping.is_set() else 0
