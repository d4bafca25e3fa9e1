"""`make run`: the whole service on a laptop, the way the PaaS runs it.

Starts a private Redis (kept in `.local/redis`) when `REDIS_URL` is unset, fills in local demo
credentials when Plivo's are unset, then runs every process of the `Procfile` with that
environment, prefixing their output with the process name. Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from service.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
DEMO_AUTH_ID = "MALOCALDEMOACCOUNT01"


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


def local_environment(stack: ExitStack) -> dict[str, str]:
    env = dict(os.environ)
    # The Procfile says `python`: make that this environment's interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("PORT", "8000")
    if not env.get("REDIS_URL"):
        redis = stack.enter_context(EmbeddedRedis(ROOT / ".local" / "redis"))
        env["REDIS_URL"] = redis.url
        print(f"local    | private Redis on {redis.url} (data in .local/redis)")
    if not env.get("PLIVO_AUTH_ID"):
        env["PLIVO_AUTH_ID"] = DEMO_AUTH_ID
        env["PLIVO_AUTH_TOKEN"] = secrets.token_urlsafe(24)
        print(f"local    | no PLIVO_AUTH_ID: using the local demo account {DEMO_AUTH_ID}")
    if not env.get("ADMIN_TOKEN"):
        env["ADMIN_TOKEN"] = secrets.token_urlsafe(24)
        print("local    | no ADMIN_TOKEN: generated one for this run (set ADMIN_TOKEN to choose)")
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{env['PORT']}")
    return env


def main() -> int:
    with ExitStack() as stack:
        env = local_environment(stack)
        entries = procfile(ROOT / "Procfile")
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
        print(f"local    | callbacks: http://127.0.0.1:{env['PORT']}/plivo/recording")

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


if __name__ == "__main__":
    raise SystemExit(main())
