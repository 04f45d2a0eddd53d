"""Each answer of JIRA maps to one value of the error taxonomy (CONTRACT 10.6-10.8)."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest
import respx

from app.jira.errors import (
    AuthRejected,
    NotFound,
    PermanentError,
    RateLimited,
    TransientError,
    error_from_response,
    retry_after_seconds,
)
from tests.unit.test_jira_support import ACCESS_TOKEN, API, make_client, make_target

MYSELF = f"{API}/myself"
OK = httpx.Response(200, json={"name": "jdoe", "displayName": "J. Doe"})


async def _myself_answering(*responses: httpx.Response | Exception, max_wait: float | None = None,
                            **client_kwargs: object):
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        mock.get(MYSELF).mock(side_effect=list(responses))
        harness = make_client(http, **client_kwargs)
        try:
            result: object = await harness.client.myself(replace(make_target(), max_wait=max_wait))
        except Exception as exc:
            result = exc
        return result, harness


async def test_401_is_auth_rejected_with_oauth_problem_from_www_authenticate() -> None:
    answer = httpx.Response(401, headers={"WWW-Authenticate": 'OAuth realm="https%3A%2F%2Fjira", '
                                                              'oauth_problem="token_rejected"'})
    error, harness = await _myself_answering(answer)
    assert isinstance(error, AuthRejected)
    assert error.oauth_problem == "token_rejected"
    assert "token_rejected" in error.message
    assert harness.calls[0].outcome == "auth_rejected"
    assert harness.calls[0].status == 401


async def test_401_oauth_problem_from_form_body() -> None:
    answer = httpx.Response(401, text="oauth_problem=consumer_key_unknown&oauth_problem_advice=whatever")
    error, _ = await _myself_answering(answer)
    assert isinstance(error, AuthRejected)
    assert error.oauth_problem == "consumer_key_unknown"


async def test_400_quotes_errors_dict() -> None:
    answer = httpx.Response(400, json={"errorMessages": [], "errors": {"started": "Invalid date format. Please "
                                                                                  "enter the date in the format"}})
    error, harness = await _myself_answering(answer)
    assert type(error) is PermanentError
    assert error.status == 400
    assert error.errors == {"started": "Invalid date format. Please enter the date in the format"}
    assert error.message.startswith("JIRA says: started: Invalid date format")
    assert harness.calls[0].outcome == "permanent"


async def test_403_is_permanent_with_jira_message() -> None:
    answer = httpx.Response(403, json={"errorMessages": ["You do not have the permission to see the specified "
                                                         "issue."], "errors": {}})
    error, _ = await _myself_answering(answer)
    assert type(error) is PermanentError
    assert error.message == "JIRA says: You do not have the permission to see the specified issue."


async def test_403_without_json_names_the_status() -> None:
    error, _ = await _myself_answering(httpx.Response(403, text="<html>nope</html>",
                                                      headers={"content-type": "text/html"}))
    assert isinstance(error, PermanentError)
    assert error.message == "JIRA answered 403 Forbidden"


async def test_404_is_not_found_with_issue_does_not_exist() -> None:
    error, _ = await _myself_answering(httpx.Response(404, json={"errorMessages": ["Issue Does Not Exist"],
                                                                 "errors": {}}))
    assert isinstance(error, NotFound) and isinstance(error, PermanentError)
    assert error.message == "JIRA says: Issue Does Not Exist"
    assert error.error_messages == ("Issue Does Not Exist",)


async def test_429_with_retry_after_is_retried_then_succeeds_without_the_caller_noticing() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "2", "X-RateLimit-Remaining": "0"})
    user, harness = await _myself_answering(limited, OK)
    assert getattr(user, "name", None) == "jdoe"
    assert harness.sleeps == [2.0]
    assert [c.outcome for c in harness.calls] == ["rate_limited", "ok"]
    # the gate heard the 429 with its headers and was asked again before the retry
    assert harness.gate.observed[0][0] == 429
    assert harness.gate.observed[0][1]["retry-after"] == "2"
    assert len(harness.gate.acquired) == 2


async def test_429_without_retry_after_waits_one_second() -> None:
    user, harness = await _myself_answering(httpx.Response(429), OK)
    assert getattr(user, "name", None) == "jdoe"
    assert harness.sleeps == [1.0]


async def test_429_retry_after_below_one_second_waits_one_second() -> None:
    _, harness = await _myself_answering(httpx.Response(429, headers={"Retry-After": "0"}), OK)
    assert harness.sleeps == [1.0]


async def test_429_exhausted_raises_rate_limited_with_headers() -> None:
    limited = httpx.Response(429, headers={
        "Retry-After": "3", "X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0",
        "X-RateLimit-FillRate": "10", "X-RateLimit-Interval-Seconds": "1"})
    error, harness = await _myself_answering(*[limited] * 4, max_rate_limit_retries=3)
    assert isinstance(error, RateLimited)
    assert (error.retry_after, error.limit, error.remaining, error.fill_rate, error.interval) == (3.0, 100, 0, 10, 1)
    assert harness.sleeps == [3.0, 3.0, 3.0]
    assert len(harness.calls) == 4


async def test_a_push_never_sleeps_out_a_429_longer_than_its_patience() -> None:
    # CONTRACT 11: a push waits at most a second; a longer Retry-After goes back to the pusher, which defers the
    # entry and holds nothing meanwhile (before, the client slept up to 30 s × 3 on the worker's slot)
    error, harness = await _myself_answering(httpx.Response(429, headers={"Retry-After": "2"}), max_wait=1.0)
    assert isinstance(error, RateLimited) and error.retry_after == 2
    assert harness.sleeps == [] and len(harness.calls) == 1
    short, harness = await _myself_answering(httpx.Response(429, headers={"Retry-After": "1"}), OK, max_wait=1.0)
    assert getattr(short, "name", None) == "jdoe" and harness.sleeps == [1.0]


async def test_429_with_long_retry_after_is_handed_to_the_caller_at_once() -> None:
    error, harness = await _myself_answering(httpx.Response(429, headers={"Retry-After": "120"}))
    assert isinstance(error, RateLimited) and error.retry_after == 120
    assert harness.sleeps == []


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_transient_and_maybe_applied(status: int) -> None:
    error, harness = await _myself_answering(httpx.Response(status, text="down"))
    assert isinstance(error, TransientError)
    assert error.maybe_applied is True
    assert error.status == status
    assert harness.calls[0].outcome == "transient"


async def test_read_timeout_is_transient_and_maybe_applied() -> None:
    error, harness = await _myself_answering(httpx.ReadTimeout("timed out"))
    assert isinstance(error, TransientError) and error.maybe_applied is True
    assert harness.calls[0].status is None and harness.calls[0].outcome == "transient"
    assert harness.gate.observed == [(None, {})]


async def test_connection_reset_after_sending_is_maybe_applied() -> None:
    error, _ = await _myself_answering(httpx.RemoteProtocolError("Server disconnected without sending a response"))
    assert isinstance(error, TransientError) and error.maybe_applied is True


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"),
                                 httpx.PoolTimeout("busy")])
async def test_nothing_sent_is_transient_and_not_applied(exc: Exception) -> None:
    error, _ = await _myself_answering(exc)
    assert isinstance(error, TransientError) and error.maybe_applied is False


async def test_non_json_200_is_transient_unknown_outcome() -> None:
    error, _ = await _myself_answering(httpx.Response(200, text="<html>login</html>"))
    assert isinstance(error, TransientError) and error.maybe_applied is True


async def test_redirect_is_permanent_and_points_at_base_url() -> None:
    error, _ = await _myself_answering(httpx.Response(302, headers={"Location": "https://jira/login.jsp?x=1"}))
    assert isinstance(error, PermanentError)
    assert "base_url" in error.message and "x=1" not in error.message


async def test_messages_and_calls_never_carry_credentials() -> None:
    answers = [httpx.Response(401, text=f"oauth_problem=token_rejected&oauth_token={ACCESS_TOKEN}"),
               httpx.Response(400, json={"errorMessages": [f"bad oauth_token={ACCESS_TOKEN}"]}),
               httpx.Response(403, text=f"denied oauth_token={ACCESS_TOKEN}", headers={"content-type": "text/plain"})]
    for answer in answers:
        error, harness = await _myself_answering(answer)
        assert isinstance(error, PermanentError | AuthRejected)
        assert ACCESS_TOKEN not in error.message and ACCESS_TOKEN not in str(error)
        assert all(ACCESS_TOKEN not in repr(c) for c in harness.calls)


def test_retry_after_accepts_http_dates_and_rejects_nonsense() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds("soon") == 1.0
    assert retry_after_seconds(None) == 1.0
    assert retry_after_seconds("2.5") == 2.5


def test_2xx_is_no_error() -> None:
    assert error_from_response(204, {}, b"") is None


def test_other_4xx_are_permanent() -> None:
    assert isinstance(error_from_response(409, {}, b"{}"), PermanentError)
    assert isinstance(error_from_response(413, {}, b""), PermanentError)


@pytest.mark.parametrize("status, headers, body", [
    (403, {"content-type": "text/plain"}, b"XSRF check failed at 10.0.0.5:8080 (internal-db)"),
    (500, {"content-type": "text/html"}, b"<html><body>Tomcat at 10.0.0.5, db=prod</body></html>"),
    (404, {"content-type": "application/json"}, b'{"something": "internal 10.0.0.5"}'),
    (301, {"location": "http://10.0.0.5:8080/admin"}, b""),
])
def test_only_jiras_own_error_fields_reach_a_caller(status: int, headers: dict[str, str], body: bytes) -> None:
    """CONTRACT 11: anything but errorMessages/errors/message is reported by its status alone."""
    error = error_from_response(status, headers, body)
    assert error is not None and "10.0.0.5" not in error.message
    assert error.message.startswith(f"JIRA answered {status} ")


def test_jiras_own_fields_are_quoted_up_to_500_characters() -> None:
    long = "x" * 2000
    error = error_from_response(400, {}, json.dumps({"errorMessages": [long], "errors": {"f": "bad"}}).encode())
    assert error is not None and error.message.startswith("JIRA says: xxx") and len(error.message) <= 500


async def test_a_connection_error_does_not_repeat_the_systems_text() -> None:
    error, _ = await _myself_answering(httpx.ConnectError("[Errno 111] Connection refused to 10.0.0.5:5432"))
    assert error.message == "cannot connect to JIRA"
