"""The per-instance circuit breaker on a real Redis (CONTRACT 10.8)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from app.jira.circuit import CircuitBreaker
from app.metrics import CIRCUIT_OPEN
from tests.waiting import wait_until

# A breaker whose open period outlasts any stall of a loaded machine, for tests that need the circuit open; tests
# that need it half open use a short one and wait for the moment (never sleep for it)
LONG_RESET = 600.0


@pytest.fixture
def breaker(redis) -> CircuitBreaker:
    return CircuitBreaker(redis, failure_threshold=3, reset_seconds=LONG_RESET)


@pytest.fixture
def quick(redis) -> CircuitBreaker:
    return CircuitBreaker(redis, failure_threshold=3, reset_seconds=0.3, trial_ttl_seconds=0.5)


async def open_circuit(breaker: CircuitBreaker, instance: uuid.UUID, failures: int = 3) -> None:
    for _ in range(failures):
        await breaker.record_failure(instance)


async def half_open(breaker: CircuitBreaker, instance: uuid.UUID) -> None:
    """Wait (on Redis' clock, as the breaker does) until the open period is over."""

    async def over() -> bool:
        return (await breaker.describe(instance))[0] == "half_open"

    await wait_until(over, timeout=30, interval=0.02)


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


async def test_open_circuit_denies_with_time_until_half_open(breaker):
    inst = uuid.uuid4()
    t0 = time.monotonic()
    await open_circuit(breaker, inst)
    decision = await breaker.allow(inst)
    assert not decision.allowed and not decision.trial
    assert LONG_RESET - (time.monotonic() - t0) <= decision.retry_in <= LONG_RESET


async def test_another_process_sees_the_same_state(breaker, redis):
    inst = uuid.uuid4()
    await open_circuit(breaker, inst)
    other = CircuitBreaker(redis, failure_threshold=3, reset_seconds=LONG_RESET)
    assert (await other.describe(inst))[0] == "open"
    assert not (await other.allow(inst)).allowed


async def test_half_open_allows_exactly_one_concurrent_trial(quick, redis):
    inst = uuid.uuid4()
    await open_circuit(quick, inst)
    await half_open(quick, inst)
    breakers = [CircuitBreaker(redis, failure_threshold=3, reset_seconds=0.3, trial_ttl_seconds=60)
                for _ in range(5)]
    decisions = await asyncio.gather(*(breakers[i % 5].allow(inst) for i in range(50)))
    trials = [d for d in decisions if d.allowed]
    assert len(trials) == 1 and trials[0].trial and trials[0].permit
    assert all(0 < d.retry_in <= 1.0 for d in decisions if not d.allowed)


async def test_trial_success_closes_the_circuit(quick):
    inst = uuid.uuid4()
    await open_circuit(quick, inst)
    await half_open(quick, inst)
    assert (await quick.allow(inst)).trial
    await quick.record_success(inst)
    assert (await quick.describe(inst))[0] == "closed"
    assert all(d.allowed and not d.trial for d in await asyncio.gather(*(quick.allow(inst) for _ in range(5))))
    assert CIRCUIT_OPEN.labels(instance=str(inst))._value.get() == 0


async def test_trial_failure_reopens_for_another_reset_period(redis):
    breaker = CircuitBreaker(redis, failure_threshold=3, reset_seconds=1.0, trial_ttl_seconds=30)
    inst = uuid.uuid4()
    await open_circuit(breaker, inst)
    await half_open(breaker, inst)
    assert (await breaker.allow(inst)).trial
    t0 = time.monotonic()
    assert await breaker.record_failure(inst) == "open"
    after = await breaker.allow(inst)
    elapsed = time.monotonic() - t0
    # a whole new reset period from the failure, not what was left of the old one (nothing was); only a machine that
    # stalled through that whole second may find it half open again already (with a new trial: the failed one's
    # permit went with it)
    if elapsed < 1.0 or not after.allowed:
        assert not after.allowed and 1.0 - elapsed <= after.retry_in <= 1.0
    else:
        assert after.trial
        await breaker.release_trial(inst, after)
    await half_open(breaker, inst)
    assert (await breaker.allow(inst)).trial  # the failed trial's permit went with it (30 s TTL otherwise)


async def test_a_crashed_trial_holders_permit_expires(redis):
    breaker = CircuitBreaker(redis, failure_threshold=3, reset_seconds=0.3, trial_ttl_seconds=1.0)
    inst = uuid.uuid4()
    await open_circuit(breaker, inst)
    await half_open(breaker, inst)
    t0 = time.monotonic()
    assert (await breaker.allow(inst)).trial  # ...and the holder never reports back
    second = await breaker.allow(inst)
    assert not second.allowed or time.monotonic() - t0 >= 1.0  # nobody else while the permit lives

    async def next_trial() -> bool:
        return (await breaker.allow(inst)).trial

    await wait_until(next_trial, timeout=30, interval=0.05)
    assert time.monotonic() - t0 >= 1.0 - 0.01  # not before the permit's TTL ran out


async def test_an_unused_trial_permit_can_be_given_back(redis):
    breaker = CircuitBreaker(redis, failure_threshold=3, reset_seconds=0.3, trial_ttl_seconds=30)
    inst = uuid.uuid4()
    await open_circuit(breaker, inst)
    await half_open(breaker, inst)
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
    state, _, left_before = await breaker.describe(inst)
    assert state == "open"
    await open_circuit(breaker, inst, 5)  # answers to requests sent before it opened
    state, _, left_after = await breaker.describe(inst)
    assert state == "open" and left_after <= left_before  # still counting down to the same instant


def test_settings_configure_the_breaker(redis, settings):
    breaker = CircuitBreaker.from_settings(redis, settings)
    assert breaker._threshold == settings.circuit_failure_threshold
    assert breaker._trial_ttl_ms > settings.jira_timeout_seconds * 1000
