"""The machine's tools the stack relies on: Java, Maven and the PostgreSQL server binaries.

Each lookup fails with a :class:`StackError` that says what is missing and how to get it, rather
than a stack trace from deep inside a launcher script.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from creatorpulse.stack.process import StackError

MAVEN_DIR = Path(__file__).resolve().parent / "maven"
MIN_JAVA = 17  # Kafka 4 brokers need Java 17; Flink 2.2 runs on 11, 17 and 21


def java_binary() -> str:
    """The ``java`` to run, from ``JAVA_HOME`` or ``PATH``, checked to be Java 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        msg = (
            f"no Java found (JAVA_HOME={java_home or 'unset'}, nothing on PATH); Kafka and Flink "
            f"need Java {MIN_JAVA}+: `apt-get install openjdk-17-jre-headless` or set JAVA_HOME"
        )
        raise StackError("java", msg)
    out = subprocess.run(
        [java, "-version"], capture_output=True, text=True, check=False
    ).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        msg = f"{java} is Java {major or 'of unknown version'}; Kafka and Flink need {MIN_JAVA}+"
        raise StackError("java", msg)
    return java


def fetch_jars(pom_file: Path, dest: Path, part: str) -> list[Path]:
    """Copy the dependencies of ``pom_file`` into ``dest`` with Maven, once per pom content.

    A stamp holding the pom's hash makes this a no-op until the pom changes.
    """
    digest = hashlib.sha256(pom_file.read_bytes()).hexdigest()
    stamp = dest / ".pom-sha256"
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return sorted(dest.glob("*.jar"))
    mvn = shutil.which("mvn")
    if mvn is None:
        msg = "Maven (mvn) is not installed; it fetches the jars: `apt-get install maven`"
        raise StackError(part, msg)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    proc = subprocess.run(
        [mvn, "-B", "-q", "-f", str(pom_file), "dependency:copy-dependencies",
         f"-DoutputDirectory={dest}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        detail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        msg = f"could not fetch the jars of {pom_file} from Maven Central (exit {proc.returncode})"
        raise StackError(part, msg, detail)
    stamp.write_text(digest + "\n")
    return sorted(dest.glob("*.jar"))


def postgres_bin_dir() -> Path:
    """The folder holding ``initdb`` and ``postgres``: the newest Debian install, else PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    msg = (
        "no PostgreSQL server binaries (initdb, postgres) found: `apt-get install postgresql`, "
        "or point CREATORPULSE_DATABASE_URL at a running server"
    )
    raise StackError("postgres", msg)
