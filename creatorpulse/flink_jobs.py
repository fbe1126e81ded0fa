"""Submitting and operating the jobs of ``jobs/`` on the Flink session cluster.

``submit`` wraps the command a data engineer would type (``flink run -d -py jobs/<job>.py
-pyclientexec <python>``, the connector jars already on the cluster's classpath); the rest talks
to Flink's REST API, the same one the web UI uses.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from creatorpulse.settings import Settings
from creatorpulse.stack.flink import Flink
from creatorpulse.stack.process import StackError, wait_until

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"
SUBMITTABLE = ("engagement", "reconcile", "smoke")


class JobError(RuntimeError):
    """A job could not be submitted, found or operated; the message says why."""


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    name: str
    state: str
    start_time_ms: int


class FlinkRest:
    """A small client of the JobManager's REST API."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the URL comes from flink-conf
            f"{self.base_url}{path}", data=data, method=method,
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            msg = f"Flink answered {exc.code} to {method} {path}: {detail}"
            raise JobError(msg) from None
        except (urllib.error.URLError, OSError) as exc:
            msg = f"Flink's REST API at {self.base_url} is not reachable ({exc}); is the stack up?"
            raise JobError(msg) from None
        return json.loads(payload) if payload else {}

    def jobs(self) -> list[JobInfo]:
        overview = self.call("GET", "/jobs/overview")["jobs"]
        return sorted(
            (JobInfo(j["jid"], j["name"], j["state"], j["start-time"]) for j in overview),
            key=lambda j: j.start_time_ms, reverse=True)

    def running(self, name: str) -> JobInfo | None:
        return next((j for j in self.jobs() if j.name == name and j.state == "RUNNING"), None)

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/jobs/{job_id}"))

    def cancel(self, job_id: str, timeout: float = 60) -> None:
        self.call("PATCH", f"/jobs/{job_id}?mode=cancel")
        wait_until(lambda: self.job(job_id)["state"] == "CANCELED" or None,
                   part="flink", what=f"job {job_id} is cancelled", timeout=timeout)

    def savepoint(self, job_id: str, *, stop: bool, timeout: float = 300) -> str:
        """Take a savepoint (and stop the job when ``stop``); its location."""
        path = f"/jobs/{job_id}/stop" if stop else f"/jobs/{job_id}/savepoints"
        body: dict[str, Any] = {"drain": False} if stop else {"cancel-job": False}
        trigger = self.call("POST", path, body)["request-id"]

        def done() -> dict[str, Any] | None:
            status = self.call("GET", f"/jobs/{job_id}/savepoints/{trigger}")
            return status if status["status"]["id"] == "COMPLETED" else None

        result = wait_until(done, part="flink", what=f"the savepoint of {job_id} completes",
                            timeout=timeout)["operation"]
        if "failure-cause" in result:
            msg = f"savepoint of {job_id} failed: {result['failure-cause'].get('class')}"
            raise JobError(msg)
        return str(result["location"])


def submit(
    settings: Settings,
    job: str,
    args: list[str] | None = None,
    *,
    savepoint: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run ``flink run -d -py jobs/<job>.py`` against the session cluster; the new job's id."""
    if job not in SUBMITTABLE:
        msg = f"unknown job {job!r}; jobs: {', '.join(SUBMITTABLE)}"
        raise JobError(msg)
    return submit_script(settings, JOBS_DIR / f"{job}.py", args, savepoint=savepoint, env=env)


def submit_script(
    settings: Settings,
    script: Path,
    args: list[str] | None = None,
    *,
    savepoint: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """``flink run -d -py <script>`` for any PyFlink program of the checkout (the benchmark's
    own jobs, say); the new job's id."""
    job = script.stem
    flink = Flink(settings, lambda _: None)
    command = [str(Path(sys.prefix) / "bin" / "flink"), "run", "-d"]
    if savepoint:
        command += ["-s", savepoint]
    command += ["-py", str(script), "-pyclientexec", sys.executable, *(args or [])]
    try:
        environment = {**flink.environment(), **(env or {})}
    except StackError as exc:
        raise JobError(str(exc)) from None
    result = subprocess.run(command, cwd=JOBS_DIR.parent, env=environment, capture_output=True,
                            text=True, timeout=600, check=False)
    match = re.search(r"JobID ([0-9a-f]{32})", result.stdout)
    if result.returncode != 0 or not match:
        output = (result.stdout + result.stderr).strip().splitlines()
        # The first exception messages say what went wrong; the rest is the launcher's echo.
        exception = re.compile(r"^(: )?[\w.$]+(Exception|Error): ")
        cause = [line.strip(": ") for line in output
                 if exception.match(line) or line.startswith("Cause:") or ": error: " in line]
        detail = " | ".join(cause[:3] or output[-5:])
        msg = f"flink run {job} failed (exit {result.returncode}): {detail}"
        raise JobError(msg)
    return match.group(1)


def follow(rest: FlinkRest, job_id: str, say: Callable[[str], None], timeout: float) -> None:
    """Report a job's progress until it finishes; raise :class:`JobError` if it fails."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        job = rest.job(job_id)
        vertices = job.get("vertices", [])
        done = sum(v["status"] == "FINISHED" for v in vertices)
        read = sum(v.get("metrics", {}).get("read-records", 0) for v in vertices)
        line = f"{job['state'].lower()}: {done}/{len(vertices)} tasks finished, {read} records read"
        if line != last:
            say(line)
            last = line
        if job["state"] == "FINISHED":
            return
        if job["state"] in ("FAILED", "CANCELED"):
            root = rest.call("GET", f"/jobs/{job_id}/exceptions").get("root-exception") or ""
            msg = f"job {job_id} {job['state'].lower()}: {root.splitlines()[0] if root else '?'}"
            raise JobError(msg)
        if time.monotonic() > deadline:
            msg = f"job {job_id} still {job['state'].lower()} after {timeout:.0f}s"
            raise JobError(msg)
        time.sleep(1.0)
