"""Managed processes: started detached, recognised by marker, stopped only when ours."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from creatorpulse.stack.process import ManagedProcess, StackError, tail_file, wait_until

# A stand-in for a server: greets, then waits for a signal.
SLEEPER = [sys.executable, "-c", "import signal; print('hello', flush=True); signal.pause()"]


def test_spawn_stop_and_log(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", tmp_path, marker="signal.pause()")
    pid = proc.spawn(SLEEPER)
    assert proc.pid() == pid and proc.running()
    wait_until(lambda: True if "hello" in proc.tail() else None, part="t", what="it greets",
               timeout=10)
    assert proc.stop(timeout=10)
    assert not proc.running() and not proc.pid_file.exists()
    assert "starting sleeper" in tail_file(proc.log_file)


def test_a_pid_file_pointing_at_someone_elses_process_is_never_signalled(tmp_path: Path) -> None:
    proc = ManagedProcess("impostor", tmp_path, marker="a marker this test process lacks")
    proc.pid_file.parent.mkdir(parents=True)
    proc.pid_file.write_text(f"{os.getpid()}\n")
    assert proc.pid() is None
    assert proc.stop() is False  # and this test process is still alive to assert it


def test_a_stale_pid_file_is_cleaned_up(tmp_path: Path) -> None:
    proc = ManagedProcess("gone", tmp_path, marker="x")
    proc.pid_file.parent.mkdir(parents=True)
    proc.pid_file.write_text("999999999\n")
    assert proc.pid() is None and not proc.pid_file.exists()


def test_wait_until_fails_early_with_the_log_when_the_process_dies(tmp_path: Path) -> None:
    proc = ManagedProcess("crasher", tmp_path, marker="raise SystemExit")
    proc.spawn([sys.executable, "-c", "print('boom: bad config'); raise SystemExit(3)"])
    with pytest.raises(StackError, match="exited while waiting") as err:
        wait_until(lambda: None, part="crasher", what="never", timeout=60, process=proc)
    assert "boom: bad config" in err.value.log_tail


def test_wait_until_times_out_with_the_last_error() -> None:
    def refuse() -> None:
        raise ConnectionRefusedError("refused")

    with pytest.raises(StackError, match=r"not ready after 0s.*refused"):
        wait_until(refuse, part="p", what="it answers", timeout=0.3, interval=0.05)


def test_wait_until_keeps_waiting_for_a_live_process_whose_title_lacks_the_marker(
        tmp_path: Path) -> None:
    # Redis rewrites its process title right after it starts; for that moment its command line
    # does not show the marker. Alive is alive: the wait goes on until the check passes.
    proc = ManagedProcess("retitled", tmp_path, marker="a title the process does not show")
    proc.spawn(SLEEPER)
    try:
        assert proc.alive() and not proc.running()
        greeted = wait_until(lambda: True if "hello" in proc.tail() else None, part="retitled",
                             what="it greets", timeout=10, process=proc)
        assert greeted is True
    finally:
        pid = int(proc.pid_file.read_text())
        os.kill(pid, 9)
        wait_until(lambda: True if not proc.alive() else None, part="retitled",
                   what="it is gone", timeout=10)
