"""The local stack without Docker: PostgreSQL, Redis, Kafka (KRaft) and a Flink session cluster.

``creatorpulse stack up | down | status | logs`` drive :class:`Stack`. Each part either uses the
address given in the settings or starts its own process under the state folder; see the part
modules for how each one starts and how readiness is checked. With ``apps``, CreatorPulse's own
programs (simulators, webhook receiver, sources, API; see ``services.py``) run after them.
"""

from __future__ import annotations

import time
from pathlib import Path

from creatorpulse.settings import Settings
from creatorpulse.stack.flink import Flink
from creatorpulse.stack.kafka import Kafka
from creatorpulse.stack.part import Health, Part, Say
from creatorpulse.stack.postgres import Postgres
from creatorpulse.stack.process import ManagedProcess, StackError
from creatorpulse.stack.redis import Redis
from creatorpulse.stack.services import Service, services

__all__ = ["Health", "Part", "Stack", "StackError"]


class Stack:
    """The infrastructure parts in start order, then the apps (started only when asked)."""

    def __init__(self, settings: Settings, say: Say) -> None:
        self.settings = settings
        self.say = say
        self.infrastructure: list[Part] = [
            Postgres(settings, say),
            Redis(settings, say),
            Kafka(settings, say),
            Flink(settings, say),
        ]
        self.apps: list[Service] = services(settings, say)

    @property
    def parts(self) -> list[Part]:
        """The infrastructure, and the apps that are running (so status and down see them)."""
        return [*self.infrastructure, *(a for a in self.apps if a.processes()[0].running())]

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        msg = f"no part named {name!r}; parts: {', '.join(p.name for p in self.parts)}"
        raise StackError("stack", msg)

    def up(self, only: list[str] | None = None, apps: bool = False) -> dict[str, float]:
        """Start the parts (or ``only`` those), each ready before the next; seconds per part.

        With ``apps``, the apps follow the infrastructure (``only`` may name them too).
        """
        timings: dict[str, float] = {}
        for part in [*self.infrastructure, *(self.apps if apps else [])]:
            if only and part.name not in only:
                continue
            started = time.monotonic()
            part.up()
            timings[part.name] = time.monotonic() - started
        return timings

    def install(self) -> list[Path]:
        """Fetch every part's jars ahead of ``up`` (for installs on a fresh machine)."""
        return [path for part in self.infrastructure for path in part.install()]

    def down(self, only: list[str] | None = None) -> list[str]:
        """Stop what ``up`` started (or ``only`` those parts), in reverse order; names stopped."""
        return [part.name for part in reversed(self.parts)
                if (not only or part.name in only) and part.down()]

    def status(self) -> list[tuple[Part, Health]]:
        return [(part, part.health()) for part in self.parts]

    def processes(self) -> list[ManagedProcess]:
        """Every process the stack may start, apps included (for logs)."""
        return [proc for part in [*self.infrastructure, *self.apps] for proc in part.processes()]
