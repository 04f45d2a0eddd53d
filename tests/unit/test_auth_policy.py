"""How users authenticate, as tables (CONTRACT 11 and 13): what each kind needs, what makes a new JIRA link, when an
access token is renewed, when a refresh token may be presented again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.auth import AuthKind, auth_problems, link_changes, may_present_refresh_token, refresh_due

OAUTH1, OAUTH2, PAT = AuthKind.OAUTH1, AuthKind.OAUTH2, AuthKind.PAT
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("kind, given, has_id, has_secret, fields", [
    (OAUTH1, set(), False, False, []),
    (OAUTH1, {"private_key_pem", "consumer_key"}, False, False, []),
    (OAUTH1, {"client_id", "client_secret"}, True, True, ["client_id", "client_secret"]),
    (OAUTH2, {"client_id", "client_secret"}, True, True, []),
    (OAUTH2, {"client_id"}, True, False, ["client_secret"]),
    (OAUTH2, set(), False, False, ["client_id", "client_secret"]),
    (OAUTH2, set(), True, True, []),  # a PATCH of another field: both are stored
    (OAUTH2, {"private_key_pem"}, True, True, ["private_key_pem"]),
    (PAT, set(), False, False, []),
    (PAT, {"consumer_key", "name"}, False, False, []),  # not a secret: kept for a later switch to oauth1
    (PAT, {"private_key_pem", "client_secret"}, False, True, ["client_secret", "private_key_pem"]),
])
def test_what_each_kind_needs_and_refuses(kind: AuthKind, given: set[str], has_id: bool, has_secret: bool,
                                          fields: list[str]) -> None:
    problems = auth_problems(kind, given=given, has_client_id=has_id, has_client_secret=has_secret)
    assert [name for name, _ in problems] == fields
    assert all(reason for _, reason in problems)


def test_a_field_of_another_kind_names_both_kinds() -> None:
    [(name, reason)] = auth_problems(PAT, given={"private_key_pem"}, has_client_id=False, has_client_secret=False)
    assert name == "private_key_pem" and "oauth1" in reason and "pat" in reason


@pytest.mark.parametrize("before, after, changed, link", [
    (OAUTH1, OAUTH1, ["name", "rate_limit_per_second"], []),
    (OAUTH1, OAUTH1, ["base_url"], ["base_url"]),
    (OAUTH1, OAUTH1, ["consumer_key", "key pair"], ["consumer_key", "key pair"]),
    (OAUTH1, OAUTH1, ["client_id"], []),  # stored for later, not used by oauth1
    (OAUTH2, OAUTH2, ["client_id"], ["client_id"]),
    (OAUTH2, OAUTH2, ["client_secret"], []),  # a new secret: JIRA's tokens stay valid
    (OAUTH2, OAUTH2, ["consumer_key", "key pair"], []),
    (PAT, PAT, ["consumer_key", "project_keys"], []),
    (PAT, PAT, ["base_url"], ["base_url"]),
    (OAUTH1, PAT, [], ["auth"]),
    (PAT, OAUTH1, ["key pair"], ["auth", "key pair"]),
    (PAT, OAUTH2, ["client_id", "client_secret"], ["auth", "client_id"]),
])
def test_what_makes_a_new_jira_link(before: AuthKind, after: AuthKind, changed: list[str], link: list[str]) -> None:
    assert link_changes(before, after, changed) == link


@pytest.mark.parametrize("lifetime, due_after", [
    (timedelta(hours=1), timedelta(minutes=55)),
    (timedelta(minutes=10), timedelta(minutes=5)),
    (timedelta(minutes=6), timedelta(minutes=3)),
    (timedelta(seconds=2), timedelta(seconds=1)),
])
def test_an_access_token_is_renewed_ahead_of_its_expiry(lifetime: timedelta, due_after: timedelta) -> None:
    due = refresh_due(T0, lifetime)
    assert due == T0 + due_after
    assert T0 < due < T0 + lifetime


@pytest.mark.parametrize("started_ago, leeway, may", [
    (None, timedelta(minutes=10), True),  # no renewal outstanding
    (None, None, True),
    (timedelta(minutes=2), timedelta(minutes=10), True),  # a lost answer: the same token again, within the leeway
    (timedelta(minutes=10), timedelta(minutes=10), False),  # beyond it the server would revoke the consent
    (timedelta(hours=5), timedelta(minutes=10), False),
    (timedelta(hours=5), None, True),  # Data Center refuses a spent token without revoking anything
])
def test_a_refresh_token_whose_renewal_was_lost_is_presented_only_within_the_leeway(
    started_ago: timedelta | None, leeway: timedelta | None, may: bool,
) -> None:
    started = None if started_ago is None else T0 - started_ago
    assert may_present_refresh_token(started, T0, leeway) is may
