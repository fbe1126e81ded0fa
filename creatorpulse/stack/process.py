"""Processes that ``stack up`` starts and ``stack down`` stops, and waiting for readiness.

Each started process gets a pid file and a log file under the state folder. ``stop`` only ever
signals a process whose pid file this module wrote and whose command line still carries the
marker it was started with, so ``down`` never touches anything that ``up`` did not start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# Children started by this Python process, kept so that they can be reaped (and so that Popen
# does not warn about a child still running when its object is collected).
_children: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RuntimeError):
    """A part of the local stack could not start, stop or be reached; the message says why."""

    def __init__(self, part: str, message: str, log_tail: str = "") -> None:
        self.part = part
        self.log_tail = log_tail
        super().__init__(f"{part}: {message}")


@dataclass(frozen=True)
class ManagedProcess:
    """A long-running process owned by the local stack, identified by ``name``."""

    name: str
    state_dir: Path
    marker: str  # a string that stays in the process's command line, to recognise it later

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of our process if it is alive, else ``None`` (and a stale pid file goes)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid):
            _reap(pid)
            self.pid_file.unlink(missing_ok=True)
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        # A live pid without our marker belongs to someone else now: never ours to signal.
        return pid if self.marker in cmdline else None

    def running(self) -> bool:
        return self.pid() is not None

    def alive(self) -> bool:
        """True while the process of the pid file has not exited, whatever its command line.

        Waiting for a process just spawned asks this, not :meth:`running`: a server that
        rewrites its process title (Redis does, right after it starts) shows a command line
        without the marker for a moment, which is no reason to call it dead.
        """
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return False
        if _alive(pid):
            return True
        _reap(pid)
        return False

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> int:
        """Start ``argv`` detached from this terminal, output appended to :attr:`log_file`."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                user=user,
                start_new_session=True,
            )
        _children[proc.pid] = proc
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60.0) -> bool:
        """Signal our process, wait for it to exit, kill it after ``timeout``. False if not ours."""
        pid = self.pid()
        if pid is None:
            return False
        os.killpg(pid, sig) if _leads_group(pid) else os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            _reap(pid)
            time.sleep(0.1)
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL) if _leads_group(pid) else os.kill(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def tail(self, lines: int = 30) -> str:
        return tail_file(self.log_file, lines)


def tail_file(path: Path, lines: int = 30) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    check: Callable[[], T | None],
    *,
    part: str,
    what: str,
    timeout: float,
    process: ManagedProcess | None = None,
    interval: float = 0.25,
) -> T:
    """Poll ``check`` until it returns a value; fail early if ``process`` dies, late on timeout.

    ``check`` returns ``None`` (or raises ``OSError``/``ConnectionError``) while not ready.
    """
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            result = check()
        except (OSError, ConnectionError) as exc:
            result, last_error = None, f" (last error: {exc})"
        if result is not None:
            return result
        if process is not None and not process.alive():
            msg = f"exited while waiting until {what}; see {process.log_file}"
            raise StackError(part, msg, process.tail())
        if time.monotonic() >= deadline:
            msg = f"not ready after {timeout:.0f}s waiting until {what}{last_error}"
            raise StackError(part, msg, process.tail() if process else "")
        time.sleep(interval)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_free_port(part: str, port: int, setting: str, host: str = "127.0.0.1") -> None:
    """Fail with a clear message when ``port`` is taken by something that is not ours."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            msg = (
                f"port {port} on {host} is already in use by another program; stop it or "
                f"choose another port with {setting}"
            )
            raise StackError(part, msg) from None


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and has not exited (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _reap(pid: int) -> None:
    """Collect the exit status when the process is our child (stack up and down in one run)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
