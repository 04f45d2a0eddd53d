"""The bounded JIRA path (CONTRACT 11): bounded decompression, per-instance slots, one deadline per request."""

from __future__ import annotations

import asyncio
import gzip
import uuid
import zlib

import httpx
import pytest
import respx

from app.budget import BudgetExhausted, ByteBudget
from app.jira.errors import TransientError
from app.jira.transport import AnswerTooLarge, InstanceSlots, _Decoder, read_bounded
from tests.unit.test_jira_support import API, make_client, make_target

LIMIT = 1024 * 1024


@pytest.mark.parametrize("encoding, packed", [
    ("gzip", gzip.compress(b"x" * 5000)),
    ("deflate", zlib.compress(b"x" * 5000)),
    ("", b"x" * 5000),
    ("identity", b"x" * 5000),
])
async def test_bodies_are_decoded_within_the_cap(encoding: str, packed: bytes) -> None:
    decoder = _Decoder(encoding, LIMIT, 200)
    async with ByteBudget(LIMIT).share() as share:
        for i in range(0, len(packed), 7):
            await decoder.feed(packed[i:i + 7], share)
    assert decoder.finish() == b"x" * 5000


async def test_a_gzip_bomb_is_abandoned_at_the_cap_without_inflating_it() -> None:
    bomb = gzip.compress(bytes(64 * 1024 * 1024))  # 64 MiB of zeros in ~64 kB
    decoder = _Decoder("gzip", LIMIT, 200)
    with pytest.raises(AnswerTooLarge) as caught:
        async with ByteBudget(LIMIT).share() as share:
            await decoder.feed(bomb, share)
    assert caught.value.message == "JIRA answer too large" and caught.value.maybe_applied
    assert decoder.size <= LIMIT + 1  # never more than one byte past the cap was produced
    # the bytes are let go of at once, though the exception (whose traceback holds the decoder) is still held
    assert caught.value.__traceback__ is not None and decoder.body == []


def test_an_encoding_we_did_not_ask_for_is_refused() -> None:
    with pytest.raises(TransientError, match="content encoding"):
        _Decoder("br", LIMIT, 200)


async def test_a_corrupt_body_is_a_transient_error() -> None:
    with pytest.raises(TransientError, match="cannot be decompressed"):
        async with ByteBudget(LIMIT).share() as share:
            await _Decoder("gzip", LIMIT, 200).feed(b"not gzip at all", share)


async def test_readers_share_one_budget_and_the_oldest_always_goes_on() -> None:
    budget = ByteBudget(100, free=10)
    async with budget.share() as first, budget.share() as second:
        await second.add(60)  # 50 beyond its free bytes: within the budget
        waiting = asyncio.create_task(second.add(80))  # would pass the budget: waits for the older reader
        await first.add(150)  # the oldest reader goes on even past the budget
        await asyncio.sleep(0.01)
        assert not waiting.done() and budget.used == 50 + 140
        third = budget.share(wait_seconds=0.05)
        async with third as late:
            with pytest.raises(BudgetExhausted):
                await late.add(100)
        waiting.cancel()
    assert budget.used == 0


async def test_a_declared_length_over_the_cap_is_not_read() -> None:
    response = httpx.Response(200, headers={"content-length": str(LIMIT + 1)}, stream=httpx.ByteStream(b""))
    with pytest.raises(AnswerTooLarge):
        await read_bounded(response, LIMIT)


async def test_instance_slots_cap_requests_in_flight_per_instance_only() -> None:
    slots = InstanceSlots(2)
    a, b = uuid.uuid4(), uuid.uuid4()
    held = [asyncio.Event() for _ in range(3)]
    release = asyncio.Event()

    async def hold(instance: uuid.UUID, started: asyncio.Event) -> None:
        async with slots.slot(instance):
            started.set()
            await release.wait()

    tasks = [asyncio.create_task(hold(a, held[0])), asyncio.create_task(hold(a, held[1])),
             asyncio.create_task(hold(a, held[2]))]
    await held[0].wait()
    await held[1].wait()
    await asyncio.sleep(0)
    assert not held[2].is_set()  # the third request of instance a waits for a slot
    other = asyncio.Event()
    other_task = asyncio.create_task(hold(b, other))
    await other.wait()  # another instance is not held up by a's requests
    assert slots.in_use(a) == 3
    release.set()
    await asyncio.gather(*tasks, other_task)
    assert slots.in_use(a) == 0 and slots.in_use(b) == 0  # idle instances are forgotten


@respx.mock
async def test_a_request_has_one_deadline_for_its_whole_answer() -> None:
    async def trickle() -> object:
        for _ in range(100):
            await asyncio.sleep(0.05)
            yield b" "

    respx.get(f"{API}/myself").mock(return_value=httpx.Response(200, stream=trickle()))  # type: ignore[arg-type]
    async with httpx.AsyncClient() as http:
        client = make_client(http, timeout_seconds=0.3).client
        with pytest.raises(TransientError, match=r"did not answer completely within 0\.3 s") as caught:
            await client.myself(make_target())
    assert caught.value.maybe_applied


@respx.mock
async def test_a_gzip_bomb_from_jira_is_too_large() -> None:
    respx.get(f"{API}/myself").mock(return_value=httpx.Response(
        200, headers={"content-encoding": "gzip"}, content=gzip.compress(bytes(32 * 1024 * 1024))))
    async with httpx.AsyncClient() as http:
        with pytest.raises(AnswerTooLarge):
            await make_client(http, max_response_bytes=LIMIT).client.myself(make_target())
