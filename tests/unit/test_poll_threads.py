from __future__ import annotations

import threading

from creatorpulse.sources.threads import PollThreads
from tests.waiting import wait_for


def test_calls_run_on_the_threads_and_a_failing_call_does_not_end_its_thread() -> None:
    done: list[int] = []
    pool = PollThreads(1, "poll-test")

    def fail() -> None:
        raise RuntimeError("boom")

    pool.submit(fail)
    for n in range(3):
        pool.submit(done.append, n)
    wait_for(lambda: len(done) == 3, 5, "three calls")
    assert done == [0, 1, 2]  # in order, on the one thread that also ran the failing call
    assert pool.shutdown() == 0


def test_shutdown_lets_running_calls_end_and_drops_the_waiting_ones() -> None:
    release = threading.Event()
    ran: list[str] = []
    started = threading.Semaphore(0)

    def slow() -> None:
        started.release()
        release.wait(10)
        ran.append("slow")

    pool = PollThreads(2, "poll-test")
    pool.submit(slow)
    pool.submit(slow)
    pool.submit(ran.append, "waiting")
    assert started.acquire(timeout=5) and started.acquire(timeout=5)  # both threads busy
    dropped: list[int] = []
    stopper = threading.Thread(target=lambda: dropped.append(pool.shutdown()))
    stopper.start()
    # The waiting call is gone once the queue holds just the two stop marks.
    wait_for(lambda: pool._calls.qsize() == 2, 5, "the waiting call dropped")
    release.set()
    stopper.join(10)
    assert ran == ["slow", "slow"] and dropped == [1]
