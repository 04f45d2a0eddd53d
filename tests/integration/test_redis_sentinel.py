"""Redis behind Sentinel (REDIS_SENTINELS): the processes find the primary through the sentinels, and after a
failover their next commands reach the promoted replica, Lua scripts included (docs/operations.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.bootstrap import connect_redis
from app.config import parse_sentinels
from app.jira.locks import Leases
from devstack.servers import Server, start_redis, start_sentinel
from tests.waiting import wait_until

MASTER = "tt-redis"


@pytest.fixture
def redis_pair(tmp_path: Path) -> Iterator[dict[str, Server]]:
    primary = start_redis(tmp_path / "primary", persist=False)
    replica = start_redis(tmp_path / "replica", persist=False, args=["--replicaof", "127.0.0.1", str(primary.port)])
    servers = {"primary": primary, "replica": replica}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.kill()


async def replicated(primary: Redis, replica: Redis) -> bool:
    return (await primary.info("replication"))["connected_slaves"] == 1 and \
        (await replica.info("replication"))["master_link_status"] == "up"


async def test_the_primary_is_found_through_the_sentinels_and_found_again_after_a_failover(
        redis_pair: dict[str, Server], tmp_path: Path, settings: Any) -> None:
    primary, replica = redis_pair["primary"], redis_pair["replica"]
    direct = {name: Redis.from_url(f"redis://127.0.0.1:{server.port}/3") for name, server in redis_pair.items()}
    await wait_until(lambda: replicated(direct["primary"], direct["replica"]), timeout=30, interval=0.1)
    sentinel = redis_pair["sentinel"] = start_sentinel(tmp_path / "sentinel", MASTER, primary.port)
    watcher = Redis.from_url(sentinel.url)

    async def replica_known() -> bool:
        return any(int(r["port"]) == replica.port for r in await watcher.sentinel_slaves(MASTER))

    await wait_until(replica_known, timeout=30, interval=0.1)
    # REDIS_URL's host and port are not used with sentinels (port 1 answers nothing); its database number is
    ours = connect_redis(settings.model_copy(update={
        "redis_url": "redis://127.0.0.1:1/3", "redis_sentinels": parse_sentinels(f"127.0.0.1:{sentinel.port}"),
        "redis_sentinel_master": MASTER}))
    try:
        await ours.set("before", "1")
        assert await direct["primary"].get("before") == b"1"
        leases = Leases(ours, holder="worker-a", ttl=30)
        key = f"test:lease:{uuid.uuid4()}"
        assert await leases.take(key)
        await direct["primary"].wait(1, 5000)  # the replica has it all before the primary dies

        primary.kill()  # the sentinel notices after 0.5 s and promotes the replica

        async def promoted() -> bool:
            addr = await watcher.sentinel_get_master_addr_by_name(MASTER)
            return addr is not None and int(addr[1]) == replica.port

        await wait_until(promoted, timeout=60, interval=0.2)

        async def writable() -> bool:
            try:
                await ours.set("after", "2")
            except RedisError:  # the first command on the dead primary's connection fails; the pool asks again
                return False
            return True

        await wait_until(writable, timeout=30, interval=0.2)
        on_replica = direct["replica"]
        assert await on_replica.get("before") == b"1" and await on_replica.get("after") == b"2"
        # the lease scripts (EVALSHA, loaded again where the new primary has never seen them) work there
        assert await leases.renew() == []
        await leases.release(key)
        assert not await on_replica.exists(key)
    finally:
        await ours.aclose()
        await watcher.aclose()
        for client in direct.values():
            await client.aclose()


def test_sentinel_addresses_are_checked() -> None:
    assert parse_sentinels("s1:26379, [::1]:26380,") == (("s1", 26379), ("::1", 26380))
    for bad in ("s1", "s1:", ":26379", "s1:port", "s1:70000"):
        with pytest.raises(ValueError, match="sentinel address"):
            parse_sentinels(bad)
