"""Ticket look-ups for TimeTracker's UI (CONTRACT section 9), as the asking user, cached briefly in Redis.

The cache holds only what JIRA showed this user (key, summary, sub-task flag): per tenant, instance, user
and key, because two users may see different issues. Never a credential. Misses (404) are cached for a
shorter time so a ticket created a moment ago shows up soon.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app import redis_keys
from app.db.models import JiraInstanceRow
from app.db.repositories import jira as jira_repo
from app.jira.client import JiraClient, JiraTarget
from app.jira.egress import EgressRefused
from app.jira.errors import AuthRejected, JiraError, NotFound, RateLimited, TransientError
from app.services.audit import CallLog
from app.services.connect import connect_hint, reject_connection
from app.services.credentials import Credentials

log = logging.getLogger(__name__)

CACHE_SECONDS = 60
MISS_CACHE_SECONDS = 15


class NotConnected(Exception):
    """The user has no working connection to this instance (HTTP 409): they must connect first."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TicketNotFound(Exception):
    """JIRA has no such issue, or the user may not see it (HTTP 404)."""


class LookupFailed(Exception):
    """JIRA could not answer (HTTP 502, or 503 with `retry_after` when rate limited); `refused` when the egress
    rules refuse the instance's address and nothing was sent (HTTP 422)."""

    def __init__(self, message: str, *, retry_after: float | None = None, refused: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.refused = refused


@dataclass(frozen=True)
class Ticket:
    key: str
    summary: str
    subtask: bool
    parent: str | None


async def _cached(redis: Redis, key: str) -> Any:
    try:
        raw = await redis.get(key)
    except Exception as exc:  # a cache that is down only costs a JIRA request
        log.warning("ticket cache unavailable: %s", exc.__class__.__name__)
        return None
    return None if raw is None else json.loads(raw)


async def _store(redis: Redis, key: str, value: Any, seconds: int) -> None:
    try:
        await redis.set(key, json.dumps(value), ex=seconds)
    except Exception as exc:
        log.warning("ticket cache unavailable: %s", exc.__class__.__name__)


class TicketLookup:
    """One user's look-ups on one instance; JIRA calls are written to the audit log in `session`."""

    def __init__(self, session: AsyncSession, credentials: Credentials, jira: JiraClient, redis: Redis, *,
                 instance: JiraInstanceRow, user: str) -> None:
        self.session, self.credentials, self.jira, self.redis = session, credentials, jira, redis
        self.instance, self.user = instance, user
        self.calls = CallLog()

    def _key(self, kind: str, key: str) -> str:
        return redis_keys.ticket_cache(self.instance.tenant_id, self.instance.id, self.user, kind, key)

    async def _target(self) -> JiraTarget:
        connection = await jira_repo.get_connection(self.session, self.instance.tenant_id, self.instance.id,
                                                    self.user)
        target = self.credentials.user_target(self.instance, connection) if connection else None
        if target is None:
            state = "has not connected" if connection is None or connection.status == "denied" else \
                "must reconnect"
            raise NotConnected(f"{self.user} {state} a JIRA account for {self.instance.name}: "
                               f"{connect_hint(self.instance, self.user)}")
        return target

    async def ticket(self, key: str) -> Ticket:
        """The issue `key` as this user sees it; `TicketNotFound` when JIRA has none."""
        cache = self._key("issue", key)
        hit = await _cached(self.redis, cache)
        if hit is not None:
            if hit.get("missing"):
                raise TicketNotFound(key)
            return Ticket(**hit)
        target = await self._target()
        try:
            issue = await self.jira.get_issue(target, key, on_call=self.calls)
        except NotFound:
            await _store(self.redis, cache, {"missing": True}, MISS_CACHE_SECONDS)
            raise TicketNotFound(key) from None
        except JiraError as exc:
            await self._failed(exc)
        ticket = Ticket(issue.key or key, issue.summary, issue.subtask, issue.parent)
        await _store(self.redis, cache, asdict(ticket), CACHE_SECONDS)
        return ticket

    async def subtickets(self, key: str) -> list[Ticket]:
        """The sub-tasks of `key`; `TicketNotFound` when the parent does not exist (JIRA would answer 400)."""
        cache = self._key("subtasks", key)
        hit = await _cached(self.redis, cache)
        if hit is not None:
            return [Ticket(**t) for t in hit]
        await self.ticket(key)
        target = await self._target()
        try:
            issues = await self.jira.list_subtasks(target, key, on_call=self.calls)
        except JiraError as exc:
            await self._failed(exc)
        tickets = [Ticket(i.key, i.summary, True, i.parent) for i in issues]
        await _store(self.redis, cache, [asdict(t) for t in tickets], CACHE_SECONDS)
        return tickets

    async def _failed(self, exc: JiraError) -> NoReturn:
        name = self.instance.name
        if isinstance(exc, EgressRefused):
            raise LookupFailed(exc.message, refused=True)
        if isinstance(exc, AuthRejected):
            # CONTRACT 10.6: a rejected token makes the connection auth_required
            await reject_connection(self.session, tenant_id=self.instance.tenant_id, instance_id=self.instance.id,
                                    user=self.user, oauth_problem=exc.oauth_problem, context=" (ticket look-up)")
            raise NotConnected(f"JIRA {name} rejected {self.user}'s connection: reconnect; "
                               f"{connect_hint(self.instance, self.user)}")
        if isinstance(exc, RateLimited):
            raise LookupFailed(f"JIRA {name} is rate limiting requests; try again in {exc.retry_after:g} s",
                               retry_after=exc.retry_after)
        if isinstance(exc, TransientError):
            raise LookupFailed(f"JIRA {name} could not be reached: {exc.message}")
        raise LookupFailed(f"JIRA {name} refused the look-up: {exc.message}")

    def write_audit(self) -> None:
        """Add the audit rows of the JIRA calls made so far (the caller commits)."""
        self.calls.write(self.session, self.instance.tenant_id)
