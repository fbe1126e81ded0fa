"""The local stack: every part healthy, topics and schema in place, clear failures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from creatorpulse.settings import Settings
from creatorpulse.stack import Stack, StackError
from creatorpulse.stack.tools import fetch_jars
from creatorpulse.topics import TOPICS

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "creatorpulse.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, check=False)


def test_every_part_is_up(stack: Stack) -> None:
    health = {part.name: h for part, h in stack.status()}
    assert set(health) == {"postgres", "redis", "kafka", "flink"}
    assert all(h.ok for h in health.values()), health
    assert "TaskManager" in health["flink"].detail


def test_status_command_reports_every_part_up() -> None:
    result = run_cli("stack", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("postgres", "redis", "kafka", "flink"):
        assert any(line.startswith(name) and " up " in line for line in result.stdout.splitlines())
    assert "http://localhost:8081" in result.stdout


def test_topics_exist_with_their_partitions(admin: AdminClient) -> None:
    metadata = admin.list_topics(timeout=10)
    for topic in TOPICS.values():
        assert topic.name in metadata.topics
        assert len(metadata.topics[topic.name].partitions) == topic.partitions


def test_the_flink_web_ui_answers(stack: Stack) -> None:
    import urllib.request

    with urllib.request.urlopen("http://localhost:8081/", timeout=10) as response:
        assert response.status == 200
        assert b"<html" in response.read(2048).lower()


def test_a_second_stack_up_is_a_no_op() -> None:
    result = run_cli("stack", "up")
    assert result.returncode == 0, result.stderr
    for name in ("postgres", "redis", "kafka", "flink"):
        assert f"{name}: already running" in result.stdout
    assert "database: up to date" in result.stdout


def test_the_schema_is_in_place(db: psycopg.Connection) -> None:
    tables = {row[0] for row in db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"tenants", "influencers", "platform_accounts", "oauth_credentials", "observations",
            "metric_buckets_1m", "rolling_windows", "metric_buckets_1h", "metric_buckets_1d",
            "schema_migrations"} <= tables


def test_a_port_in_use_is_reported_with_the_setting_to_change(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = run_cli("stack", "up", "--only", "redis", env={
            "CREATORPULSE_STATE_DIR": str(tmp_path), "CREATORPULSE_REDIS_PORT": str(port)})
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "CREATORPULSE_REDIS_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_java_is_reported_clearly(tmp_path: Path) -> None:
    result = run_cli("stack", "up", "--only", "kafka", env={
        "CREATORPULSE_STATE_DIR": str(tmp_path), "JAVA_HOME": str(tmp_path / "no-jdk"),
        "CREATORPULSE_KAFKA_PORT": "19092", "CREATORPULSE_KAFKA_CONTROLLER_PORT": "19093"})
    assert result.returncode == 1
    assert "error: java: no Java found" in result.stderr and "Traceback" not in result.stderr


def test_bad_configuration_fails_fast_naming_the_setting() -> None:
    result = run_cli("stack", "up", env={"CREATORPULSE_KAFKA_PORT": "kafka"})
    assert result.returncode == 1
    assert "CREATORPULSE_KAFKA_PORT" in result.stderr and "Traceback" not in result.stderr


def test_a_failed_jar_download_is_reported_clearly(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>t</groupId><artifactId>t</artifactId><version>1</version><dependencies>"
        "<dependency><groupId>io.creatorpulse.nonexistent</groupId><artifactId>nothing"
        "</artifactId><version>0.0.0</version></dependency></dependencies></project>")
    with pytest.raises(StackError, match="could not fetch the jars") as err:
        fetch_jars(pom, tmp_path / "jars", "kafka")
    assert "io.creatorpulse.nonexistent" in err.value.log_tail
    assert not (tmp_path / "jars").exists()


def test_down_leaves_alone_what_up_did_not_start(tmp_path: Path, settings: Settings) -> None:
    # A second stack with its own state folder started nothing, so it must stop nothing, even
    # though the first stack's services answer on the same ports.
    other = Settings.from_env({**os.environ, "CREATORPULSE_STATE_DIR": str(tmp_path)})
    assert Stack(other, lambda _: None).down() == []
    assert all(h.ok for _, h in Stack(settings, lambda _: None).status())


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to the postgres user")
def test_a_state_folder_the_postgres_user_cannot_reach_is_reported(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    result = run_cli("stack", "up", "--only", "postgres", env={
        "CREATORPULSE_STATE_DIR": str(closed / "state"), "CREATORPULSE_POSTGRES_PORT": "15433"})
    assert result.returncode == 1
    assert "cannot reach" in result.stderr and "CREATORPULSE_STATE_DIR" in result.stderr
