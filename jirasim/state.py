"""In-memory model of one simulated JIRA instance (users, issues, worklogs, OAuth)."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .config import (
    ConsumerConfig,
    InstanceConfig,
    IssueConfig,
    OAuth2ClientConfig,
    UserConfig,
    default_account_id,
)
from .timefmt import now_ms

FIRST_ISSUE_ID = 10000
FIRST_WORKLOG_ID = 10000
FIRST_USER_ID = 10100


@dataclass
class User:
    name: str
    display_name: str
    timezone: str
    key: str
    email: str
    active: bool = True
    account_id: str = ""  # Cloud: the Atlassian account id


@dataclass
class Issue:
    id: int
    key: str
    summary: str
    parent_key: str | None = None

    @property
    def is_subtask(self) -> bool:
        return self.parent_key is not None

    @property
    def project_key(self) -> str:
        return self.key.rsplit("-", 1)[0]


@dataclass
class Worklog:
    id: int
    issue_id: int
    author: str
    update_author: str
    comment: str
    started_ms: int
    time_spent_seconds: int
    created_ms: int
    updated_ms: int
    visibility: dict[str, Any] | None = None
    properties: dict[str, Any] = field(default_factory=dict)  # Cloud: entity properties by key


@dataclass
class Consumer:
    key: str
    public_key_pem: str
    name: str


@dataclass
class RequestToken:
    token: str
    secret: str
    consumer_key: str
    callback: str
    status: str = "new"  # new | authorized | denied | used
    verifier: str | None = None
    user: str | None = None
    created: float = field(default_factory=time.time)


@dataclass
class AccessToken:
    token: str
    secret: str
    consumer_key: str
    user: str
    created: float = field(default_factory=time.time)
    revoked: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "consumer_key": self.consumer_key,
            "user": self.user,
            "created": self.created,
            "revoked": self.revoked,
        }


@dataclass
class PersonalAccessToken:
    """A Data Center personal access token: sent as ``Authorization: Bearer``, acts as its user."""

    id: int
    name: str
    user: str
    token: str
    created: float
    expires_at: float | None = None
    revoked: bool = False
    last_used: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """As the control API shows it: never the token itself."""
        return {
            "id": self.id,
            "name": self.name,
            "user": self.user,
            "created": self.created,
            "expires_at": self.expires_at,
            "revoked": self.revoked,
            "last_used": self.last_used,
        }


@dataclass
class OAuth2Code:
    """An authorization code of the Data Center OAuth 2.0 provider (single use, short-lived)."""

    code: str
    client_id: str
    user: str
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: float
    challenge: str | None = None
    challenge_method: str | None = None
    used: bool = False


@dataclass
class OAuth2Grant:
    """One access/refresh token pair of the Data Center OAuth 2.0 provider."""

    access_token: str
    refresh_token: str
    client_id: str
    user: str
    scopes: tuple[str, ...]
    created: float
    access_expires_at: float
    refresh_expires_at: float
    revoked: bool = False
    replaced: bool = False  # refreshed: both tokens of this pair are spent

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "user": self.user,
            "scopes": list(self.scopes),
            "created": self.created,
            "access_expires_at": self.access_expires_at,
            "refresh_expires_at": self.refresh_expires_at,
            "revoked": self.revoked,
            "replaced": self.replaced,
        }


class NotFound(LookupError):
    """An issue, worklog or user does not exist."""


class InstanceState:
    """Mutable data of one instance. Not locked: used from one event loop."""

    def __init__(self, config: InstanceConfig) -> None:
        self.config = config
        self.users: dict[str, User] = {}
        self.issues_by_key: dict[str, Issue] = {}
        self.issues_by_id: dict[int, Issue] = {}
        self.worklogs: dict[int, Worklog] = {}
        self.deleted: dict[int, int] = {}  # worklog id -> deletion time (ms)
        self.consumers: dict[str, Consumer] = {}
        self.request_tokens: dict[str, RequestToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.nonces: dict[tuple[str, str], float] = {}
        self.pats: dict[str, PersonalAccessToken] = {}  # by token
        self.oauth2_clients: dict[str, OAuth2ClientConfig] = {}
        self.oauth2_codes: dict[str, OAuth2Code] = {}
        self.oauth2_access: dict[str, OAuth2Grant] = {}  # by access token
        self.oauth2_refresh: dict[str, OAuth2Grant] = {}  # by refresh token
        self.oauth2_counts: Counter[str] = Counter()  # code exchanges, refreshes, reuse, PKCE failures, ...
        self._next_pat_id = 1
        self._next_issue_id = FIRST_ISSUE_ID
        self._next_worklog_id = FIRST_WORKLOG_ID
        self._next_user_id = FIRST_USER_ID
        self.load_config()

    # -- setup -------------------------------------------------------------
    def load_config(self) -> None:
        """(Re)build the data from the instance configuration."""
        self.users.clear()
        self.issues_by_key.clear()
        self.issues_by_id.clear()
        self.worklogs.clear()
        self.deleted.clear()
        self.consumers.clear()
        self.request_tokens.clear()
        self.access_tokens.clear()
        self.nonces.clear()
        self.pats.clear()
        self.oauth2_clients = {c.client_id: c for c in self.config.oauth2_clients}
        self.oauth2_codes.clear()
        self.oauth2_access.clear()
        self.oauth2_refresh.clear()
        self.oauth2_counts.clear()
        self._next_pat_id = 1
        self._next_issue_id = FIRST_ISSUE_ID
        self._next_worklog_id = FIRST_WORKLOG_ID
        self._next_user_id = FIRST_USER_ID
        for c in self.config.consumers:
            self.add_consumer(c)
        for u in self.config.users:
            self.add_user(u)
        for i in self.config.issues:
            self.add_issue(i)
        for p in self.config.personal_access_tokens:
            self.add_pat(p.user, p.name, p.expiration_days, p.token)

    def add_consumer(self, c: ConsumerConfig) -> Consumer:
        consumer = Consumer(key=c.consumer_key, public_key_pem=c.public_key_pem, name=c.name)
        self.consumers[c.consumer_key] = consumer
        return consumer

    def add_user(self, u: UserConfig) -> User:
        key = u.key
        if not key:
            key = f"JIRAUSER{self._next_user_id}"
            self._next_user_id += 1
        user = User(
            name=u.name,
            display_name=u.display_name or u.name,
            timezone=u.timezone,
            key=key,
            email=u.email or f"{u.name}@example.com",
            active=u.active,
            account_id=u.account_id or default_account_id(u.name),
        )
        self.users[u.name] = user
        return user

    def add_issue(self, i: IssueConfig) -> Issue:
        if i.parent is not None and i.parent not in self.issues_by_key:
            raise NotFound(f"parent issue {i.parent} does not exist")
        if i.id is not None:
            issue_id = i.id
            self._next_issue_id = max(self._next_issue_id, issue_id + 1)
        else:
            issue_id = self._next_issue_id
            self._next_issue_id += 1
        if i.key in self.issues_by_key or issue_id in self.issues_by_id:
            raise ValueError(f"issue {i.key} / {issue_id} already exists")
        issue = Issue(id=issue_id, key=i.key, summary=i.summary or i.key, parent_key=i.parent)
        self.issues_by_key[issue.key] = issue
        self.issues_by_id[issue.id] = issue
        return issue

    def add_pat(
        self, user: str, name: str, expiration_days: int | None, token: str | None = None
    ) -> PersonalAccessToken:
        """A new personal access token of ``user`` (``token`` given: that value, else a random one)."""
        if user not in self.users:
            raise NotFound(f"unknown user {user!r}")
        if token is not None and token in self.pats:
            raise ValueError("that personal access token already exists")
        now = time.time()
        pat = PersonalAccessToken(
            id=self._next_pat_id,
            name=name,
            user=user,
            token=token or secrets.token_urlsafe(33),
            created=now,
            expires_at=now + expiration_days * 86400 if expiration_days else None,
        )
        self._next_pat_id += 1
        self.pats[pat.token] = pat
        return pat

    # -- lookups -------------------------------------------------------------
    def user_by_account(self, account_id: str) -> User | None:
        return next((u for u in self.users.values() if u.account_id == account_id), None)

    def find_issue(self, id_or_key: str) -> Issue | None:
        if id_or_key.isdigit():
            return self.issues_by_id.get(int(id_or_key))
        issue = self.issues_by_key.get(id_or_key)
        if issue is None:
            # JIRA also finds keys case-insensitively
            upper = id_or_key.upper()
            issue = self.issues_by_key.get(upper)
        return issue

    def subtasks_of(self, parent_key: str) -> list[Issue]:
        return [i for i in self.issues_by_key.values() if i.parent_key == parent_key]

    def worklogs_of(self, issue: Issue) -> list[Worklog]:
        return sorted(
            (w for w in self.worklogs.values() if w.issue_id == issue.id),
            key=lambda w: (w.created_ms, w.id),
        )

    def worklog_counts(self) -> dict[str, int]:
        counts = {key: 0 for key in self.issues_by_key}
        for w in self.worklogs.values():
            issue = self.issues_by_id.get(w.issue_id)
            if issue is not None:
                counts[issue.key] += 1
        return counts

    # -- worklog mutations -----------------------------------------------------
    def create_worklog(
        self,
        issue: Issue,
        author: str,
        started_ms: int,
        time_spent_seconds: int,
        comment: str = "",
        visibility: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
    ) -> Worklog:
        now = now_ms()
        worklog = Worklog(
            id=self._next_worklog_id,
            issue_id=issue.id,
            author=author,
            update_author=author,
            comment=comment,
            started_ms=started_ms,
            time_spent_seconds=time_spent_seconds,
            created_ms=now,
            updated_ms=now,
            visibility=visibility,
            properties=dict(properties or {}),
        )
        self._next_worklog_id += 1
        self.worklogs[worklog.id] = worklog
        return worklog

    def update_worklog(
        self,
        worklog: Worklog,
        update_author: str,
        *,
        started_ms: int | None = None,
        time_spent_seconds: int | None = None,
        comment: str | None = None,
        visibility: dict[str, Any] | None = None,
        updated_ms: int | None = None,
        properties: dict[str, Any] | None = None,
    ) -> Worklog:
        """`updated_ms` stamps the change at an earlier instant than now: a change JIRA's feeds show late
        (the reason they leave out the last minute, and pollers overlap their windows)."""
        if started_ms is not None:
            worklog.started_ms = started_ms
        if time_spent_seconds is not None:
            worklog.time_spent_seconds = time_spent_seconds
        if comment is not None:
            worklog.comment = comment
        if visibility is not None:
            worklog.visibility = visibility
        if properties:
            worklog.properties.update(properties)
        worklog.update_author = update_author
        worklog.updated_ms = updated_ms if updated_ms is not None else max(now_ms(), worklog.updated_ms)
        return worklog

    def delete_worklog(self, worklog: Worklog) -> int:
        del self.worklogs[worklog.id]
        deleted_at = now_ms()
        self.deleted[worklog.id] = deleted_at
        return deleted_at

    # -- change feeds ----------------------------------------------------------
    def updated_since(self, since_ms: int, until_ms: int, limit: int) -> list[tuple[int, int]]:
        """(worklog id, updated ms) with since <= updated <= until, oldest first."""
        items = sorted((w.updated_ms, w.id) for w in self.worklogs.values() if since_ms <= w.updated_ms <= until_ms)
        return [(wid, ts) for ts, wid in items[:limit]]

    def deleted_since(self, since_ms: int, until_ms: int, limit: int) -> list[tuple[int, int]]:
        items = sorted((ts, wid) for wid, ts in self.deleted.items() if since_ms <= ts <= until_ms)
        return [(wid, ts) for ts, wid in items[:limit]]

    # -- OAuth bookkeeping ---------------------------------------------------------
    def remember_nonce(self, consumer_key: str, nonce: str, expires_at: float) -> bool:
        """Store a nonce; False if it was already used (and has not expired)."""
        now = time.time()
        if len(self.nonces) > 10000:
            self.nonces = {k: v for k, v in self.nonces.items() if v > now}
        key = (consumer_key, nonce)
        previous = self.nonces.get(key)
        if previous is not None and previous > now:
            return False
        self.nonces[key] = expires_at
        return True

    def revoke_tokens(
        self,
        user: str | None = None,
        token: str | None = None,
        consumer_key: str | None = None,
    ) -> int:
        count = 0
        for t in self.access_tokens.values():
            if t.revoked:
                continue
            if user is not None and t.user != user:
                continue
            if token is not None and t.token != token:
                continue
            if consumer_key is not None and t.consumer_key != consumer_key:
                continue
            t.revoked = True
            count += 1
        return count

    def revoke_pats(self, user: str | None = None, pat_id: int | None = None) -> int:
        count = 0
        for pat in self.pats.values():
            if pat.revoked or (user is not None and pat.user != user) or (pat_id is not None and pat.id != pat_id):
                continue
            pat.revoked = True
            count += 1
        return count
