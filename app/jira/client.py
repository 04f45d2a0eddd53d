"""The JIRA REST client (Server/DC, and Jira Cloud through Atlassian's gateway): every request authenticated, gated
and observed.

One `JiraClient` per process wraps the process's pooled `httpx.AsyncClient`. Operations take a
`JiraTarget` (instance, credential, priority, deployment) and return small dataclasses; failures are raised as the
taxonomy in `app.jira.errors`. How a request is authenticated is the target's `Credential`
(`app.jira.credentials`: OAuth 1.0a, personal access token, OAuth 2.0 with refresh); the client only asks it.
A 429 is waited out and retried here, a bounded number of times, without the caller noticing, and a 401 is
retried once when the credential could be renewed; everything else is the caller's decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx

from app import metrics
from app.budget import ByteBudget
from app.config import Settings
from app.domain.auth import Deployment
from app.domain.cloud_limits import LimitReason, objects_returned
from app.domain.priority import Priority
from app.domain.worklog import WorklogBody, WorklogMarker, our_worklog
from app.jira.calls import JiraCall, OnCall, notify, outcome_of, record_metrics
from app.jira.credentials import Credential
from app.jira.egress import EgressPolicy, EgressRefused, resolver_for
from app.jira.errors import (
    AuthRejected,
    JiraError,
    NotFound,
    RateLimited,
    TransientError,
    error_from_exception,
    error_from_response,
)
from app.jira.gate import InstanceRef, RequestGate, response_header
from app.jira.resources import Issue, JiraUser, JsonObject, RemoteWorklog, WorklogChange, WorklogChanges
from app.jira.transport import ACCEPT_ENCODING, InstanceSlots, jira_http_client, read_bounded

API = "/rest/api/2"
WORKLOG_LIST_CHUNK = 1000  # JIRA answers 400 to worklog/list with more ids
_PAGE_SIZE = 100
_WORKLOG_PAGE_SIZE = 1000
_MAX_PAGES = 10_000  # a feed that never reaches its last page is a JIRA bug, not a reason to loop forever
# worklog writes must not touch the issue's remaining estimate (spec: adjustEstimate=new|leave|manual|auto)
_LEAVE_ESTIMATE = {"adjustEstimate": "leave"}


@dataclass(frozen=True)
class JiraTarget:
    """Where and as whom a request goes: the instance (its rate limit), the base URL and the credential.

    `base_url` may carry a context path (`https://host/jira`) and a trailing slash; on Jira Cloud it is the site's
    base behind Atlassian's gateway (`<api>/ex/jira/<cloudId>`), and worklogs have properties there.
    """

    instance: InstanceRef
    base_url: str
    credential: Credential = field(repr=False)
    priority: Priority = Priority.USER
    # how long a request may wait for its slot (a 429's pause, an open circuit) before `GateClosed`; None: no limit
    max_wait: float | None = None
    deployment: Deployment = Deployment.DATACENTER

    @property
    def has_worklog_properties(self) -> bool:
        """Jira Cloud keeps worklog properties; Server/DC refuses a body that carries them."""
        return self.deployment is Deployment.CLOUD

    def url(self, path: str) -> str:
        """The absolute URL of a path below the base URL (context path kept)."""
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")


def _query(params: Mapping[str, str | int] | None) -> str:
    # %20 rather than '+' for spaces: what is signed and what JIRA decodes then cannot differ
    return urlencode({k: str(v) for k, v in params.items()}, quote_via=quote, safe="") if params else ""


def _objects(target: JiraTarget, method: str, answer: JiraAnswer) -> int:
    """How many objects a successful Cloud read returned (each costs the app a point); 0 otherwise."""
    if target.deployment is not Deployment.CLOUD or method != "GET" or not 200 <= answer.status_code < 300:
        return 0
    try:
        return objects_returned(json.loads(answer.content))
    except ValueError:
        return 0


def _segment(value: str) -> str:
    return quote(str(value), safe="")


@dataclass(frozen=True)
class JiraAnswer:
    """A complete 2xx answer (already read whole, within the size cap and the deadline)."""

    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


def jira_client_from_settings(
    settings: Settings, gate: RequestGate, egress: EgressPolicy | None = None,
) -> tuple[httpx.AsyncClient, JiraClient]:
    """The process's pooled, egress-checked HTTP client and the JIRA client on it, bounded as section 11 says."""
    policy = egress or EgressPolicy(settings.jira_allowed_networks,
                                    resolver=resolver_for(settings.jira_name_resolution))
    http = jira_http_client(policy, timeout_seconds=settings.jira_timeout_seconds)
    client = JiraClient(http, gate=gate, timeout_seconds=settings.jira_timeout_seconds,
                        max_response_bytes=settings.jira_max_response_bytes,
                        connections_per_instance=settings.jira_max_connections_per_instance)
    return http, client


