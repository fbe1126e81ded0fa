"""Meta's Graph API answers, judged the same way for Instagram and Facebook."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from creatorpulse.sources.base import ApiError, AuthExpired, Gone, Response, Retry
from creatorpulse.sources.facebook import Facebook
from creatorpulse.sources.instagram import Instagram
from tests.unit.fake_api import NOW, payload

CONNECTORS = [Instagram(clock=lambda: NOW), Facebook(clock=lambda: NOW)]


def answer(name: str | None, status: int = 400, **headers: object) -> Response:
    body = payload("instagram", name) if name else b"{}"
    shown = {k.replace("_", "-"): v if isinstance(v, str) else json.dumps(v)
             for k, v in headers.items()}
    return Response(status, shown, body)


def buc(call_count: int, regain: int = 0, kind: str = "instagram") -> dict[str, object]:
    return {"17841405793187218": [{"type": kind, "call_count": call_count, "total_cputime": 3,
                                   "total_time": 4, "estimated_time_to_regain_access": regain}]}


@pytest.fixture(params=CONNECTORS, ids=lambda c: c.platform.value)
def graph(request: pytest.FixtureRequest) -> Instagram | Facebook:
    return request.param  # type: ignore[no-any-return]


def test_success_with_low_usage_needs_no_pause(graph: Instagram) -> None:
    ok = answer(None, 200, x_app_usage={"call_count": 28, "total_time": 25, "total_cputime": 25},
                x_business_use_case_usage=buc(12))
    assert graph.check(ok) is None


def test_success_near_the_limit_pauses_more_the_closer_it_gets(graph: Instagram) -> None:
    at_90 = graph.check(answer(None, 200, x_app_usage={"call_count": 10, "total_time": 90,
                                                       "total_cputime": 5}))
    at_100 = graph.check(answer(None, 200, x_business_use_case_usage=buc(100, kind="pages")))
    assert at_90 == timedelta(minutes=2, seconds=30)
    assert at_100 == timedelta(minutes=5)


def test_success_with_a_regain_estimate_pauses_that_long(graph: Instagram) -> None:
    pause = graph.check(answer(None, 200, x_business_use_case_usage=buc(40, regain=12)))
    assert pause == timedelta(minutes=12)


def test_legacy_page_usage_header_counts_too(graph: Instagram) -> None:
    pause = graph.check(answer(None, 200, x_page_usage={"1048": {"call_count": 100}}))
    assert pause == timedelta(minutes=5)


def test_garbled_usage_headers_are_ignored(graph: Instagram) -> None:
    assert graph.check(answer(None, 200, x_app_usage="{not json")) is None


def test_buc_throttle_waits_for_the_estimated_time(graph: Instagram) -> None:
    with pytest.raises(Retry) as caught:
        graph.check(answer("error_throttle_buc", x_business_use_case_usage=buc(100, regain=7)))
    assert caught.value.after == timedelta(minutes=7)
    assert "80002" in caught.value.reason


def test_app_throttle_uses_retry_after_when_there_is_no_estimate(graph: Instagram) -> None:
    with pytest.raises(Retry) as caught:
        graph.check(answer("error_app_limit", 403, retry_after="120"))
    assert caught.value.after == timedelta(seconds=120)


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001, 80014])
def test_every_throttle_code_is_a_retry(graph: Instagram, code: int) -> None:
    body = json.dumps({"error": {"message": "limit", "code": code}}).encode()
    with pytest.raises(Retry) as caught:
        graph.check(Response(400, {}, body))
    assert caught.value.after is None  # no wait given: the runtime's backoff decides


def test_token_errors_are_auth_expired_without_the_token(graph: Instagram) -> None:
    with pytest.raises(AuthExpired) as caught:
        graph.check(answer("error_token"))
    assert "IGQVJ-secret-token" not in str(caught.value)
    assert "access_token=***" in str(caught.value)
    with pytest.raises(AuthExpired):
        graph.check(Response(401, {}, b"Unauthorized"))


def test_a_missing_object_is_gone(graph: Instagram) -> None:
    with pytest.raises(Gone):
        graph.check(answer("error_deleted"))


def test_transient_errors_are_retried(graph: Instagram) -> None:
    with pytest.raises(Retry):
        graph.check(answer("error_transient", 500))
    with pytest.raises(Retry):
        graph.check(Response(503, {"retry-after": "5"}, b"<html>down</html>"))


def test_other_errors_say_what_was_wrong(graph: Instagram) -> None:
    with pytest.raises(ApiError) as caught:
        graph.check(answer("error_permission"))
    assert caught.value.code == "10" and caught.value.status == 400
    assert "does not have permission" in str(caught.value)
    assert str(caught.value).startswith(f"{graph.platform.value}: HTTP 400")
