"""``creatorpulse simulate --detach`` / ``--stop`` as a real background process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

PLATFORMS = ("instagram", "facebook", "youtube", "tiktok", "x")


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def creatorpulse(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "creatorpulse.cli", "simulate", *args],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CREATORPULSE_")}
    base["CREATORPULSE_STATE_DIR"] = str(tmp_path)
    for platform, port in zip(PLATFORMS, free_ports(5), strict=True):
        base[f"CREATORPULSE_{platform.upper()}_API_URL"] = f"http://127.0.0.1:{port}"
    return base


def test_detach_serves_in_the_background_until_stop(env: dict[str, str]) -> None:
    started = creatorpulse(env, "--detach", "--accounts", "20", "--webhook-every", "0")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        assert "running" in started.stdout
        again = creatorpulse(env, "--detach", "--accounts", "20")
        assert again.returncode == 0 and "already running" in again.stdout
        for platform in PLATFORMS:
            url = env[f"CREATORPULSE_{platform.upper()}_API_URL"]
            with urllib.request.urlopen(f"{url}/_sim/accounts?limit=1", timeout=5) as r:
                assert r.status == 200
    finally:
        stopped = creatorpulse(env, "--stop")
    assert stopped.returncode == 0 and "simulators stopped" in stopped.stdout
    url = env["CREATORPULSE_X_API_URL"]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/_sim/clock", timeout=2)
