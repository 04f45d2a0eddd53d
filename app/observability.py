"""Metrics across processes: every process adds its counter and histogram increments to shared Redis totals.

Workers run on many machines and nobody scrapes them, so each process (API and worker alike) periodically
turns what its `app.metrics.REGISTRY` counted since its last publication into `HINCRBYFLOAT`s on one Redis
hash. The totals there are therefore sums over every process that ever ran: they keep growing when a worker
restarts or dies (its increments were already added), and they only reset when Redis loses its data, which
Prometheus treats like any counter reset.

Gauges are not published: a gauge of one process means nothing for the fleet. The API computes the gauges at
scrape time from the source of truth instead (queue length from PostgreSQL, circuit state from Redis).

Redis keys (prefix `ttsync:metrics:v1`):
* `:samples` hash, field = JSON `[family, sample name, sorted label pairs]`, value = running total
* `:meta` hash, field = family name, value = JSON `[type, help]`
* `:publishers` sorted set, member = process id, score = last publication (unix seconds)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics_history, redis_keys
from app.logging_setup import log_context
from app.metrics import REGISTRY

log = logging.getLogger(__name__)

SAMPLES_KEY, META_KEY, PUBLISHERS_KEY = redis_keys.METRIC_SAMPLES, redis_keys.METRIC_META, redis_keys.METRIC_PUBLISHERS
PUBLISH_INTERVAL_SECONDS = 2.0
# a publisher silent for this long is no longer counted as alive
PUBLISHER_ALIVE_SECONDS = 30.0
_SUMMED_TYPES = ("counter", "histogram", "summary")

SampleKey = tuple[str, str, tuple[tuple[str, str], ...]]  # family, sample name, labels


def _field(key: SampleKey) -> str:
    family, name, labels = key
    return json.dumps([family, name, [list(p) for p in labels]], separators=(",", ":"))


def _parse_field(raw: str) -> SampleKey:
    family, name, labels = json.loads(raw)
    return str(family), str(name), tuple((str(k), str(v)) for k, v in labels)


def summed_samples(registry: CollectorRegistry) -> tuple[dict[SampleKey, float], dict[str, tuple[str, str]]]:
    """The additive samples (counters, histogram buckets/count/sum) of `registry`, and each family's type/help."""
    values: dict[SampleKey, float] = {}
    meta: dict[str, tuple[str, str]] = {}
    for family in registry.collect():
        if family.type not in _SUMMED_TYPES:
            continue
        meta[family.name] = (family.type, family.documentation)
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # a timestamp, not something to add up
            key = (family.name, sample.name, tuple(sorted(sample.labels.items())))
            values[key] = float(sample.value)
    return values, meta


@dataclass
class _Published:
    """What one registry has already handed to Redis (process-wide, like the registry itself)."""

    values: dict[SampleKey, float] = field(default_factory=dict)


# The registry is process-global, so what was published from it must be too: two publishers in one process
# (an API and an in-process worker, as in tests) would otherwise each add the same increments.
_PUBLISHED: dict[int, _Published] = {}


