"""The simulators' clock: tests drive it by hand; the demo follows real time, maybe sped up."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Simulated unix seconds."""
        ...


class ManualClock:
    """Stands still until told: ``advance(seconds)`` or ``set(t)``."""

    def __init__(self, start: float) -> None:
        self._t = start
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._t += seconds
            return self._t

    def set(self, t: float) -> None:
        with self._lock:
            self._t = t


class RealClock:
    """Real time from ``start`` on, ``speed`` times faster (1: real time)."""

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        self._real0 = time.time()
        self._sim0 = self._real0 if start is None else start
        self.speed = speed
        self._offset = 0.0

    def now(self) -> float:
        return self._sim0 + self._offset + (time.time() - self._real0) * self.speed

    def advance(self, seconds: float) -> float:
        """Jump ahead (the admin surface); real time keeps running from there."""
        self._offset += seconds
        return self.now()
