"""The poll threads of one platform in a worker: a fixed set of threads taking calls from a queue.

``concurrent.futures.ThreadPoolExecutor`` makes a Future (with its Condition), takes a semaphore
and checks its thread count on every submit: a worker submits hundreds of polls a second, and
that bookkeeping cost more than some of the polls' own work. The worker needs none of it: a poll
reports through the worker's state, not a result.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_STOP = None


class PollThreads:
    """``size`` threads running submitted calls, in submission order as threads come free."""

    def __init__(self, size: int, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue())
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{n}", daemon=True)
                         for n in range(size)]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[..., Any], *args: Any) -> None:
        self._calls.put((call, args))

    def shutdown(self, *, cancel_waiting: bool = True) -> int:
        """Stop the threads after the calls they are running (and, unless ``cancel_waiting``,
        after every call still waiting); returns how many waiting calls were dropped."""
        dropped = 0
        if cancel_waiting:
            while True:
                try:
                    item = self._calls.get_nowait()
                except queue.Empty:
                    break
                dropped += item is not _STOP
        for _ in self._threads:
            self._calls.put(_STOP)
        for thread in self._threads:
            thread.join()
        return dropped

    def _run(self) -> None:
        while True:
            item = self._calls.get()
            if item is _STOP:
                return
            call, args = item
            try:
                call(*args)
            except Exception:  # the call's own failure must not end the thread
                log.exception("a call on %s failed", threading.current_thread().name)
