"""The fleet's recent history, per JIRA instance, for the operator dashboard's charts (last hour, last 24 hours).

Fed by what the processes already report: every publication of metric increments (`app.observability`, every 2 s
from the API and every worker) also adds them, condensed per instance into a few series, to time buckets in Redis;
and once a minute one process of the fleet (whichever claims the minute first) samples the gauges (queue length,
circuit state, a Cloud site's points this hour).

Storage, bounded: one hash per instance and bucket, `ttsync:metrics:v1:hist:{<instance>}:<step>:<bucket start>`,
field = series, value = number. Two resolutions: 60-s buckets kept 2 hours (the last hour), 300-s buckets kept
25 hours (the last day) — about 420 small hashes of some 30 fields per active instance; an instance without
traffic writes nothing. Counters are added (HINCRBYFLOAT); a gauge sample is stored as `<series>@<minute>` so a
300-s bucket keeps its five samples (the reader shows their maximum: the queue's peak, whether the circuit was
open at all).

Series (what the dashboard shows next to them, in plain words, is the page's business):
* `requests`, `writes`: requests sent to JIRA, and of those worklog writes (create, update, delete);
* `status_429`: JIRA's "slow down" answers;
* `fail_no_answer` (timeout, connection error), `fail_auth` (401), `fail_refused` (other 4xx), `fail_server` (5xx);
* `lat_le_<bound>`, `lat_count`: the JIRA latency histogram (cumulative buckets, summed over methods);
* `outcome_<outcome>`: push results (synced, failed, retry, auth_required, conflict, …);
* gauges: `queue` (entries waiting), `circuit_open` (1 while open or half-open), `points_used` (a Cloud site's
  points this hour).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from app import redis_keys

SampleKey = tuple[str, str, tuple[tuple[str, str], ...]]  # family, sample name, labels (as app.observability)
SeriesValues = dict[str, dict[str, float]]  # instance → series → value
GaugeSampler = Callable[[], Awaitable[SeriesValues]]

MINUTE = 60
# (bucket seconds, how long a bucket is kept)
FINE, COARSE = (60, 2 * 3600), (300, 25 * 3600)
TIERS = (FINE, COARSE)
WRITE_OPERATIONS = frozenset({"create_worklog", "update_worklog", "delete_worklog"})
GAUGES = ("queue", "circuit_open", "points_used")
FAILURE_KINDS = ("no_answer", "auth", "refused", "server")


def _jira_request_series(labels: Mapping[str, str]) -> list[str]:
    status = labels.get("status", "")
    series = ["requests"]
    if labels.get("operation") in WRITE_OPERATIONS:
        series.append("writes")
    if status == "error":
        series.append("fail_no_answer")
    elif status == "429":
        series.append("status_429")
    elif status == "401":
        series.append("fail_auth")
    elif status.startswith("4"):
        series.append("fail_refused")
    elif status.startswith("5"):
        series.append("fail_server")
    return series


def series_increments(deltas: Mapping[SampleKey, float]) -> SeriesValues:
    """The published increments condensed into per-instance series (pure)."""
    out: SeriesValues = defaultdict(lambda: defaultdict(float))
    for (family, sample, label_pairs), delta in deltas.items():
        labels = dict(label_pairs)
        instance = labels.get("instance")
        if not instance or not delta:
            continue
        if family == "jira_requests" and sample == "jira_requests_total":
            names = _jira_request_series(labels)
        elif family == "jira_request_duration_seconds" and sample.endswith("_bucket"):
            names = [f"lat_le_{labels.get('le', '+Inf')}"]
        elif family == "jira_request_duration_seconds" and sample.endswith("_count"):
            names = ["lat_count"]
        elif family == "sync_outcomes" and sample == "sync_outcomes_total":
            names = [f"outcome_{labels.get('outcome', 'unknown')}"]
        else:
            continue
        for name in names:
            out[instance][name] += delta
    return {i: dict(s) for i, s in out.items()}


def bucket_start(at: float, step: int) -> int:
    return int(at // step * step)


def _key(instance: str, step: int, start: int) -> str:
    return redis_keys.metrics_history(instance, step, start)


def add_counters(pipe: Pipeline, increments: SeriesValues, *, at: float) -> None:
    """Queue the increments into both resolutions' buckets of `at` (the caller executes the pipeline)."""
    for step, keep in TIERS:
        start = bucket_start(at, step)
        for instance, series in increments.items():
            key = _key(instance, step, start)
            for name, value in series.items():
                pipe.hincrbyfloat(key, name, value)
            pipe.expire(key, keep)


