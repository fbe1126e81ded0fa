"""Flink: a session cluster (one JobManager, one TaskManager) from the PyFlink installation.

``FLINK_CONF_DIR`` is the project's ``flink-conf/``; the connector jars that Maven fetches from
``maven/flink-connectors/pom.xml`` are copied into PyFlink's ``lib/`` so that the cluster and any
``flink run`` client load them without extra flags. Paths that depend on the state folder are
given to the processes as ``-D`` options. The web UI and REST API answer on ``rest.port``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from creatorpulse.stack.part import Health, Part
from creatorpulse.stack.process import ManagedProcess, StackError, require_free_port, wait_until
from creatorpulse.stack.tools import MAVEN_DIR, fetch_jars, java_binary

# Runs the TaskManager and starts a new one whenever it exits, as a container's restart policy
# would: a TaskManager can die of a fatal task error (the JDBC sink throws one when the database
# goes away), and jobs can only recover onto a TaskManager that is there. `stack down` signals
# the whole process group, which ends the loop and the TaskManager together.
_SUPERVISE = """
trap 'kill -TERM "$child" 2>/dev/null; exit 0' TERM INT
while true; do
  "$@" & child=$!
  wait "$child"
  echo "TaskManager exited with status $?; starting a new one in 2 s"
  sleep 2
