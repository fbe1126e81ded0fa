from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from creatorpulse.settings import PREFIX


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Unit tests see no CREATORPULSE_* variables from the developer's shell."""
    for key in list(os.environ):
        if key.startswith(PREFIX):
            monkeypatch.delenv(key)
    yield
