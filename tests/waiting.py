"""Waiting for a condition with a timeout: the helpers tests use instead of fixed sleeps."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_for(condition: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.1) -> Any:
    """``condition()``'s first truthy value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)  # ok: the polling interval of a wait with a timeout
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


async def until(condition: Callable[[], Any], timeout: float, what: str,
                interval: float = 0.02) -> Any:
    """:func:`wait_for` inside an event loop: the loop keeps running between the checks, and
    ``condition`` may be a coroutine function (a check that itself awaits)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)  # ok: the polling interval of a wait with a timeout
    pytest.fail(f"timed out after {timeout}s waiting for {what}")
