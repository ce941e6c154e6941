"""Real servers for integration tests: a throwaway PostgreSQL cluster and `mlflow server` processes on loopback."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; drop to the `postgres` account when we are root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A PostgreSQL server for the tests: MLOPS_TEST_POSTGRES_URL if set, else a fresh cluster in a temp dir.

    Without PostgreSQL installed the tests skip, except in CI (CI=true), where `.ci/run` installs it and a
    skip would hide a broken setup.
    """
    existing = os.environ.get("MLOPS_TEST_POSTGRES_URL")
    if existing:
        parsed = httpx.URL(existing.replace("postgresql://", "http://", 1))
        yield Postgres(parsed.host, parsed.port or 5432, parsed.username, parsed.password)
        return
    bindir = _postgres_bin()
    if bindir is None:
        message = "PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run does this)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    data, sock = root / "data", root / "sock"
    data.mkdir()
    sock.mkdir()
    pwfile = root / "pw"
    password = secrets.token_hex(12)  # generated per run, never stored beyond the temp dir
    pwfile.write_text(password)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        for path in (data, sock, pwfile):
            shutil.chown(path, "postgres")
    subprocess.run(_as_postgres_user([str(bindir / "initdb"), "-D", str(data), "-U", "mlops", "-A", "scram-sha-256",
                                      f"--pwfile={pwfile}", "--no-sync"]), check=True, capture_output=True)
    port = free_port()
    log = root / "server.log"
    if os.geteuid() == 0:
        log.touch()
        shutil.chown(log, "postgres")
    subprocess.run(_as_postgres_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                                      "-o", f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off", "start"]),
                   check=True, capture_output=True)
    try:
        yield Postgres("127.0.0.1", port, "mlops", password)
    finally:
        subprocess.run(_as_postgres_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


class ServerProcess:
    """A server as a subprocess in its own session on loopback, ready once ``probe`` answers 200.

    ``crash()`` kills it like a power cut; ``start()`` again brings up a fresh process on the same port.
    """

    def __init__(self, cmd: list[str], env: dict[str, str], port: int, probe: str, poll: float = 0.5) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = env
        self._cmd, self._probe, self._poll = cmd, probe, poll
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120):
        self._proc = subprocess.Popen(self._cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}{self._probe}", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.crash()
                pytest.fail(f"{' '.join(self._cmd[:3])} did not start on {self.url}")
            time.sleep(self._poll)

    def crash(self) -> None:
        if self._proc and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=30)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), a kill if it does not come."""
        if self._proc is None or self._proc.poll() is not None:
            return
        os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.crash()


class MlflowServer(ServerProcess):
    """`mlflow server` on loopback; crash() and start() again simulate an outage."""

    def __init__(self, backend_store_uri: str, artifacts: Path, *, app_name: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        port = free_port()
        cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", backend_store_uri, "--serve-artifacts", "--artifacts-destination",
               str(artifacts), "--workers", "1"]
        if app_name:
            cmd[2:2] = ["--app-name", app_name]
        full_env = {**os.environ, **(env or {})}
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_USERNAME",
                    "MLFLOW_TRACKING_PASSWORD"):
            full_env.pop(var, None)
        super().__init__(cmd, full_env, port, "/health")
