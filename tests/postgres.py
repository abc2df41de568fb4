"""A throwaway PostgreSQL server: ``initdb`` into a temporary folder under /tmp, a free loopback
port, run as the ``postgres`` user through ``runuser`` when we are root; never the shared server.

Used by the database-restart test and by ``bench/chaos_at_scale.py``; imports nothing of Django.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class CannotRun(Exception):
    """This machine cannot run a PostgreSQL server of our own (the reason is the message)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    return found[-1]


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL server of our own, in a temporary folder, on a free loopback port."""

    folder: Path
    port: int
    as_user: list[str]

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [*self.as_user, _pg_bin("pg_ctl"), "-D", str(self.data), *args]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=60)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._ctl("-l", str(self.folder / "server.log"), "-w", "-t", "30", "-o", options, "start")

    def crash(self) -> None:
        """Stop it the hard way: no checkpoint, every connection cut."""
        self._ctl("-m", "immediate", "-w", "stop")

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


@contextlib.contextmanager
def throwaway_postgres_server() -> Iterator[ThrowawayPostgres]:
    """Start one (raises ``CannotRun`` where it cannot run); stop it and remove its folder."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise CannotRun("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="bs-rel-pg-", dir="/tmp"))
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            raise CannotRun("running as root and there is no 'postgres' user to run it") from None
        if not shutil.which("runuser"):
            shutil.rmtree(folder)
            raise CannotRun("running as root and there is no runuser to drop privileges")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = ThrowawayPostgres(folder, _free_port(), as_user)
    init = subprocess.run(
        [*as_user, initdb, "-D", str(server.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if init.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise CannotRun(f"initdb does not run here: {init.stderr.strip()[-300:]}")
    try:
        server.start()
        yield server
    finally:
        server._ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)