class MetricsPublisher:
    """Adds this process' metric increments to the shared Redis totals and to the history (app.metrics_history),
    every couple of seconds and at exit; and samples the history's gauges with `samplers` in the minutes this
    process claims."""

    def __init__(self, redis: Redis, *, registry: CollectorRegistry = REGISTRY, role: str = "process",
                 interval: float = PUBLISH_INTERVAL_SECONDS,
                 samplers: Iterable[metrics_history.GaugeSampler] = ()) -> None:
        self._redis = redis
        self._registry = registry
        self._interval = interval
        self._samplers = tuple(samplers)
        self._sampled_minute: int | None = None
        self.process_id = f"{role}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._published = _PUBLISHED.setdefault(id(registry), _Published())
        self._task: asyncio.Task[None] | None = None

    async def publish(self) -> int:
        """Send the increments since the last publication; returns how many samples changed."""
        current, meta = summed_samples(self._registry)
        last = self._published.values
        deltas = {k: v - last.get(k, 0.0) for k, v in current.items() if k not in last or v != last[k]}
        # claimed before the await, so a concurrent publish in this process cannot send the same increments
        last.update({k: current[k] for k in deltas})
        try:
            pipe = self._redis.pipeline(transaction=True)
            for key, delta in deltas.items():
                pipe.hincrbyfloat(SAMPLES_KEY, _field(key), delta)
            metrics_history.add_counters(pipe, metrics_history.series_increments(deltas), at=time.time())
            if meta:
                pipe.hset(META_KEY, mapping={name: json.dumps(list(tm)) for name, tm in meta.items()})
            pipe.zadd(PUBLISHERS_KEY, {self.process_id: time.time()})
            pipe.zremrangebyscore(PUBLISHERS_KEY, "-inf", time.time() - 24 * 3600)
            await pipe.execute()
        except BaseException:
            for key, delta in deltas.items():  # give them back: the next publication sends them
                last[key] = last.get(key, 0.0) - delta
            raise
        return len(deltas)

    async def sample_gauges(self, *, at: float | None = None) -> bool:
        """Once a minute per process: if this process is the first of the fleet to claim the minute, sample the
        gauges into the history. True when it did."""
        at = time.time() if at is None else at
        minute = metrics_history.bucket_start(at, metrics_history.MINUTE)
        if not self._samplers or minute == self._sampled_minute:
            return False
        self._sampled_minute = minute
        if not await metrics_history.claim_minute(self._redis, at=at):
            return False
        samples: metrics_history.SeriesValues = {}
        for sampler in self._samplers:
            for instance, series in (await sampler()).items():
                samples.setdefault(instance, {}).update(series)
        pipe = self._redis.pipeline(transaction=False)
        metrics_history.add_gauges(pipe, samples, at=at)
        await pipe.execute()
        return True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            for step in (self.publish, self.sample_gauges):
                try:
                    await step()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("could not publish metrics to Redis (%s): %s", step.__name__,
                                exc.__class__.__name__)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="metrics-publisher")

    async def stop(self) -> None:
        """Stop the loop and publish one last time (bounded: shutdown must not hang on Redis)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            async with asyncio.timeout(2.0):
                await self.publish()
            await self._redis.zrem(PUBLISHERS_KEY, self.process_id)
        except Exception as exc:
            log.warning("final metrics publication failed: %s", exc.__class__.__name__)


@dataclass(frozen=True)
class GaugeValue:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class GaugeFamily:
    name: str
    documentation: str
    values: list[GaugeValue]


def _sort_key(key: SampleKey) -> tuple[tuple[tuple[str, str], ...], int, float]:
    _family, name, labels = key
    without_le = tuple(p for p in labels if p[0] != "le")
    le = dict(labels).get("le")
    order = 0 if name.endswith("_bucket") else 1 if name.endswith("_count") else 2
    bound = math.inf if le in (None, "+Inf") else float(le)
    return without_le, order, bound


class _SharedTotals(Collector):
    """Presents Redis totals and fresh gauges as a Prometheus collector."""

    def __init__(self, totals: dict[SampleKey, float], meta: dict[str, tuple[str, str]],
                 gauges: Iterable[GaugeFamily]) -> None:
        self._totals = totals
        self._meta = meta
        self._gauges = list(gauges)

    def collect(self) -> Iterator[Metric]:
        # families known from metadata appear even before anything was counted (HELP/TYPE only)
        by_family: dict[str, list[SampleKey]] = {name: [] for name in self._meta}
        for key in self._totals:
            by_family.setdefault(key[0], []).append(key)
        for name in sorted(by_family):
            typ, doc = self._meta.get(name, ("untyped", ""))
            metric = Metric(name, doc, typ)
            for key in sorted(by_family[name], key=_sort_key):
                metric.add_sample(key[1], dict(key[2]), self._totals[key])
            yield metric
        for gauge in self._gauges:
            metric = Metric(gauge.name, gauge.documentation, "gauge")
            for v in gauge.values:
                metric.add_sample(gauge.name, v.labels, v.value)
            yield metric


async def read_totals(redis: Redis) -> tuple[dict[SampleKey, float], dict[str, tuple[str, str]]]:
    """The fleet-wide totals and family metadata from Redis."""
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(SAMPLES_KEY)
    pipe.hgetall(META_KEY)
    raw_samples, raw_meta = await pipe.execute()
    totals: dict[SampleKey, float] = {}
    for f, v in raw_samples.items():
        try:
            totals[_parse_field(f.decode() if isinstance(f, bytes) else f)] = float(v)
        except (ValueError, TypeError):
            continue  # a field this version cannot read (written by a newer one)
    meta: dict[str, tuple[str, str]] = {}
    for f, v in raw_meta.items():
        try:
            typ, doc = json.loads(v)
            meta[f.decode() if isinstance(f, bytes) else f] = (str(typ), str(doc))
        except (ValueError, TypeError):
            continue
    return totals, meta


async def alive_publishers(redis: Redis) -> int:
    return int(await redis.zcount(PUBLISHERS_KEY, time.time() - PUBLISHER_ALIVE_SECONDS, "+inf"))


def render(totals: dict[SampleKey, float], meta: dict[str, tuple[str, str]], gauges: Iterable[GaugeFamily]) -> bytes:
    """Prometheus text exposition of the merged metrics."""
    from prometheus_client import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SharedTotals(totals, meta, gauges))
    return generate_latest(registry)


# --- request ids -------------------------------------------------------------------------------------------------

REQUEST_ID_HEADER = b"x-request-id"
# a caller's id is kept only when it is harmless in a header and a log line (no CR/LF, bounded)
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


class RequestIdMiddleware:
    """Accepts the caller's `X-Request-ID` (or makes one), binds it to the request's logs and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k.lower() == REQUEST_ID_HEADER), b"")
        try:
            candidate = given.decode("ascii")
        except UnicodeDecodeError:
            candidate = ""
        request_id = candidate if _REQUEST_ID_RE.fullmatch(candidate) else uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        scope.setdefault("state", {})["request_id"] = request_id
        with log_context(request_id=request_id):
            await self.app(scope, receive, send_with_id)
