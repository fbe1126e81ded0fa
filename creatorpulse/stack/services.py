"""CreatorPulse's own long-running programs, run in the background for the demo.

The platform simulators, the webhook receiver, the sources, the backfill runner and the GraphQL
API are ordinary
``creatorpulse`` commands; a :class:`Service` runs one of them detached, with a pid file and a log
under the state folder like the infrastructure parts, and waits until it answers (an HTTP
``GET`` of its health URL) or, for a program that serves nothing, until it has stayed up for a
moment. ``creatorpulse stack up --apps`` starts them after the infrastructure; ``stack down``
stops them first.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from creatorpulse.settings import Settings
from creatorpulse.stack.part import Health, Part, Say
from creatorpulse.stack.process import ManagedProcess, require_free_port, wait_until


@dataclass(frozen=True)
class ServiceSpec:
    """What to run: ``creatorpulse <args>``, and the URL that answers 200 once it is ready."""

    name: str
    args: tuple[str, ...]
    health_url: str | None  # None: ready once the process has stayed up
    port_setting: str | None = None  # the setting that moves its port, named when taken
    settle: float = 3.0  # without a health URL: how long it must stay up to count as running


def app_services(settings: Settings) -> list[ServiceSpec]:
    """The demo's programs in start order: simulators first, the API last."""
    sim_health = f"{settings.platform_api_url('instagram')}/_sim/health"
    return [
        ServiceSpec("simulators", ("simulate",), sim_health, "CREATORPULSE_INSTAGRAM_API_URL"),
        ServiceSpec("webhooks", ("webhooks", "serve"), f"{settings.webhooks_url}/healthz",
                    "CREATORPULSE_WEBHOOKS_URL"),
        ServiceSpec("sources", ("sources", "run"), None),
        ServiceSpec("backfills", ("jobs", "backfill", "--watch"), None),
        ServiceSpec("api", ("api", "serve"), f"{settings.api_url}/healthz",
                    "CREATORPULSE_API_URL"),
    ]


class Service(Part):
    """One ``creatorpulse`` program run in the background."""

    def __init__(self, settings: Settings, say: Say, spec: ServiceSpec) -> None:
        super().__init__(settings, say)
        self.spec = spec
        self.name = spec.name

    @property
    def managed(self) -> bool:
        return True

    @property
    def address(self) -> str:
        if self.spec.health_url is None:
            return "(no address)"
        parts = urlsplit(self.spec.health_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "creatorpulse.cli", *self.spec.args]

    def processes(self) -> list[ManagedProcess]:
        # The command line is the marker: `down` signals only a process still running it.
        marker = " ".join(["creatorpulse.cli", *self.spec.args])
        return [ManagedProcess(f"app-{self.name}", self.settings.state_dir, marker=marker)]

    def up(self) -> None:
        (proc,) = self.processes()
        if proc.running():
            self.say(f"{self.name}: already running")
            return
        if self.spec.health_url is not None and self.spec.port_setting is not None:
            url = urlsplit(self.spec.health_url)
            require_free_port(self.name, url.port or 80, self.spec.port_setting,
                              host=url.hostname or "127.0.0.1")
        self.say(f"{self.name}: starting `creatorpulse {' '.join(self.spec.args)}`")
        proc.spawn(self.argv)
        timeout = self.settings.start_timeout.total_seconds()
        if self.spec.health_url is None:
            # Nothing to ask: a program that survives its start-up (settings, connections) runs.
            started = time.monotonic()
            settle = self.spec.settle
            wait_until(lambda: True if time.monotonic() - started >= settle else None,
                       part=self.name, what=f"it has stayed up for {settle:.0f} s",
                       timeout=timeout, process=proc)
        else:
            wait_until(lambda: _answers(self.spec.health_url), part=self.name,
                       what=f"{self.spec.health_url} answers", timeout=timeout, process=proc)
        self.say(f"{self.name}: ready ({self.address})")

    def health(self) -> Health:
        (proc,) = self.processes()
        if not proc.running():
            return Health(False, "not running")
        if self.spec.health_url is not None and not _answers(self.spec.health_url):
            return Health(False, f"{self.spec.health_url} does not answer")
        return Health(True, f"pid {proc.pid()}")


def _answers(url: str | None) -> bool | None:
    if url is None:
        return True
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own URL
            return True if response.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def services(settings: Settings, say: Say, names: Sequence[str] | None = None) -> list[Service]:
    specs = app_services(settings)
    return [Service(settings, say, s) for s in specs if names is None or s.name in names]
