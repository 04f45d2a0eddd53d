"""Fire-and-forget, HMAC-signed webhook delivery (worklog_created/updated/deleted)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .config import WebhookConfig
from .control import shared_ssl_context

EVENT_TYPES = ("worklog_created", "worklog_updated", "worklog_deleted")
MAX_EVENTS = 10_000


def sign_body(secret: str, body: bytes) -> str:
    """Value of the ``X-Hub-Signature`` header: ``sha256=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass
class Delivery:
    time: float
    status: int | None
    error: str | None
    duplicate: bool
    resend: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "status": self.status,
            "error": self.error,
            "duplicate": self.duplicate,
            "resend": self.resend,
        }


@dataclass
class WebhookEvent:
    id: int
    instance: str
    event: str
    worklog_id: int
    timestamp: int
    body: bytes
    deliveries: list[Delivery] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "instance": self.instance,
            "webhookEvent": self.event,
            "worklogId": self.worklog_id,
            "timestamp": self.timestamp,
            "payload": json.loads(self.body),
            "deliveries": [d.to_dict() for d in self.deliveries],
        }


class WebhookDispatcher:
    """Keeps the event history and sends webhooks in background tasks."""

    def __init__(self, on_result: Callable[[str, bool], None] | None = None) -> None:
        self.events: deque[WebhookEvent] = deque(maxlen=MAX_EVENTS)
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._on_result = on_result

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False, verify=shared_ssl_context())
        return self._client

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def emit(self, instance: str, config: WebhookConfig, event: str, worklog: dict[str, Any]) -> WebhookEvent | None:
        """Record an event and, if a target is configured, deliver it asynchronously."""
        if event not in EVENT_TYPES:
            raise ValueError(event)
        timestamp = int(time.time() * 1000)
        payload = {"timestamp": timestamp, "webhookEvent": event, "worklog": worklog}
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        record = WebhookEvent(
            id=next(self._ids),
            instance=instance,
            event=event,
            worklog_id=int(worklog["id"]),
            timestamp=timestamp,
            body=body,
        )
        self.events.append(record)
        if config.url:
            for copy in range(1 + config.duplicates):
                self._spawn(record, config, duplicate=copy > 0, resend=False)
        return record

    def resend(self, event_id: int, config: WebhookConfig) -> WebhookEvent:
        record = self.find(event_id)
        if not config.url:
            raise LookupError("no webhook target configured")
        self._spawn(record, config, duplicate=False, resend=True)
        return record

    def find(self, event_id: int) -> WebhookEvent:
        for record in self.events:
            if record.id == event_id:
                return record
        raise LookupError(f"no webhook event {event_id}")

    def for_instance(self, instance: str) -> list[WebhookEvent]:
        return [e for e in self.events if e.instance == instance]

    def clear(self, instance: str | None = None) -> None:
        if instance is None:
            self.events.clear()
        else:
            self.events = deque((e for e in self.events if e.instance != instance), maxlen=MAX_EVENTS)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until pending deliveries are done (handy in tests)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    def _spawn(self, record: WebhookEvent, config: WebhookConfig, *, duplicate: bool, resend: bool) -> None:
        url, secret = config.url, config.secret
        assert url is not None
        task = asyncio.get_running_loop().create_task(self._deliver(record, url, secret, config, duplicate, resend))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self,
        record: WebhookEvent,
        url: str,
        secret: str,
        config: WebhookConfig,
        duplicate: bool,
        resend: bool,
    ) -> None:
        if config.delay_ms:
            await asyncio.sleep(config.delay_ms / 1000.0)
        headers = {"Content-Type": "application/json", "User-Agent": "Atlassian HttpClient (jirasim)"}
        if secret:
            headers["X-Hub-Signature"] = sign_body(secret, record.body)
        status: int | None = None
        error: str | None = None
        try:
            response = await self._http().post(
                url, content=record.body, headers=headers, timeout=config.timeout_seconds
            )
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        record.deliveries.append(
            Delivery(time=time.time(), status=status, error=error, duplicate=duplicate, resend=resend)
        )
        if self._on_result is not None:
            self._on_result(record.instance, status is not None and 200 <= status < 300)