def add_gauges(pipe: Pipeline, samples: SeriesValues, *, at: float) -> None:
    """Queue one minute's gauge samples; zeros are not stored (absent is zero), so an idle instance costs nothing."""
    minute = bucket_start(at, MINUTE)
    for step, keep in TIERS:
        start = bucket_start(at, step)
        for instance, series in samples.items():
            values = {f"{name}@{minute}": value for name, value in series.items() if value}
            if values:
                key = _key(instance, step, start)
                pipe.hset(key, mapping=values)
                pipe.expire(key, keep)


async def claim_minute(redis: Redis, *, at: float) -> bool:
    """True for the one process of the fleet that samples the gauges this minute. The claim stays as long as the
    coarse buckets, so a reader tells a minute nobody sampled (no process ran: a gap) from a zero."""
    minute = bucket_start(at, MINUTE)
    return bool(await redis.set(redis_keys.metrics_history_sampler(minute), 1, nx=True, ex=COARSE[1]))


@dataclass(frozen=True)
class Bucket:
    start: int  # unix seconds
    counters: dict[str, float]
    gauges: dict[str, float]  # the maximum of the bucket's samples, for each gauge sampled in it (absent: zero)
    sampled: bool  # some process sampled the gauges during the bucket (else they are unknown, not zero)


def _bucket(start: int, raw: Mapping[bytes | str, bytes | str], sampled: bool) -> Bucket:
    counters: dict[str, float] = {}
    gauges: dict[str, float] = {}
    for f, v in raw.items():
        name = f.decode() if isinstance(f, bytes) else f
        try:
            value = float(v)
        except (TypeError, ValueError):
            continue
        if "@" in name:
            gauge = name.split("@", 1)[0]
            gauges[gauge] = max(gauges.get(gauge, value), value)
        else:
            counters[name] = value
    return Bucket(start, counters, gauges, sampled)


def tier_for(window_seconds: int) -> int:
    """The bucket size that draws `window_seconds` with at most a few hundred points."""
    return FINE[0] if window_seconds <= FINE[1] - FINE[0] else COARSE[0]


async def read(redis: Redis, instances: Iterable[str], *, window_seconds: int,
               now: float | None = None) -> tuple[int, list[int], dict[str, list[Bucket]]]:
    """(bucket size, bucket starts oldest first, instance → its buckets) covering the last `window_seconds`,
    the current (partial) bucket last."""
    now = time.time() if now is None else now
    step = tier_for(window_seconds)
    last = bucket_start(now, step)
    starts = list(range(last - (window_seconds // step - 1) * step, last + 1, step))
    names = list(instances)
    minutes = [m for start in starts for m in range(start, start + step, MINUTE)]
    pipe = redis.pipeline(transaction=False)
    pipe.mget([redis_keys.metrics_history_sampler(m) for m in minutes])
    for instance in names:
        for start in starts:
            pipe.hgetall(_key(instance, step, start))
    claims, *raw = await pipe.execute()
    sampled_minutes = {m for m, claim in zip(minutes, claims, strict=True) if claim is not None}
    sampled = [any(m in sampled_minutes for m in range(start, start + step, MINUTE)) for start in starts]
    out: dict[str, list[Bucket]] = {}
    for i, instance in enumerate(names):
        out[instance] = [_bucket(start, raw[i * len(starts) + j], sampled[j]) for j, start in enumerate(starts)]
    return step, starts, out


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The `q` quantile (0..1) of a cumulative histogram {upper bound: count}, interpolated inside the bucket it
    falls in, as Prometheus' histogram_quantile does; None without observations. Past the last finite bound: that
    bound."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def latency_buckets(counters: Mapping[str, float]) -> dict[float, float]:
    """The `lat_le_<bound>` series of a bucket as {bound: cumulative count}."""
    out: dict[float, float] = {}
    for name, value in counters.items():
        if name.startswith("lat_le_"):
            try:
                out[float(name[len("lat_le_"):])] = value
            except ValueError:
                continue
    return out
