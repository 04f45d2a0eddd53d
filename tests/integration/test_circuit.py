"""The per-instance circuit breaker on a real Redis (CONTRACT 10.8)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from app.jira.circuit import CircuitBreaker
from app.metrics import CIRCUIT_OPEN


@pytest.fixture
def breaker(redis) -> CircuitBreaker:
    return CircuitBreaker(redis, failure_threshold=3, reset_seconds=0.3, trial_ttl_seconds=0.5)


async def open_circuit(breaker: CircuitBreaker, instance: uuid.UUID, failures: int = 3) -> None:
    for _ in range(failures):
        await breaker.record_failure(instance)


async def test_circuit_opens_after_threshold_consecutive_failures(breaker):
    inst = uuid.uuid4()
    assert await breaker.record_failure(inst) == "closed"
    assert await breaker.record_failure(inst) == "closed"
    assert (await breaker.allow(inst)).allowed
    assert await breaker.record_failure(inst) == "open"
    assert (await breaker.describe(inst))[0] == "open"
    assert CIRCUIT_OPEN.labels(instance=str(inst))._value.get() == 1


async def test_a_success_resets_the_consecutive_failure_count(breaker):
    inst = uuid.uuid4()
    await open_circuit(breaker, inst, 2)
    await breaker.record_success(inst)
    await open_circuit(breaker, inst, 2)
    assert (await breaker.describe(inst))[0] == "closed"
    assert (await breaker.describe(inst))[1] == 2


async def test_open_circuit_denies_with_time_until_half_open(redis):
    breaker = CircuitBreaker(redis, failure_threshold=3, reset_seconds=2.0)
    inst = uuid.uuid4()
    await open_circuit(breaker, inst)
    decision = await breaker.allow(inst)
    assert not decision.allowed and not decision.trial
    assert 1.0 < decision.retry_in <= 2.0


async def test_another_process_sees_the_same_state(breaker, redis):
    inst = uuid.uuid4()
    await open_circuit(breaker, inst)
    other = CircuitBreaker(redis, failure_threshold=3, reset_seconds=0.3)
    assert (await other.describe(inst))[0] == "open"
    assert not (await other.allow(inst)).allowed


async def test_half_open_allows_exactly_one_concurrent_trial(breaker, redis):
    inst = uuid.uuid4()
    await open_circuit(breaker, inst)
    await asyncio.sleep(0.32)
    assert (await breaker.describe(inst))[0] == "half_open"
    breakers = [CircuitBreaker(redis, failure_threshold=3, reset_seconds=0.3, trial_ttl_seconds=5) for _ in range(5)]
    decisions = await asyncio.gather(*(breakers[i % 5].allow(inst) for i in range(50)))
    trials = [d for d in decisions if d.allowed]
    assert len(trials) == 1 and trials[0].trial and trials[0].permit
    assert all(0 < d.retry_in <= 1.0 for d in decisions if not d.allowed)


async def test_trial_success_closes_the_circuit(breaker):
    inst = uuid.uuid4()
    await open_circuit(breaker, inst)
    await asyncio.sleep(0.32)
    assert (await breaker.allow(inst)).trial
    await breaker.record_success(inst)
    assert (await breaker.describe(inst))[0] == "closed"
    assert all(d.allowed and not d.trial for d in await asyncio.gather(*(breaker.allow(inst) for _ in range(5))))
    assert CIRCUIT_OPEN.labels(instance=str(inst))._value.get() == 0


async def test_trial_failure_reopens_for_another_reset_period(breaker):
    inst = uuid.uuid4()
    await open_circuit(breaker, inst)
    await asyncio.sleep(0.32)
    assert (await breaker.allow(inst)).trial
    assert await breaker.record_failure(inst) == "open"
    denied = await breaker.allow(inst)
    assert not denied.allowed and denied.retry_in > 0.1  # a new reset period (0.3 s), not what was left
    await asyncio.sleep(0.32)
    assert (await breaker.allow(inst)).trial  # the failed trial's permit is gone with it


async def test_a_crashed_trial_holders_permit_expires(breaker):
    inst = uuid.uuid4()
    await open_circuit(breaker, inst)
    await asyncio.sleep(0.32)
    assert (await breaker.allow(inst)).trial  # ...and the holder never reports back
    assert not (await breaker.allow(inst)).allowed
    await asyncio.sleep(0.55)
    assert (await breaker.allow(inst)).trial


async def test_an_unused_trial_permit_can_be_given_back(breaker):
    inst = uuid.uuid4()
    await open_circuit(breaker, inst)
    await asyncio.sleep(0.32)
    first = await breaker.allow(inst)
    assert first.trial
    assert not await breaker.release_trial(inst, await breaker.allow(inst))  # a denied decision holds nothing
    assert await breaker.release_trial(inst, first)
    second = await breaker.allow(inst)
    assert second.trial and second.permit != first.permit
    assert not await breaker.release_trial(inst, first)  # a stale permit cannot free the current one
    assert not (await breaker.allow(inst)).allowed


async def test_late_failures_while_open_do_not_extend_it(breaker):
    inst = uuid.uuid4()
    await open_circuit(breaker, inst)
    await asyncio.sleep(0.15)
    await open_circuit(breaker, inst, 5)
    await asyncio.sleep(0.17)
    assert (await breaker.describe(inst))[0] == "half_open"


def test_settings_configure_the_breaker(redis, settings):
    breaker = CircuitBreaker.from_settings(redis, settings)
    assert breaker._threshold == settings.circuit_failure_threshold
    assert breaker._trial_ttl_ms > settings.jira_timeout_seconds * 1000
