"""docker-compose.yml and docker/*.Dockerfile, checked without Docker.

Pinned images, health checks, waits on conditions, paths that exist, `creatorpulse` commands the
CLI accepts, CREATORPULSE_* names that are real settings, and versions that agree with setup.cfg.
"""

from __future__ import annotations

import configparser
import dataclasses
import re
import shlex
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from creatorpulse.cli import build_parser
from creatorpulse.settings import PREFIX, Settings
from creatorpulse.stack.flink import read_flink_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
SETTING_NAMES = {f.metadata["env"] for f in dataclasses.fields(Settings)}


# --- helpers ------------------------------------------------------------------------------------


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, from either the mapping or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def argv(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(word) for word in value]


def one_shot_services() -> set[str]:
    """Services that others wait on to complete: they exit and need no health check."""
    return {
        dep
        for service in SERVICES.values()
        for dep, spec in (service.get("depends_on") or {}).items()
        if isinstance(spec, dict) and spec.get("condition") == "service_completed_successfully"
    }


def image_tag(image: str) -> str | None:
    """The tag of ``image`` (a digest counts as a pin), or None when it has none."""
    if "@sha256:" in image:
        return image.split("@", 1)[1]
    name = image.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).partition(" ")
        result.append((keyword.upper(), rest.strip()))
        pending = ""
    return result


def flags_and_args(arguments: str) -> tuple[dict[str, str], list[str]]:
    """``--flag=value`` options and the remaining words of a COPY/ADD/FROM (JSON form too)."""
    words = yaml.safe_load(arguments) if arguments.startswith("[") else shlex.split(arguments)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, words


def external_images(dockerfile: Path) -> list[str]:
    """Images a Dockerfile pulls: FROM and COPY --from that name no earlier stage."""
    stages: set[str] = set()
    images: list[str] = []
    for keyword, arguments in instructions(dockerfile):
        if keyword == "FROM":
            _, words = flags_and_args(arguments)
            if words[0] not in stages and words[0] != "scratch":
                images.append(words[0])
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
        elif keyword == "COPY":
            flags, _ = flags_and_args(arguments)
            source = flags.get("from")
            if source and source not in stages and not source.isdigit():
                images.append(source)
    return images


def copy_sources(dockerfile: Path) -> list[str]:
    """Paths that COPY and ADD take from the build context (not from another stage)."""
    sources = []
    for keyword, arguments in instructions(dockerfile):
        if keyword in ("COPY", "ADD") and not arguments.startswith("<<"):
            flags, words = flags_and_args(arguments)
            if "from" not in flags:
                sources.extend(words[:-1])
    return sources


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def flink_services() -> list[str]:
    return sorted(
        name
        for name, service in SERVICES.items()
        if isinstance(service.get("build"), dict)
        and service["build"].get("dockerfile", "").endswith("flink.Dockerfile")
    )


def flink_properties(service: dict[str, Any]) -> dict[str, str]:
    """FLINK_PROPERTIES as the Flink image's entrypoint reads it: ``key:value`` per line."""
    props = {}
    for line in environment(service).get("FLINK_PROPERTIES", "").splitlines():
        if line.strip():
            key, sep, value = line.strip().partition(":")
            assert sep, f"FLINK_PROPERTIES line without a colon: {line!r}"
            props[key] = value
    return props


# --- the compose file ---------------------------------------------------------------------------


def test_every_image_is_pinned_to_a_tag() -> None:
    images = [s["image"] for s in SERVICES.values() if "image" in s]
    images += [image for dockerfile in DOCKERFILES for image in external_images(dockerfile)]
    assert images, "no images found"
    for image in images:
        tag = image_tag(image)
        assert tag, f"{image} has no tag"
        assert tag != "latest", f"{image} is not pinned"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_long_running_services_have_a_health_check(name: str) -> None:
    if name in one_shot_services():
        assert SERVICES[name].get("restart", "no") == "no", f"{name} runs once: no restart"
        return
    test = (SERVICES[name].get("healthcheck") or {}).get("test")
    assert test, f"{name} has no healthcheck"
    assert not SERVICES[name]["healthcheck"].get("disable", False)
    assert isinstance(test, str) or test[0] in ("CMD", "CMD-SHELL"), f"{name}: {test}"


