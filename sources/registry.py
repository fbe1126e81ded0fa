"""Platform name -> connector, resolved lazily from an import string.

>>> from creatorpulse.sources.registry import connector
>>> connector("youtube").platform.value
'youtube'

Metric names (the table per platform is README's "Sources: metrics per platform"): account
counters (``content_kind = account``) are named apart from per-content counters, so no metric
exists at both levels and the jobs never sum a count twice.

- account: ``followers``, ``following``, ``media_count``, ``account_views``, ``account_likes``,
  ``page_likes``, ``listed``, ``likes_given``;
- content: ``likes``, ``comments``, ``shares``, ``saves``, ``views``, ``reach``, ``quotes``.

A value the platform did not report is no observation at all (missing is not zero).
"""

from __future__ import annotations

import importlib
from typing import Any

from creatorpulse.observation import Platform
from creatorpulse.sources.base import Connector

CONNECTORS: dict[Platform, str] = {
    Platform.INSTAGRAM: "creatorpulse.sources.instagram:Instagram",
    Platform.FACEBOOK: "creatorpulse.sources.facebook:Facebook",
    Platform.YOUTUBE: "creatorpulse.sources.youtube:YouTube",
    Platform.TIKTOK: "creatorpulse.sources.tiktok:TikTok",
    Platform.X: "creatorpulse.sources.x:X",
}


def connector_class(platform: Platform | str) -> type[Any]:
    """The connector class of ``platform``, imported on first use."""
    try:
        target = CONNECTORS[Platform(platform)]
    except ValueError:
        known = ", ".join(p.value for p in CONNECTORS)
        msg = f"no connector for platform {platform!r}; known: {known}"
        raise ValueError(msg) from None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def connector(platform: Platform | str, **options: Any) -> Connector:
    """A connector for ``platform``; ``options`` go to its constructor (e.g. ``clock``)."""
    made: Connector = connector_class(platform)(**options)
    return made
