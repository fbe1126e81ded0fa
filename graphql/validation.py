"""Checks of mutation inputs, pure: each returns the problems as (field, message) pairs.

A mutation runs only when its input has no problem; otherwise it answers with every problem at
once (``ValidationErrors``), each naming the field (``input.tags[2]``) and saying why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

NAME_MAX = 200
TAG_MAX, TAGS_MAX = 50, 20
METADATA_MAX_BYTES = 16_384
EXTERNAL_ID_MAX, HANDLE_MAX = 200, 100
POLL_MIN, POLL_MAX = timedelta(seconds=10), timedelta(days=1)
BACKFILL_MAX = timedelta(days=90)
TOKEN_MAX = 4096
_TAG = re.compile(r"^[\w.\-]+$")
_EXTERNAL = re.compile(r"^[\w.\-@:]+$")


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


def name(value: str | None, field: str, *, required: bool) -> list[Problem]:
    if value is None:
        return [Problem(field, "is required")] if required else []
    if not value.strip():
        return [Problem(field, "must not be blank")]
    if len(value) > NAME_MAX:
        return [Problem(field, f"must be at most {NAME_MAX} characters")]
    return []


def tags(values: Sequence[str] | None, field: str) -> list[Problem]:
    if values is None:
        return []
    problems = []
    if len(values) > TAGS_MAX:
        problems.append(Problem(field, f"at most {TAGS_MAX} tags"))
    seen: set[str] = set()
    for i, tag in enumerate(values):
        if not 1 <= len(tag) <= TAG_MAX or not _TAG.match(tag):
            problems.append(Problem(f"{field}[{i}]", f"a tag is 1 to {TAG_MAX} letters, digits, "
                                                     "'_', '-' or '.'"))
        elif tag in seen:
            problems.append(Problem(f"{field}[{i}]", f"duplicate tag {tag!r}"))
        seen.add(tag)
    return problems


def metadata(value: Any, field: str) -> list[Problem]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [Problem(field, "must be a JSON object")]
    if len(json.dumps(value, default=str).encode()) > METADATA_MAX_BYTES:
        return [Problem(field, f"must be at most {METADATA_MAX_BYTES} bytes as JSON")]
    return []


def external_id(value: str, field: str) -> list[Problem]:
    if not value.strip():
        return [Problem(field, "must not be blank")]
    if len(value) > EXTERNAL_ID_MAX or not _EXTERNAL.match(value.strip()):
        return [Problem(field, f"1 to {EXTERNAL_ID_MAX} letters, digits or _ . - @ :")]
    return []


def handle(value: str | None, field: str) -> list[Problem]:
    if value is not None and len(value) > HANDLE_MAX:
        return [Problem(field, f"must be at most {HANDLE_MAX} characters")]
    return []


def poll_interval(seconds: int | None, field: str) -> list[Problem]:
    if seconds is None:
        return []
    if not POLL_MIN.total_seconds() <= seconds <= POLL_MAX.total_seconds():
        return [Problem(field, f"must be between {int(POLL_MIN.total_seconds())} and "
                               f"{int(POLL_MAX.total_seconds())} seconds")]
    return []


def token(value: str | None, field: str) -> list[Problem]:
    if value is None:
        return []
    if not value.strip() or len(value) > TOKEN_MAX or any(c.isspace() for c in value):
        # Never echo the token itself.
        return [Problem(field, f"must be 1 to {TOKEN_MAX} characters without spaces")]
    return []


def time_range(start: datetime, end: datetime, now: datetime, start_field: str,
               end_field: str) -> list[Problem]:
    problems = []
    for value, field in ((start, start_field), (end, end_field)):
        if value.tzinfo is None:
            problems.append(Problem(field, "needs a time zone (e.g. 2026-11-25T10:00:00Z)"))
    if problems:
        return problems
    if end <= start:
        problems.append(Problem(end_field, "must be later than the start"))
    elif end - start > BACKFILL_MAX:
        problems.append(Problem(end_field, f"a range covers at most {BACKFILL_MAX.days} days"))
    if start > now:
        problems.append(Problem(start_field, "must not be in the future"))
    return problems
