"""Counters of the receiver, served at ``/metrics`` in the Prometheus text format.

- ``creatorpulse_webhook_deliveries_total{platform, outcome}``: ``accepted``, ``duplicate``,
  ``dead_letter`` (signed but unreadable, sent to the dead-letter topic).
- ``creatorpulse_webhook_failures_total{platform, reason}``: ``missing_signature``,
  ``malformed_signature``, ``bad_signature``, ``stale_timestamp``, ``too_large``,
  ``publish_failed``, ``store_failed``, ``bad_verify_token``, ``unknown_subscription``, ...
- ``creatorpulse_webhook_handshakes_total{platform}``: handshakes answered.
"""

from __future__ import annotations

import threading
from collections import defaultdict

DELIVERIES = "creatorpulse_webhook_deliveries_total"
FAILURES = "creatorpulse_webhook_failures_total"
HANDSHAKES = "creatorpulse_webhook_handshakes_total"

HELP = {
    DELIVERIES: "Webhook deliveries with a valid signature, by platform and outcome.",
    FAILURES: "Webhook requests refused or not processed, by platform and reason.",
    HANDSHAKES: "Webhook verification handshakes answered, by platform.",
}


class Counters:
    """Thread-safe monotonic counters with labels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[tuple[tuple[str, str], ...], int]] = defaultdict(dict)

    def inc(self, name: str, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[name][key] = self._values[name].get(key, 0) + 1

    def get(self, name: str, **labels: str) -> int:
        with self._lock:
            return self._values[name].get(tuple(sorted(labels.items())), 0)

    def render(self) -> str:
        lines = []
        with self._lock:
            for name, doc in HELP.items():
                lines += [f"# HELP {name} {doc}", f"# TYPE {name} counter"]
                for key, value in sorted(self._values[name].items()):
                    labels = ",".join(f'{k}="{_escape(v)}"' for k, v in key)
                    lines.append(f"{name}{{{labels}}} {value}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
