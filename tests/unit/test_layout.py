"""The repository's shape: one import namespace, and graphql/ never shadowing graphql-core."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import creatorpulse
from creatorpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_import_graphql_from_the_repository_root_loads_graphql_core() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import graphql, strawberry; print(graphql.__file__); "
         "print(graphql.version)"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert "site-packages" in out[0] and Path(out[0]).parent != ROOT / "graphql"
    assert re.match(r"\d+\.\d+", out[1])
    assert not (ROOT / "graphql" / "__init__.py").exists()


def test_the_top_level_folders_are_subpackages_of_creatorpulse() -> None:
    import creatorpulse.graphql
    import creatorpulse.jobs.tables
    import creatorpulse.sinks.migrate
    import creatorpulse.sources

    assert Path(creatorpulse.jobs.tables.__file__).parent == ROOT / "jobs"
    assert Path(creatorpulse.sinks.migrate.__file__).parent == ROOT / "sinks"
    assert Path(creatorpulse.sources.__file__).parent == ROOT / "sources"
    assert [Path(p) for p in creatorpulse.graphql.__path__] == [ROOT / "graphql"]


def test_setup_cfg_maps_each_folder_onto_the_namespace() -> None:
    text = (ROOT / "setup.cfg").read_text()
    for folder in ("sources", "jobs", "sinks", "graphql"):
        assert f"creatorpulse.{folder} = {folder}" in text


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for f in dataclasses.fields(Settings):
        assert f.metadata["env"] in readme, f"README.md does not document {f.metadata['env']}"


def test_ci_runs_the_readmes_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^\s*(make \w+)\s*# the tests", readme, re.MULTILINE)
    assert command, "README.md names no test command"
    assert command.group(1) in (ROOT / ".ci" / "run").read_text()


def test_version_is_declared_once() -> None:
    assert re.match(r"^\d+\.\d+\.\d+$", creatorpulse.__version__)
    assert "attr: creatorpulse.__version__" in (ROOT / "setup.cfg").read_text()
