from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from creatorpulse.observation import Platform
from creatorpulse.sources import facebook, instagram, registry, tiktok, x, youtube
from tests.unit.fake_api import NOW

MODULES = [instagram, facebook, youtube, tiktok, x]
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("platform", list(Platform))
def test_every_platform_has_a_connector_of_that_platform(platform: Platform) -> None:
    made = registry.connector(platform.value, clock=lambda: NOW)
    assert made.platform is platform
    assert made.clock() == NOW  # type: ignore[attr-defined]
    for method in ("fetch_account", "fetch_content", "check"):
        assert callable(getattr(made, method))


def test_connectors_are_imported_only_when_asked_for() -> None:
    code = ("import sys; from creatorpulse.sources import registry; "
            "before = 'creatorpulse.sources.tiktok' in sys.modules; registry.connector('tiktok'); "
            "print(before, 'creatorpulse.sources.tiktok' in sys.modules, "
            "'creatorpulse.sources.youtube' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "False"]


def test_an_unknown_platform_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="no connector for platform 'myspace'; known: instagram"):
        registry.connector("myspace")


ACCOUNT_TABLES = ("ACCOUNT_METRICS", "CHANNEL_METRICS", "SUBSCRIBERS")


def metric_names(*, account: bool) -> set[str]:
    """Every metric name the connectors' mapping tables produce, account or content level."""
    found: set[str] = set()
    for module in MODULES:
        for name, value in vars(module).items():
            if isinstance(value, dict) and name.endswith(("METRICS", "SUBSCRIBERS")) and (
                    (name in ACCOUNT_TABLES) == account):
                found |= set(value.values())
            if account and isinstance(value, type) and module.__name__ == value.__module__:
                found |= set(getattr(value, "account_metrics", {}).values())
    return found


def test_account_metrics_are_named_apart_from_content_metrics() -> None:
    account, content = metric_names(account=True), metric_names(account=False)
    assert account == {"followers", "following", "media_count", "account_views",
                       "account_likes", "page_likes", "listed", "likes_given"}
    assert content == {"likes", "comments", "shares", "saves", "views", "reach", "quotes"}
    assert not account & content


def test_readme_documents_every_metric() -> None:
    section = README.read_text().split("## Sources: metrics per platform", 1)[1].split("\n## ")[0]
    for metric in metric_names(account=True) | metric_names(account=False):
        assert f"`{metric}`" in section, metric
