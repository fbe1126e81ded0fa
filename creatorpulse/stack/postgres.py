"""PostgreSQL: the configured server, or a private cluster under ``<state>/postgres``.

The private cluster listens on 127.0.0.1 only, trusts local connections for the ``creatorpulse``
role, and, because PostgreSQL refuses to run as root, runs as the ``postgres`` system user when
the stack is started by root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg

from creatorpulse.settings import mask_url
from creatorpulse.stack.part import Health, Part
from creatorpulse.stack.process import ManagedProcess, StackError, require_free_port, wait_until
from creatorpulse.stack.tools import postgres_bin_dir

ROLE = "creatorpulse"
DATABASE = "creatorpulse"


class Postgres(Part):
    name = "postgres"

    @property
    def managed(self) -> bool:
        return self.settings.manages_postgres

    @property
    def address(self) -> str:
        return mask_url(self.settings.database_dsn.reveal())

    @property
    def _root(self) -> Path:
        return self.settings.state_dir / "postgres"

    @property
    def _data(self) -> Path:
        return self._root / "data"

    def processes(self) -> list[ManagedProcess]:
        if not self.managed:
            return []
        return [ManagedProcess("postgres", self.settings.state_dir, marker=str(self._data))]

    def up(self) -> None:
        if not self.managed:
            self.say(f"postgres: using {self.address}")
            self._wait_ready(self.settings.database_dsn.reveal(), None)
            return
        (proc,) = self.processes()
        if proc.running():
            self.say(f"postgres: already running on {self.address}")
            return
        port = self.settings.postgres_port
        require_free_port(self.name, port, "CREATORPULSE_POSTGRES_PORT")
        bin_dir = postgres_bin_dir()
        user = _server_user()
        if not (self._data / "PG_VERSION").exists():
            self.say(f"postgres: creating a private cluster in {self._data}")
            self._initdb(bin_dir, user)
        self.say(f"postgres: starting on 127.0.0.1:{port}")
        proc.spawn(
            [
                str(bin_dir / "postgres"),
                "-D", str(self._data),
                "-p", str(port),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "unix_socket_directories=",
                "-c", "max_connections=200",
                "-c", "shared_buffers=512MB",
            ],
            user=user,
        )
        admin = f"postgresql://{ROLE}@127.0.0.1:{port}/postgres"
        self._wait_ready(admin, proc)
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        self.say(f"postgres: ready on {self.address}")

    def _initdb(self, bin_dir: Path, user: str | None) -> None:
        if self._data.exists():
            shutil.rmtree(self._data)
        self._data.mkdir(parents=True)
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (self._root, self._data):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            probe = subprocess.run(["test", "-w", str(self._data)], user=user, check=False)
            if probe.returncode != 0:
                msg = (
                    f"the '{user}' user that runs the server cannot reach {self._data} (a parent "
                    "folder is closed to other users); set CREATORPULSE_STATE_DIR to a folder "
                    "under a world-searchable one, such as /var/tmp/creatorpulse"
                )
                raise StackError(self.name, msg)
        proc = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(self._data), "-U", ROLE, "--auth=trust",
             "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"],
            capture_output=True,
            text=True,
            user=user,
            check=False,
        )
        if proc.returncode != 0:
            shutil.rmtree(self._data, ignore_errors=True)
            raise StackError(self.name, "initdb failed", (proc.stdout + proc.stderr)[-3000:])

    def _wait_ready(self, dsn: str, proc: ManagedProcess | None) -> None:
        def ready() -> bool | None:
            try:
                with psycopg.connect(dsn, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError as exc:
                if proc is None and "password" in str(exc).lower():
                    msg = "authentication failed for the configured URL"
                    raise StackError(self.name, msg) from None
                return None

        wait_until(
            ready,
            part=self.name,
            what=f"{self.address} accepts connections",
            timeout=self.settings.start_timeout.total_seconds(),
            process=proc,
        )

    def down(self) -> bool:
        (proc,) = self.processes() or (None,)
        if proc is None or not proc.running():
            return False
        self.say("stopping postgres")
        return proc.stop(signal.SIGINT)  # "fast" shutdown: roll back clients, checkpoint, exit

    def health(self) -> Health:
        try:
            with psycopg.connect(self.settings.database_dsn.reveal(), connect_timeout=2) as conn:
                version = conn.execute("SHOW server_version").fetchone()
        except psycopg.OperationalError:
            return Health(False, "not reachable")
        return Health(True, f"PostgreSQL {version[0] if version else '?'}")


def _server_user() -> str | None:
    """``postgres`` when running as root (the server refuses root), else the current user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        msg = (
            "PostgreSQL refuses to run as root and there is no 'postgres' user to run it as: "
            "install the postgresql package, or run the stack as a normal user"
        )
        raise StackError("postgres", msg) from None
    return "postgres"
