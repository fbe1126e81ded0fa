"""Test tiers by folder: tests/unit touch no network; tests/jobs run the Flink jobs' logic in a
local batch Flink; tests/integration use the running stack."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in Path(str(item.fspath)).relative_to(ROOT).parts:
            item.add_marker(pytest.mark.integration)
