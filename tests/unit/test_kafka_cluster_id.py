"""The KRaft cluster id handed to ``kafka-storage format``."""

from __future__ import annotations

import base64
import uuid

import pytest

from creatorpulse.stack import kafka


def test_an_id_that_would_read_as_an_option_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 encodes to "-" as the first URL-safe base64 character.
    dash_first = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))
    plain = uuid.UUID(bytes=bytes(range(16)))
    drawn = iter([dash_first, plain])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))

    cluster_id = kafka._cluster_id()

    assert cluster_id == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")
    assert base64.urlsafe_b64encode(dash_first.bytes).decode().startswith("-")


def test_ids_are_22_characters_and_never_start_with_a_dash() -> None:
    ids = {kafka._cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