class JiraClient:
    """Signed, gated, observed access to JIRA Server/DC instances, sharing one connection pool."""

    def __init__(
        self, http: httpx.AsyncClient, *, gate: RequestGate, timeout_seconds: float = 30.0,
        on_call: OnCall | None = None, max_rate_limit_retries: int = 3, max_inline_wait_seconds: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_response_bytes: int = 8 * 1024 * 1024, connections_per_instance: int = 10,
    ) -> None:
        self._http = http
        self._gate = gate
        self._deadline = timeout_seconds
        self._max_response_bytes = max_response_bytes
        # answers being read at once hold at most about two of the largest allowed answer (see app.budget)
        self._answers = ByteBudget(max_response_bytes)
        self._slots = InstanceSlots(connections_per_instance)
        self._on_call = on_call
        self._max_rate_limit_retries = max_rate_limit_retries
        self._max_inline_wait = max_inline_wait_seconds
        self._sleep = sleep

    # -- the one way a request goes out ---------------------------------------------------------------

    async def request(
        self, target: JiraTarget, method: str, path: str, *, operation: str,
        params: Mapping[str, str | int] | None = None, json_body: object = None,
        form: Mapping[str, str] | None = None, on_call: OnCall | None = None, write_to: str | None = None,
    ) -> JiraAnswer:
        """Send one authenticated request through the gate and return its 2xx answer; raise a `JiraError` otherwise.

        `path` is relative to the base URL (e.g. `/rest/api/2/myself`); the body is `json_body` as JSON or `form`
        form-encoded (token endpoints). 429s are retried after their `Retry-After`, a 401 once when the credential
        was renewed; each attempt is reported to the observers as its own `JiraCall`. `write_to` names the issue a
        write changes (Jira Cloud's per-issue write limits).
        """
        query = _query(params)
        url = target.url(path) + (f"?{query}" if query else "")
        headers = {"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING, "X-Atlassian-Token": "no-check"}
        if form is not None:
            body = _query(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            body = b"" if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
            if body:
                headers["Content-Type"] = "application/json"
        observers = tuple(o for o in (self._on_call, on_call) if o is not None)
        instance, credential = target.instance, target.credential
        # before the gate: a renewal is a request of its own, through the gate like any other
        await credential.prepare(on_call)

        attempt = 0
        renewed = False
        while True:
            # a connection first, then the rate-limit slot: a request never waits for a connection after its slot
            # (it would reach JIRA later than the limiter counted it)
            async with self._connection(instance):
                waited = await self._gate.acquire(instance, target.priority, max_wait=target.max_wait,
                                                 write_to=write_to)
                metrics.RATE_LIMITER_WAIT.labels(str(instance.id)).observe(waited)
                request = self._http.build_request(method, url, content=body, headers=headers)
                # authenticate the URL exactly as httpx will send it, after the wait (an OAuth 1.0a timestamp is
                # fresh)
                authorization = credential.authorization(method, str(request.url), body)
                if authorization is not None:
                    request.headers["Authorization"] = authorization
                started = time.perf_counter()
                try:
                    response = await self._exchange(request, instance)
                except EgressRefused as refused:
                    # nothing was sent: recorded as a call (the audit shows why), but JIRA saw nothing to count
                    await self._gate.observe(instance, None, {}, sent=False)
                    await self._report(observers, instance, operation, request, None, refused, started, waited)
                    raise
                except JiraError as error:
                    await self._gate.observe(instance, None, {})
                    await self._report(observers, instance, operation, request, None, error, started, waited)
                    raise
                await self._gate.observe(instance, response.status_code, response.headers, write_to=write_to,
                                         objects=_objects(target, method, response))
            maybe_error = error_from_response(response.status_code, response.headers, response.content)
            await self._report(observers, instance, operation, request, response.status_code, maybe_error,
                               started, waited)
            if maybe_error is None:
                return response
            if isinstance(maybe_error, AuthRejected) and not renewed and await credential.renew_after_rejection(
                    on_call):
                renewed = True  # a 401 applied nothing: the same request once more with the renewed credential
                continue
            patience = min(self._max_inline_wait, math.inf if target.max_wait is None else target.max_wait)
            if (isinstance(maybe_error, RateLimited) and attempt < self._max_rate_limit_retries
                    and maybe_error.retry_after <= patience):
                attempt += 1
                await self._sleep(maybe_error.retry_after)
                continue
            if (isinstance(maybe_error, RateLimited) and write_to and target.deployment is Deployment.CLOUD
                    and response_header(response.headers, "ratelimit-reason") == LimitReason.PER_ISSUE):
                maybe_error.issue = write_to  # only this issue's writes wait (the gate paused just the issue)
            raise maybe_error

    @contextlib.asynccontextmanager
    async def _connection(self, instance: InstanceRef) -> AsyncIterator[None]:
        """One of the instance's connection slots in this process (waiting at most the JIRA timeout for one)."""
        slot = self._slots.slot(instance.id)
        try:
            async with asyncio.timeout(self._deadline):
                await slot.__aenter__()
        except TimeoutError:
            raise TransientError("too many requests to this JIRA in flight; none was free in time",
                                 maybe_applied=False) from None
        try:
            yield
        finally:
            await slot.__aexit__(None, None, None)

    async def _exchange(self, request: httpx.Request, instance: InstanceRef) -> JiraAnswer:
        """Send `request` and read its whole answer under one deadline (CONTRACT 11: connect, send and the
        complete answer); failures as `JiraError`s. The caller holds one of the instance's connection slots."""
        async def trace(event: str, info: Mapping[str, Any]) -> None:
            if event.endswith("send_request_body.complete"):
                self._gate.left(instance)  # the gate counts the request from when it was really written

        request.extensions["trace"] = trace
        try:
            async with asyncio.timeout(self._deadline):
                try:
                    response = await self._http.send(request, stream=True)
                finally:
                    self._gate.left(instance)  # (a no-op when the trace said so already)
                try:
                    content = await read_bounded(response, self._max_response_bytes, self._answers)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise TransientError(f"JIRA did not answer completely within {self._deadline:g} s "
                                 "(the request may have been applied)", maybe_applied=True) from None
        except httpx.HTTPError as exc:
            raise error_from_exception(exc) from None
        return JiraAnswer(response.status_code, response.headers, content)

    async def _report(
        self, observers: tuple[OnCall, ...], instance: InstanceRef, operation: str, request: httpx.Request,
        status: int | None, error: JiraError | None, started: float, waited: float,
    ) -> None:
        call = JiraCall(
            instance_id=instance.id, operation=operation, method=request.method, path=request.url.path,
            status=status, outcome=outcome_of(error),
            duration_ms=round((time.perf_counter() - started) * 1000),
            detail=error.message[:300] if error else "", gate_wait_ms=round(waited * 1000),
        )
        record_metrics(call)
        await notify(observers, call)

    async def _json(self, target: JiraTarget, method: str, path: str, *, operation: str, **kw: Any) -> Any:
        response = await self.request(target, method, path, operation=operation, **kw)
        try:
            return response.json()
        except ValueError:
            # e.g. a proxy's HTML page with status 200: we cannot tell what JIRA did
            raise TransientError(f"JIRA answered {operation} with a body that is not JSON",
                                 maybe_applied=True, status=response.status_code) from None

    # -- worklogs ------------------------------------------------------------------------------------

    @staticmethod
    def _worklog_json(target: JiraTarget, body: WorklogBody, marker: WorklogMarker | None) -> dict[str, object]:
        data = body.as_json()
        if marker is not None and target.has_worklog_properties:
            data["properties"] = [marker.as_property()]
        return data

    async def create_worklog(
        self, target: JiraTarget, issue_key: str, body: WorklogBody, *, marker: WorklogMarker | None = None,
        on_call: OnCall | None = None,
    ) -> RemoteWorklog:
        """Add a worklog to an issue, leaving the issue's remaining estimate alone; on Cloud with `marker` as its
        worklog property (in the same request)."""
        data = await self._json(target, "POST", f"{API}/issue/{_segment(issue_key)}/worklog",
                                operation="create_worklog", params=_LEAVE_ESTIMATE,
                                json_body=self._worklog_json(target, body, marker), on_call=on_call,
                                write_to=issue_key)
        return RemoteWorklog.from_json(data)

    async def update_worklog(
        self, target: JiraTarget, issue_key: str, worklog_id: str, body: WorklogBody, *,
        marker: WorklogMarker | None = None, on_call: OnCall | None = None,
    ) -> RemoteWorklog:
        """Overwrite a worklog's started, timeSpentSeconds and comment, leaving the estimate alone (on Cloud, and
        its `marker` property)."""
        data = await self._json(
            target, "PUT", f"{API}/issue/{_segment(issue_key)}/worklog/{_segment(worklog_id)}",
            operation="update_worklog", params=_LEAVE_ESTIMATE, json_body=self._worklog_json(target, body, marker),
            on_call=on_call, write_to=issue_key)
        return RemoteWorklog.from_json(data)

    async def delete_worklog(
        self, target: JiraTarget, issue_key: str, worklog_id: str, *, on_call: OnCall | None = None,
    ) -> bool:
        """Delete a worklog; True when deleted now, False when JIRA had none (404 means already gone).

        A 404 cannot tell "no such worklog" from "no such issue" or "not visible to this user"; for a
        delete each means there is nothing of ours left to remove, so it is not an error.
        """
        try:
            await self.request(target, "DELETE", f"{API}/issue/{_segment(issue_key)}/worklog/{_segment(worklog_id)}",
                               operation="delete_worklog", params=_LEAVE_ESTIMATE, on_call=on_call,
                               write_to=issue_key)
        except NotFound:
            return False
        return True

    async def get_worklog(
        self, target: JiraTarget, issue_key: str, worklog_id: str, *, on_call: OnCall | None = None,
    ) -> RemoteWorklog:
        """One worklog; raises `NotFound` when it (or its issue) does not exist."""
        data = await self._json(target, "GET", f"{API}/issue/{_segment(issue_key)}/worklog/{_segment(worklog_id)}",
                                operation="get_worklog", on_call=on_call)
        return RemoteWorklog.from_json(data)

    async def list_issue_worklogs(
        self, target: JiraTarget, issue_key: str, *, on_call: OnCall | None = None,
    ) -> list[RemoteWorklog]:
        """Every worklog of an issue (on Cloud with their properties), following startAt/maxResults until `total`."""
        found: list[RemoteWorklog] = []
        start = 0
        expand = {"expand": "properties"} if target.has_worklog_properties else {}
        for _ in range(_MAX_PAGES):
            data = await self._json(target, "GET", f"{API}/issue/{_segment(issue_key)}/worklog",
                                    operation="list_issue_worklogs",
                                    params={"startAt": start, "maxResults": _WORKLOG_PAGE_SIZE, **expand},
                                    on_call=on_call)
            page = [RemoteWorklog.from_json(w) for w in data.get("worklogs") or []]
            page_start = int(data.get("startAt") or 0)
            if page_start < start:
                break  # JIRA ignored startAt and sent everything from the beginning again
            found.extend(page)
            start = page_start + len(page)
            if not page or start >= int(data.get("total") or 0):
                break
        return found

    async def find_our_worklog(
        self, target: JiraTarget, issue_key: str, marker: WorklogMarker, *, author: str,
        on_call: OnCall | None = None,
    ) -> RemoteWorklog | None:
        """The issue's worklog of the entry `marker` names, written by `author` (the connection's JIRA user): on Cloud
        found by its worklog property first, else by the `#<entry>:` anchor (`app.domain.worklog.our_worklog`)."""
        return our_worklog(await self.list_issue_worklogs(target, issue_key, on_call=on_call), marker=marker,
                           author=author)

    async def worklogs_updated_since(
        self, target: JiraTarget, since_ms: int, *, on_call: OnCall | None = None,
    ) -> WorklogChanges:
        """Worklogs created or updated since `since_ms` (epoch ms), all pages."""
        return await self._changed_since(target, "updated", since_ms, on_call)

    async def worklogs_deleted_since(
        self, target: JiraTarget, since_ms: int, *, on_call: OnCall | None = None,
    ) -> WorklogChanges:
        """Worklogs deleted since `since_ms` (epoch ms), all pages."""
        return await self._changed_since(target, "deleted", since_ms, on_call)

    async def _changed_since(
        self, target: JiraTarget, kind: str, since_ms: int, on_call: OnCall | None,
    ) -> WorklogChanges:
        values: list[WorklogChange] = []
        since = since_ms
        until = since_ms
        for _ in range(_MAX_PAGES):
            data = await self._json(target, "GET", f"{API}/worklog/{kind}", operation=f"worklogs_{kind}_since",
                                    params={"since": since}, on_call=on_call)
            values.extend(WorklogChange.from_json(v) for v in data.get("values") or [])
            until = max(until, int(data.get("until") or since))
            last = data.get("lastPage", data.get("isLastPage", True))
            next_page = data.get("nextPage")
            if last or not next_page:
                break
            # follow nextPage's `since`, but on our base URL: JIRA builds nextPage from its own idea of its
            # address, which behind a proxy is not the one we can reach (or sign for)
            next_since = dict(parse_qsl(urlsplit(str(next_page)).query)).get("since")
            if next_since is None or int(next_since) <= since:
                break
            since = int(next_since)
        return WorklogChanges(tuple(values), since_ms, until)

    async def worklog_list(
        self, target: JiraTarget, ids: Iterable[str | int], *, on_call: OnCall | None = None,
    ) -> list[RemoteWorklog]:
        """The worklogs with these ids (those still visible), asked for in chunks of at most 1000."""
        unique = list(dict.fromkeys(int(i) for i in ids))
        found: list[RemoteWorklog] = []
        for offset in range(0, len(unique), WORKLOG_LIST_CHUNK):
            chunk = unique[offset : offset + WORKLOG_LIST_CHUNK]
            data = await self._json(target, "POST", f"{API}/worklog/list", operation="worklog_list",
                                    json_body={"ids": chunk}, on_call=on_call)
            found.extend(RemoteWorklog.from_json(w) for w in data or [])
        return found

    # -- issues and users ---------------------------------------------------------------------------

    async def get_issue(self, target: JiraTarget, key: str, *, on_call: OnCall | None = None) -> Issue:
        """An issue's key, id, summary, sub-task flag and parent; raises `NotFound` for an unknown key."""
        data = await self._json(target, "GET", f"{API}/issue/{_segment(key)}", operation="get_issue",
                                params={"fields": "summary,issuetype,parent"}, on_call=on_call)
        return Issue.from_json(data)

    async def list_subtasks(self, target: JiraTarget, key: str, *, on_call: OnCall | None = None) -> list[Issue]:
        """The sub-tasks of an issue (JQL `parent = "KEY"`), all pages.

        JIRA answers 400 (a `PermanentError`) when the parent key does not exist.
        """
        jql = 'parent = "{}"'.format(key.replace("\\", "\\\\").replace('"', '\\"'))
        issues: list[Issue] = []
        start = 0
        for _ in range(_MAX_PAGES):
            data = await self._json(target, "GET", f"{API}/search", operation="list_subtasks", on_call=on_call,
                                    params={"jql": jql, "fields": "summary,issuetype,parent",
                                            "startAt": start, "maxResults": _PAGE_SIZE})
            page = [Issue.from_json(i) for i in data.get("issues") or []]
            issues.extend(page)
            start = int(data.get("startAt") or start) + len(page)
            if not page or start >= int(data.get("total") or 0):
                break
        return issues

    async def myself(self, target: JiraTarget, *, on_call: OnCall | None = None) -> JiraUser:
        """The user the target's access token acts for; a cheap way to check a connection works."""
        data: JsonObject = await self._json(target, "GET", f"{API}/myself", operation="myself", on_call=on_call)
        return JiraUser.from_json(data)

