"""The demo's background programs: what runs, how it is recognised, and a failed start."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from creatorpulse.settings import Settings
from creatorpulse.stack import Stack
from creatorpulse.stack.process import StackError
from creatorpulse.stack.services import Service, ServiceSpec, app_services


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = Settings.from_env({}, dotenv=None)
    return replace(base, state_dir=tmp_path, start_timeout=base.start_timeout)


def test_the_apps_start_simulators_first_and_the_api_last(settings: Settings) -> None:
    names = [s.name for s in app_services(settings)]
    assert names == ["simulators", "webhooks", "sources", "backfills", "api"]
    api = app_services(settings)[-1]
    assert api.args == ("api", "serve")
    assert api.health_url == f"{settings.api_url}/healthz"


def test_a_service_is_recognised_by_its_command_line(settings: Settings) -> None:
    spec = ServiceSpec("webhooks", ("webhooks", "serve"), None)
    service = Service(settings, lambda _: None, spec)
    (proc,) = service.processes()
    assert proc.marker == "creatorpulse.cli webhooks serve"
    assert " ".join(service.argv).endswith(proc.marker)
    assert proc.pid_file == settings.state_dir / "run" / "app-webhooks.pid"
    assert not service.health().ok


def test_a_program_that_exits_at_start_fails_with_its_log(settings: Settings) -> None:
    # `creatorpulse settings` prints and exits: as a service it never stays up.
    spec = ServiceSpec("short", ("settings",), None, settle=120)  # it exits long before
    service = Service(settings, lambda _: None, spec)
    with pytest.raises(StackError, match="exited while waiting") as err:
        service.up()
    assert "CREATORPULSE_" in err.value.log_tail  # what the program printed


def test_apps_that_do_not_run_are_not_parts_of_the_stack(settings: Settings) -> None:
    stack = Stack(settings, lambda _: None)
    assert [p.name for p in stack.parts] == ["postgres", "redis", "kafka", "flink"]
    assert {p.name for p in stack.processes()} >= {"app-simulators", "app-api"}