done
"""


def flink_home() -> Path:
    """The Flink distribution inside the installed ``apache-flink`` wheel."""
    spec = importlib.util.find_spec("pyflink")
    if spec is None or spec.origin is None:
        msg = "PyFlink is not installed in this Python environment: run `make install`"
        raise StackError("flink", msg)
    return Path(spec.origin).parent


def read_flink_config(conf_dir: Path) -> dict[str, Any]:
    """``config.yaml`` of ``conf_dir`` as flat dotted keys (Flink accepts nested or flat)."""
    path = conf_dir / "config.yaml"
    if not path.is_file():
        msg = f"{path} not found; set CREATORPULSE_FLINK_CONF_DIR to the project's flink-conf/"
        raise StackError("flink", msg)
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}{key}.", value)
        else:
            flat[prefix[:-1]] = node

    walk("", yaml.safe_load(path.read_text()) or {})
    return flat


class Flink(Part):
    name = "flink"

    @property
    def managed(self) -> bool:
        return True

    @property
    def rest_port(self) -> int:
        return int(read_flink_config(self.settings.flink_conf_dir).get("rest.port", 8081))

    @property
    def address(self) -> str:
        return f"http://localhost:{self.rest_port}"

    @property
    def _root(self) -> Path:
        return self.settings.state_dir / "flink"

    def processes(self) -> list[ManagedProcess]:
        state = self.settings.state_dir
        return [
            ManagedProcess("flink-jobmanager", state, marker=str(self._root)),
            ManagedProcess("flink-taskmanager", state, marker=str(self._root)),
        ]

    def dynamic_properties(self) -> list[str]:
        """``-D`` options for what lives under the state folder (Flink wants absolute paths)."""
        root = self._root
        props = {
            "execution.checkpointing.dir": (root / "checkpoints").as_uri(),
            "execution.checkpointing.savepoint-dir": (root / "savepoints").as_uri(),
            "io.tmp.dirs": str(root / "tmp"),
            "web.upload.dir": str(root / "uploads"),
            # Python UDF workers run with this project's interpreter and its packages.
            "python.executable": sys.executable,
            "python.client.executable": sys.executable,
        }
        # jobmanager.sh takes "-D key=value" as two words.
        return [word for key, value in props.items() for word in ("-D", f"{key}={value}")]

    def environment(self) -> dict[str, str]:
        """Environment for the cluster processes and for ``flink`` clients of this stack."""
        logs = self.settings.state_dir / "logs" / "flink"
        return {
            **os.environ,
            "FLINK_CONF_DIR": str(self.settings.flink_conf_dir),
            "FLINK_LOG_DIR": str(logs),
            "FLINK_PID_DIR": str(self._root / "run"),
            "FLINK_IDENT_STRING": "creatorpulse",
            "JAVA_HOME": str(Path(java_binary()).resolve().parent.parent),
        }

    def install(self) -> list[Path]:
        """Fetch the connector jars into PyFlink's ``lib/`` and put ``flink`` on the venv's PATH.

        Idempotent: Maven runs only when the pom changed, jars are copied only when different.
        """
        self.say("flink: connector jars (Maven fetches them on the first run)")
        pom = MAVEN_DIR / "flink-connectors" / "pom.xml"
        jars = fetch_jars(pom, self.settings.state_dir / "jars" / "flink", self.name)
        home = flink_home()
        for jar in jars:
            target = home / "lib" / jar.name
            if not target.exists() or target.stat().st_size != jar.stat().st_size:
                shutil.copy2(jar, target)
        # bin/flink resolves its own symlinks to find the Flink home, so a link is enough.
        client = Path(sys.prefix) / "bin" / "flink"
        if not client.exists():
            client.symlink_to(home / "bin" / "flink")
        return [home / "lib" / jar.name for jar in jars]

    def up(self) -> None:
        jm, tm = self.processes()
        if jm.running() and tm.running():
            self.say(f"flink: already running, web UI on {self.address}")
            return
        if jm.running():
            # Only the TaskManager died: start a new one, and the jobs recover onto it.
            self.say("flink: the TaskManager is down; starting a new one")
            self._start_taskmanager(tm)
            return
        if tm.running():
            self.say("flink: the JobManager is down; restarting the cluster")
            self.down()
        config = read_flink_config(self.settings.flink_conf_dir)
        require_free_port(self.name, self.rest_port, "rest.port in flink-conf/config.yaml")
        require_free_port(
            self.name, int(config.get("jobmanager.rpc.port", 6123)), "jobmanager.rpc.port"
        )
        installed = self.install()
        names = ", ".join(p.name for p in installed)
        self.say(f"flink: connectors in {installed[0].parent}: {names}")
        for folder in ("checkpoints", "savepoints", "tmp", "uploads", "run"):
            (self._root / folder).mkdir(parents=True, exist_ok=True)
        (self.settings.state_dir / "logs" / "flink").mkdir(parents=True, exist_ok=True)
        bin_dir = flink_home() / "bin"
        env = self.environment()
        self.say("flink: starting the JobManager")
        jm.spawn(["bash", str(bin_dir / "jobmanager.sh"), "start-foreground",
                  *self.dynamic_properties()], env=env)
        wait_until(
            lambda: self._overview(),
            part=self.name,
            what=f"the REST API answers on {self.address}",
            timeout=self.settings.start_timeout.total_seconds(),
            process=jm,
        )
        self._start_taskmanager(tm)

    def _start_taskmanager(self, tm: ManagedProcess) -> None:
        self.say("flink: starting the TaskManager")
        # A TaskManager that was killed stays listed until its heartbeat times out: wait for ours.
        known = self.taskmanager_ids()
        tm.spawn(["bash", "-c", _SUPERVISE, "flink-taskmanager", "bash",
                  str(flink_home() / "bin" / "taskmanager.sh"), "start-foreground",
                  *self.dynamic_properties()], env=self.environment())
        wait_until(
            lambda: (self.taskmanager_ids() - known) or None,
            part=self.name,
            what="the new TaskManager has registered its slots",
            timeout=self.settings.start_timeout.total_seconds(),
            process=tm,
        )
        self.say(f"flink: ready, web UI on {self.address}")

    def taskmanager_ids(self) -> set[str]:
        listing = self._get("/taskmanagers") or {}
        return {tm["id"] for tm in listing.get("taskmanagers", [])}

    def _overview(self) -> dict[str, Any] | None:
        return self._get("/overview")

    def _get(self, path: str) -> dict[str, Any] | None:
        """A GET on the REST API; ``None`` while it does not answer (readiness polls)."""
        try:
            with urllib.request.urlopen(f"{self.address}{path}", timeout=2) as response:  # noqa: S310
                return dict(json.load(response))
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return None

    def health(self) -> Health:
        overview = self._overview()
        if overview is None:
            return Health(False, "REST API not answering")
        slots = overview.get("slots-total", 0)
        return Health(
            slots > 0,
            f"Flink {overview.get('flink-version', '?')}, {overview.get('taskmanagers', 0)} "
            f"TaskManager(s), {overview.get('slots-available', 0)}/{slots} slots free, "
            f"{overview.get('jobs-running', 0)} job(s) running",
        )