@pytest.mark.parametrize(
    "name", sorted(name for name, service in SERVICES.items() if service.get("depends_on"))
)
def test_depends_on_waits_on_a_condition(name: str) -> None:
    depends_on = SERVICES[name]["depends_on"]
    assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
    for dep, spec in depends_on.items():
        assert dep in SERVICES, f"{name} depends on unknown service {dep}"
        condition = (spec or {}).get("condition")
        if condition == "service_healthy":
            assert SERVICES[dep].get("healthcheck"), f"{name} waits on {dep}: no healthcheck"
        else:
            assert condition == "service_completed_successfully", f"{name} -> {dep}: {condition}"
            assert SERVICES[dep].get("restart", "no") == "no", f"{dep} would not complete"


def test_build_contexts_and_dockerfiles_exist() -> None:
    builds = [s["build"] for s in SERVICES.values() if "build" in s]
    assert builds
    for build in builds:
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), context
        dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict)
                                else "Dockerfile")
        assert dockerfile.is_file(), dockerfile


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_volumes_are_declared_or_exist_on_the_host(name: str) -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for volume in SERVICES[name].get("volumes") or []:
        if isinstance(volume, dict):
            kind, source = volume.get("type"), volume.get("source", "")
        else:
            source = volume.split(":", 1)[0]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        if kind == "bind":
            assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
        else:
            assert source in declared, f"{name} uses volume {source}, not declared under volumes:"


def test_creatorpulse_commands_parse() -> None:
    commands = [
        (name, words)
        for name, service in SERVICES.items()
        for key in ("entrypoint", "command")
        if (words := argv(service.get(key))) and PurePosixPath(words[0]).name == "creatorpulse"
    ]
    assert commands, "no service runs `creatorpulse`"
    for name, words in commands:
        try:
            args = build_parser().parse_args(words[1:])
        except SystemExit:
            pytest.fail(f"{name}: `{shlex.join(words)}` is not a valid creatorpulse command")
        # In a container, `stack up` may only wait for parts that the settings point elsewhere.
        settings = Settings.from_env(environment(SERVICES[name]), dotenv=None)
        for part in getattr(args, "only", None) or []:
            assert not getattr(settings, f"manages_{part}"), (
                f"{name}: `stack up` would start a private {part} inside the container"
            )


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_creatorpulse_variables_are_settings(name: str) -> None:
    env = {k: v for k, v in environment(SERVICES[name]).items() if k.startswith(PREFIX)}
    unknown = sorted(set(env) - SETTING_NAMES)
    assert not unknown, f"{name}: not settings: {unknown}"
    Settings.from_env(env, dotenv=None)  # raises SettingsError on a malformed value


def test_dockerfiles_set_no_unknown_settings() -> None:
    assert DOCKERFILES
    for dockerfile in DOCKERFILES:
        for keyword, arguments in instructions(dockerfile):
            if keyword in ("ENV", "ARG"):
                names = re.findall(rf"\b({PREFIX}\w+)=", arguments)
                assert set(names) <= SETTING_NAMES, f"{dockerfile.name}: {names}"


@pytest.mark.parametrize(
    "name", sorted(n for n, s in SERVICES.items() if PREFIX + "DATABASE_URL" in environment(s))
)
def test_settings_point_at_compose_services(name: str) -> None:
    settings = Settings.from_env(environment(SERVICES[name]), dotenv=None)
    assert settings.database_url and settings.kafka_bootstrap_servers and settings.redis_url
    for url in (settings.database_dsn.reveal(), settings.redis_dsn.reveal()):
        host = re.sub(r"^.*@", "", url.split("//", 1)[1]).split(":")[0].split("/")[0]
        assert host in SERVICES, f"{name}: {host} is no compose service"
    for server in settings.kafka_bootstrap.split(","):
        host = server.rsplit(":", 1)[0]
        assert host in SERVICES, f"{name}: {host} is no compose service"
        advertised = environment(SERVICES[host]).get("KAFKA_ADVERTISED_LISTENERS", "")
        assert f"//{server}" in advertised, f"{name}: {server} is not an advertised listener"


