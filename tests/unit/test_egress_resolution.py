"""`JIRA_NAME_RESOLUTION=hosts`: JIRA host names come from the hosts file only; nothing asks DNS."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest

from app.jira.egress import EgressPolicy, EgressRefused, NameNotResolved, hosts_file_resolver, resolver_for


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    path = tmp_path / "hosts"
    path.write_text("# comment\n127.0.0.1 localhost jira.internal.test\n127.0.0.2\tother.test # trailing\n"
                    "::1 jira.internal.test\nnot-an-address broken.test\n")
    return path


@pytest.fixture
async def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    async def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("DNS was asked")

    # the running loop's class: asking the policy for "the" loop fails after an earlier test's asyncio.run()
    monkeypatch.setattr(type(asyncio.get_running_loop()), "getaddrinfo", forbidden)


async def test_names_in_the_hosts_file_resolve_to_its_addresses(hosts: Path, no_dns: None) -> None:
    resolve = hosts_file_resolver(hosts)
    assert await resolve("JIRA.internal.test.", 443) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert await resolve("other.test", 80) == [ipaddress.ip_address("127.0.0.2")]
    assert await resolve("app.localhost", 80) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]


@pytest.mark.parametrize("host", ["jira.example.com", "broken.test", "x.invalid"])
async def test_other_names_do_not_resolve_and_ask_no_one(hosts: Path, no_dns: None, host: str) -> None:
    with pytest.raises(NameNotResolved):
        await hosts_file_resolver(hosts)(host, 443)


async def test_the_egress_rules_still_judge_what_the_hosts_file_says(hosts: Path, no_dns: None) -> None:
    policy = EgressPolicy([ipaddress.ip_network("127.0.0.2/32")], resolver=hosts_file_resolver(hosts))
    assert await policy.permitted("other.test", 80) == [ipaddress.ip_address("127.0.0.2")]
    with pytest.raises(EgressRefused, match=r"jira.internal.test resolves to a refused address \(loopback\)"):
        await policy.permitted("jira.internal.test", 80)


def test_the_setting_chooses_the_resolver() -> None:
    from app.jira.egress import system_resolver

    assert resolver_for("system") is system_resolver
    assert resolver_for("hosts") is not system_resolver
