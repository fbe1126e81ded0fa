"""Redis: the configured server, or a private ``redis-server`` under ``<state>/redis``.

The private Redis is a cache and a rate-limit store: it binds to 127.0.0.1 and keeps no
snapshots, so a restart starts it empty.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from creatorpulse.settings import mask_url
from creatorpulse.stack.part import Health, Part
from creatorpulse.stack.process import ManagedProcess, StackError, require_free_port, wait_until


class Redis(Part):
    name = "redis"

    @property
    def managed(self) -> bool:
        return self.settings.manages_redis

    @property
    def address(self) -> str:
        return mask_url(self.settings.redis_dsn.reveal())

    def processes(self) -> list[ManagedProcess]:
        if not self.managed:
            return []
        return [ManagedProcess("redis", self.settings.state_dir, marker=str(self._config))]

    @property
    def _config(self) -> Path:
        return self.settings.state_dir / "redis" / "redis.conf"

    def up(self) -> None:
        if not self.managed:
            self.say(f"redis: using {self.address}")
            self._wait_ready(None)
            return
        (proc,) = self.processes()
        if proc.running():
            self.say(f"redis: already running on {self.address}")
            return
        server = shutil.which("redis-server")
        if server is None:
            msg = (
                "redis-server is not installed: `apt-get install redis-server`, "
                "or set CREATORPULSE_REDIS_URL"
            )
            raise StackError(self.name, msg)
        port = self.settings.redis_port
        require_free_port(self.name, port, "CREATORPULSE_REDIS_PORT")
        self._config.parent.mkdir(parents=True, exist_ok=True)
        # The config path stays in the process title, which is how `down` recognises it.
        self._config.write_text(
            f"bind 127.0.0.1\nport {port}\ndir {self._config.parent}\nsave \"\"\n"
            "appendonly no\ndaemonize no\n"
            'proc-title-template "{title} {listen-addr} {config-file}"\n'
        )
        self.say(f"redis: starting on 127.0.0.1:{port}")
        proc.spawn([server, str(self._config)])
        self._wait_ready(proc)
        self.say(f"redis: ready on {self.address}")

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.settings.redis_dsn.reveal(), socket_connect_timeout=2, socket_timeout=2
        )

    def _wait_ready(self, proc: ManagedProcess | None) -> None:
        def ready() -> bool | None:
            try:
                with self._client() as client:
                    return bool(client.ping()) or None
            except redis.ConnectionError:
                return None

        wait_until(
            ready,
            part=self.name,
            what=f"{self.address} answers PING",
            timeout=self.settings.start_timeout.total_seconds(),
            process=proc,
        )

    def health(self) -> Health:
        try:
            with self._client() as client:
                info = client.info("server")
        except redis.RedisError:
            return Health(False, "not reachable")
        return Health(True, f"Redis {info.get('redis_version', '?')}")
