"""Run the platform simulators: one uvicorn server per platform, all in one process.

:func:`build` makes the apps around one world and clock; :class:`Simulators` serves them on a
background thread (port 0 picks a free port) and stops them::

    sims = Simulators.start(build(SimConfig(accounts=50), ManualClock(1.79e9)), ports=0)
    sims.urls["x"]  # 'http://127.0.0.1:40123'
    sims.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import uvicorn

from creatorpulse.sources.simulator.clock import Clock
from creatorpulse.sources.simulator.common import PlatformApp, Sim
from creatorpulse.sources.simulator.config import SimConfig
from creatorpulse.sources.simulator.facebook import FacebookApp
from creatorpulse.sources.simulator.instagram import InstagramApp
from creatorpulse.sources.simulator.tiktok import TikTokApp
from creatorpulse.sources.simulator.webhooks import WebhookSender
from creatorpulse.sources.simulator.world import PLATFORMS
from creatorpulse.sources.simulator.x import XApp
from creatorpulse.sources.simulator.youtube import YouTubeApp

log = logging.getLogger(__name__)

APPS: dict[str, type[PlatformApp]] = {
    "instagram": InstagramApp, "facebook": FacebookApp, "youtube": YouTubeApp,
    "tiktok": TikTokApp, "x": XApp,
}


class SimulatorError(Exception):
    """A simulator could not start (port taken, bad address)."""


@dataclass
class Simulation:
    """The platform apps around one shared world, clock and webhook sender."""

    sim: Sim
    apps: dict[str, PlatformApp]


def build(config: SimConfig, clock: Clock, platforms: tuple[str, ...] = PLATFORMS,
          origin: float | None = None, sender: WebhookSender | None = None) -> Simulation:
    """The apps of ``platforms`` around one world (seeded by ``config``) and ``clock``."""
    sim = Sim(config, clock, sender=sender, origin=origin)
    return Simulation(sim, {p: APPS[p](sim) for p in platforms})


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when installed (about twice the throughput), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Simulators:
    """Running servers; ``urls`` maps each platform to the URL it listens on."""

    def __init__(self, built: Simulation, servers: dict[str, uvicorn.Server],
                 thread: threading.Thread, loop: asyncio.AbstractEventLoop) -> None:
        self.built = built
        self.apps = built.apps
        self.sim = built.sim
        self._servers = servers
        self._thread = thread
        self._loop = loop
        self.urls: dict[str, str] = {}
        for platform, server in servers.items():
            host, port = server.servers[0].sockets[0].getsockname()[:2]
            self.urls[platform] = f"http://{host}:{port}"

    @classmethod
    def start(cls, built: Simulation, ports: int | Mapping[str, str] = 0, host: str = "127.0.0.1",
              timeout: float = 15.0) -> Simulators:
        """Serve every app; ``ports`` is 0 (free ports on ``host``) or platform -> base URL."""
        servers = {}
        for platform, app in built.apps.items():
            if isinstance(ports, Mapping):
                parts = urlsplit(ports[platform])
                bind, port = parts.hostname or host, parts.port or 80
            else:
                bind, port = host, ports
            config = uvicorn.Config(app.starlette(), host=bind, port=port, log_level="warning",
                                    access_log=False, lifespan="off", timeout_keep_alive=30)
            servers[platform] = uvicorn.Server(config)
        loop = _new_loop()
        failed: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(asyncio.gather(*(s.serve() for s in servers.values())))
            except (SystemExit, OSError) as exc:  # uvicorn exits when it cannot bind
                failed.append(exc)
            finally:
                loop.close()

        thread = threading.Thread(target=run, name="platform-simulators", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while not all(s.started for s in servers.values()):
            if failed or not thread.is_alive() or time.monotonic() > deadline:
                for s in servers.values():
                    s.should_exit = True
                thread.join(5)
                where = ", ".join(f"{p} {s.config.host}:{s.config.port}"
                                  for p, s in servers.items())
                msg = f"the simulators could not start on {where} (is a port taken?)"
                raise SimulatorError(msg)
            time.sleep(0.02)
        return cls(built, servers, thread, loop)

    def stop(self, timeout: float = 10.0) -> None:
        for server in self._servers.values():
            server.should_exit = True
        self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Simulators:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
