"""The hand-off to arq: jobs written in bulk exactly as arq's own `enqueue_job` would write them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from arq.constants import job_key_prefix
from arq.jobs import Job, JobStatus

from app.domain.priority import Priority
from app.services.dispatch import ENQUEUE_CHUNK, PUSH_JOB, enqueue_pushes, push_job_id


@pytest.fixture
async def queue(app):  # type: ignore[no-untyped-def]
    """The API's arq pool; the jobs a test queues are removed afterwards (no worker should run them)."""
    pool = app.state.queue
    before = set(await pool.zrange(pool.default_queue_name, 0, -1))
    yield pool
    added = [m for m in await pool.zrange(pool.default_queue_name, 0, -1) if m not in before]
    if added:
        await pool.zrem(pool.default_queue_name, *added)
        await pool.delete(*(job_key_prefix.encode() + m for m in added))


async def test_jobs_are_what_arq_itself_would_queue(queue):
    tenant = uuid.uuid4()
    assert await enqueue_pushes(queue, [(tenant, "e1"), (tenant, "e2")], Priority.USER) == 2
    job = Job(push_job_id(tenant, "e1"), queue, _queue_name=queue.default_queue_name)
    assert await job.status() == JobStatus.queued
    info = await job.info()
    assert info is not None
    assert info.function == PUSH_JOB and info.args == (str(tenant), "e1") and info.kwargs == {}
    assert info.job_try is None
    ttl_ms = await queue.pttl(job_key_prefix + push_job_id(tenant, "e1"))
    assert timedelta(days=6) < timedelta(milliseconds=ttl_ms) <= timedelta(days=7)


async def test_a_queued_job_coalesces_further_changes(queue):
    tenant = uuid.uuid4()
    assert await enqueue_pushes(queue, [(tenant, "e1")], Priority.BATCH) == 1
    assert await enqueue_pushes(queue, [(tenant, "e1"), (tenant, "e2")], Priority.USER) == 1
    assert await enqueue_pushes(queue, [(tenant, "e1"), (tenant, "e2")], Priority.BATCH) == 0


async def test_user_actions_are_scored_a_day_ahead_of_batch_work(queue):
    tenant = uuid.uuid4()
    await enqueue_pushes(queue, [(tenant, "batch")], Priority.BATCH)
    await enqueue_pushes(queue, [(tenant, "user")], Priority.USER)
    user = await queue.zscore(queue.default_queue_name, push_job_id(tenant, "user"))
    batch = await queue.zscore(queue.default_queue_name, push_job_id(tenant, "batch"))
    assert batch - user == pytest.approx(timedelta(days=1).total_seconds() * 1000, abs=5_000)
    later = datetime.now(UTC) + timedelta(minutes=5)
    await enqueue_pushes(queue, [(tenant, "deferred")], Priority.BATCH, defer_until=later)
    deferred = await queue.zscore(queue.default_queue_name, push_job_id(tenant, "deferred"))
    assert deferred == pytest.approx(later.timestamp() * 1000, abs=1)


async def test_a_large_hand_off_spans_several_script_calls(queue):
    tenant = uuid.uuid4()
    n = 2 * ENQUEUE_CHUNK + 7
    items = [(tenant, f"big{i}") for i in range(n)]
    assert await enqueue_pushes(queue, items, Priority.BATCH) == n
    scores = await queue.zmscore(queue.default_queue_name, [push_job_id(tenant, f"big{i}") for i in range(n)])
    assert None not in scores
    assert await enqueue_pushes(queue, items, Priority.BATCH) == 0


async def test_without_a_queue_nothing_is_queued_and_nothing_fails():
    assert await enqueue_pushes(None, [(uuid.uuid4(), "e1")], Priority.USER) == 0
