"""Every Redis key (and the one pub/sub channel) the service uses, in one place.

Keys of one JIRA instance carry the hash tag `{<instance id>}`, so a script touching several of them finds
them in one cluster slot. What each key holds and how long it lives: docs/coordination.md.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

ROOT = "ttsync"

# the gate state hash holds the rate shown to the dashboard, the 429 backoff, pause and slow-down instants
RATE_LIMIT_PARTS = ("state", "grants", "wait_user", "alive_user", "wait_batch", "alive_batch")


def rate_limit(instance_id: uuid.UUID) -> dict[str, str]:
    """The rate limiter's keys of one instance, by part (`wait_user` is `…:wait:user`)."""
    base = f"{ROOT}:rl:{{{instance_id}}}"
    return {part: f"{base}:{part.replace('_', ':')}" for part in RATE_LIMIT_PARTS}


def budget(instance_id: uuid.UUID, name: str) -> tuple[str, str]:
    """(grants log, state hash) of a further keyed budget of one instance (e.g. `issue:PROJ-1`)."""
    base = f"{ROOT}:rl:{{{instance_id}}}:budget:{name}"
    return f"{base}:grants", f"{base}:state"


def circuit(instance_id: uuid.UUID) -> tuple[str, str]:
    """(circuit hash, half-open trial permit) of one instance."""
    base = f"{ROOT}:cb:{{{instance_id}}}"
    return base, f"{base}:trial"


def push_lease(instance_id: uuid.UUID) -> str:
    """Held by the one process that pushes the instance's due entries (value: that process' id)."""
    return f"{ROOT}:push:{{{instance_id}}}:lease"


# API processes publish `<instance id> <priority>` here after committing a change due now; workers listen
PUSH_WAKE_CHANNEL = f"{ROOT}:push:wake"
# hash: worker process id -> "<instances it pushes> <unix time>", refreshed with its leases (workers.pushers)
PUSH_LOAD = f"{ROOT}:push:load"


def cloud_pool(pool: str) -> dict[str, str]:
    """The keys of a Jira Cloud points pool (the service's 3LO app), by part: `points` (hash: the window's start,
    the total and each site's points), `sites` (zset: sites competing → last want), `pause` (after a
    jira-quota-global-based 429), `near` (Atlassian said the quota is nearly spent). Hash-tagged by the pool, like
    every key of its sites' budgets."""
    base = f"{ROOT}:cloud:{{{quote(pool, safe='')}}}"
    return {part: f"{base}:{part}" for part in ("points", "sites", "pause", "near")}


def cloud_site_pause(pool: str, instance_id: uuid.UUID) -> str:
    """A Cloud site paused by a jira-quota-tenant-based 429 (its own points quota), until its reset."""
    return f"{ROOT}:cloud:{{{quote(pool, safe='')}}}:site:{instance_id}:pause"


def cloud_issue(pool: str, instance_id: uuid.UUID, issue_key: str) -> tuple[str, str]:
    """(write log, pause) of one issue of a Cloud site: the per-issue write limits and a jira-per-issue-on-write
    429's pause."""
    base = f"{ROOT}:cloud:{{{quote(pool, safe='')}}}:issue:{instance_id}:{quote(issue_key.upper(), safe='')}"
    return base, f"{base}:pause"


def token_refresh_lock(connection_id: uuid.UUID) -> str:
    """Held while one process renews a connection's OAuth 2.0 token (no other process renews it meanwhile)."""
    return f"{ROOT}:refresh:{{{connection_id}}}"


def reconcile_lease(instance_id: uuid.UUID) -> str:
    """Who polls the instance in this reconciliation interval."""
    return f"{ROOT}:reconcile:{{{instance_id}}}:lease"


def reconcile_started() -> str:
    """Hash: instance id → when a poll of it last started (ms), whatever its outcome: the poller's turn order."""
    return f"{ROOT}:reconcile:started"


def reconcile_running(instance_id: uuid.UUID) -> str:
    """Held while a poll of the instance runs, so a slow one never overlaps the next."""
    return f"{ROOT}:reconcile:{{{instance_id}}}:running"


def tenant_api_rate(tenant_id: uuid.UUID) -> str:
    """The tenant's API rate limit state (GCRA: its theoretical arrival time, µs on Redis' clock)."""
    return f"{ROOT}:api-rate:{{{tenant_id}}}"


SWEEP_LEASE = f"{ROOT}:sweep:lease"


def ticket_cache(tenant_id: uuid.UUID, instance_id: uuid.UUID, user: str, kind: str, key: str) -> str:
    """One cached ticket look-up, per asking user (two users may see different issues)."""
    return f"{ROOT}:tickets:{tenant_id}:{instance_id}:{quote(user, safe='')}:{kind}:{key}"


METRICS = f"{ROOT}:metrics:v1"
METRIC_SAMPLES = f"{METRICS}:samples"
METRIC_META = f"{METRICS}:meta"
METRIC_PUBLISHERS = f"{METRICS}:publishers"


def user_token_generation(tenant_id: uuid.UUID, user: str) -> str:
    """A user's current user-token generation, cached from PostgreSQL (CONTRACT 14: revocation)."""
    return f"{ROOT}:user-token-gen:{{{tenant_id}}}:{quote(user, safe='')}"


def metrics_history(instance: str, step: int, start: int) -> str:
    """One instance's history bucket of `step` seconds starting at `start` (app.metrics_history)."""
    return f"{METRICS}:hist:{{{instance}}}:{step}:{start}"


def metrics_history_sampler(minute: int) -> str:
    """Which process sampled the gauges in this minute (and that somebody did)."""
    return f"{METRICS}:hist:sampled:{minute}"