# --- the Flink services -------------------------------------------------------------------------


@pytest.mark.parametrize("name", flink_services())
def test_flink_properties_override_the_localhost_bindings(name: str) -> None:
    props = flink_properties(SERVICES[name])
    for key, value in props.items():
        # The entrypoint splits at the first colon; a leading space would empty the value.
        assert value and not value[0].isspace(), f"{name}: write `{key}:{value.strip()}`"
    config = read_flink_config(ROOT / "flink-conf")
    local = sorted(key for key, value in config.items() if value == "localhost")
    assert local, "flink-conf/config.yaml binds to localhost: expected something to override"
    for key in local:
        assert props.get(key, "localhost") != "localhost", f"{name} leaves {key} at localhost"


@pytest.mark.parametrize("name", flink_services())
def test_flink_state_lives_on_a_named_volume(name: str) -> None:
    props = flink_properties(SERVICES[name])
    targets = [
        v.split(":")[1] for v in SERVICES[name].get("volumes") or []
        if isinstance(v, str) and not v.startswith((".", "/"))
    ]
    for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir"):
        assert key in props, f"{name} does not set {key}"
        path = re.sub(r"^file://", "", props[key])
        assert any(path.startswith(t.rstrip("/") + "/") for t in targets), f"{name}: {key}={path}"


def test_the_jobmanager_publishes_the_rest_port() -> None:
    rest_port = int(read_flink_config(ROOT / "flink-conf").get("rest.port", 8081))
    ports = [str(p) for name in flink_services() for p in SERVICES[name].get("ports") or []]
    assert any(p.endswith(f":{rest_port}") for p in ports), ports


# --- the Dockerfiles ----------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_files_that_exist_and_are_not_ignored(dockerfile: Path) -> None:
    sources = copy_sources(dockerfile)
    assert sources, f"{dockerfile.name} copies nothing from the repository"
    patterns = dockerignore_patterns()
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which does not exist"
        parts = PurePosixPath(source).parts
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            ignored = [p for p in patterns if fnmatch(prefix, p.removeprefix("**/"))]
            assert not ignored, f"{dockerfile.name} copies {source}, excluded by {ignored}"


def test_dockerignore_keeps_local_state_out_of_the_images() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv", ".creatorpulse", ".git", "jobs/__pycache__"):
        name = PurePosixPath(path).name
        assert any(fnmatch(path, p) or fnmatch(name, p.removeprefix("**/")) for p in patterns), path


def test_images_match_the_versions_in_setup_cfg() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    requires = SpecifierSet(cfg["options"]["python_requires"])
    flink = re.search(r"apache-flink==([\d.]+)", cfg["options"]["install_requires"])
    assert flink, "setup.cfg pins no apache-flink version"
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        assert set(re.findall(r"apache-flink==([\d.]+)", text)) <= {flink.group(1)}, dockerfile.name
        # PyFlink and the cluster must be the same Flink release.
        for image in external_images(dockerfile):
            if image.startswith("flink:"):
                assert image_tag(image).startswith(flink.group(1) + "-"), image
        pythons = re.findall(r"FROM python:(\d+\.\d+(?:\.\d+)?)", text)
        pythons += re.findall(r"ARG PYTHON_VERSION=(\d+\.\d+(?:\.\d+)?)", text)
        if "pip install" in text:
            assert pythons, f"{dockerfile.name}: which Python does it install into?"
        for version in pythons:
            assert version in requires, f"{dockerfile.name}: Python {version} vs {requires}"
