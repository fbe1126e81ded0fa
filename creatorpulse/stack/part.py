"""The contract every part of the local stack (PostgreSQL, Redis, Kafka, Flink) implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from creatorpulse.settings import Settings
from creatorpulse.stack.process import ManagedProcess

Say = Callable[[str], None]


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str


class Part(ABC):
    """One service of the stack: either started here (``managed``) or reached at a given address.

    ``up`` waits until the service really answers, and is a no-op when it already does; ``down``
    stops only processes this part started.
    """

    name: str

    def __init__(self, settings: Settings, say: Say) -> None:
        self.settings = settings
        self.say = say

    @property
    @abstractmethod
    def managed(self) -> bool:
        """True when ``stack up`` runs this service itself."""

    @property
    @abstractmethod
    def address(self) -> str:
        """Where clients reach it (no secrets)."""

    @abstractmethod
    def processes(self) -> list[ManagedProcess]:
        """The processes this part starts, in start order (empty when external)."""

    def install(self) -> list[Path]:
        """Fetch what this part needs to run (jars); the files installed. Idempotent."""
        return []

    @abstractmethod
    def up(self) -> None: ...

    @abstractmethod
    def health(self) -> Health: ...

    def down(self) -> bool:
        """Stop what ``up`` started, last started first. True when something was stopped."""
        stopped = False
        for proc in reversed(self.processes()):
            if proc.running():
                self.say(f"stopping {proc.name}")
                stopped = proc.stop() or stopped
        return stopped
