"""Egress rules (CONTRACT 11): which addresses are refused, that the address checked is the address connected
to (a name that re-resolves to a refused address gets nothing), and what create, PATCH and a push say.

Loopback only: refused private, link-local and other addresses are checked by validation, never connected to;
the connection tests use 127.0.0.2 (allowed) and 127.0.0.3 (refused)."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import pytest

from app.jira.egress import EgressPolicy, EgressRefused, IPAddress, refused_kind
from app.jira.transport import jira_http_client
from tests.adversarial.conftest import Tenant
from tests.adversarial.hostile_jira import CountingListener, HostileJira
from tests.adversarial.test_hostile_jira import _instance_row


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("fd00::1", "private"), ("fc00::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("100.64.0.1", "CGNAT"), ("100.127.255.254", "CGNAT"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"), ("192.0.2.10", "reserved"), ("198.18.0.1", "reserved"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("64:ff9b::a9fe:a9fe", "link-local"),
    ("2002:7f00:1::", "loopback"), ("2002:c0a8:101::", "private"),
    ("8.8.8.8", None), ("1.1.1.1", None), ("2606:4700::1111", None), ("172.32.0.1", None), ("100.128.0.1", None),
])
def test_refused_kinds(address: str, kind: str | None) -> None:
    assert refused_kind(ipaddress.ip_address(address)) == kind


def test_allowed_networks_let_through_only_what_they_list() -> None:
    allowed = [ipaddress.ip_network("127.0.0.2/32"), ipaddress.ip_network("10.20.0.0/16")]
    assert refused_kind(ipaddress.ip_address("127.0.0.2"), allowed) is None
    assert refused_kind(ipaddress.ip_address("::ffff:127.0.0.2"), allowed) is None
    assert refused_kind(ipaddress.ip_address("10.20.3.4"), allowed) is None
    assert refused_kind(ipaddress.ip_address("127.0.0.3"), allowed) == "loopback"
    assert refused_kind(ipaddress.ip_address("10.21.0.1"), allowed) == "private"


class Rebinding:
    """A resolver whose answer for a name changes between two connections, as a hostile DNS server's would."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = [[ipaddress.ip_address(a) for a in answer] for answer in answers]
        self.asked = 0

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return answer


@pytest.fixture
def rebinding_pair() -> Any:
    """The hostile JIRA on 127.0.0.2 and a counting listener on 127.0.0.3, on the same port."""
    for _ in range(20):
        jira = HostileJira("127.0.0.2").start()
        try:
            refused = CountingListener("127.0.0.3").start(jira.port)
        except OSError:
            jira.stop()
            continue
        yield jira, refused
        refused.stop()
        jira.stop()
        return
    pytest.skip("no port free on both 127.0.0.2 and 127.0.0.3")


async def test_a_name_that_re_resolves_to_a_refused_address_gets_nothing(rebinding_pair: Any) -> None:
    jira, refused = rebinding_pair
    resolver = Rebinding(["127.0.0.2"], ["127.0.0.3"])
    policy = EgressPolicy([ipaddress.ip_network("127.0.0.2/32")], resolver=resolver)
    url = f"http://jira.rebind.test:{jira.port}/rest/api/2/issue/PROJ-1"
    async with jira_http_client(policy, timeout_seconds=5) as http:
        first = await http.get(url, headers={"Connection": "close"})  # a fresh connection for the next request
        assert first.status_code == 200
        with pytest.raises(EgressRefused) as refusal:
            await http.get(url)
    assert refusal.value.message == ("base_url: jira.rebind.test resolves to a refused address (loopback); "
                                     "allow it with JIRA_ALLOWED_NETWORKS")
    assert resolver.asked == 2
    assert refused.connections == 0
    assert len(jira.requests) == 1


async def test_an_answer_mixing_allowed_and_refused_addresses_is_refused_whole(rebinding_pair: Any) -> None:
    jira, refused = rebinding_pair
    for answer in (["127.0.0.2", "127.0.0.3"], ["127.0.0.3", "127.0.0.2"]):
        policy = EgressPolicy([ipaddress.ip_network("127.0.0.2/32")], resolver=Rebinding(answer))
        async with jira_http_client(policy, timeout_seconds=5) as http:
            with pytest.raises(EgressRefused):
                await http.get(f"http://mixed.test:{jira.port}/")
    assert refused.connections == 0 and jira.requests == []


@pytest.mark.parametrize("host, kind", [
    ("10.0.0.1", "private"), ("192.168.0.10", "private"), ("169.254.169.254", "link-local"),
    ("100.64.1.1", "CGNAT"), ("224.0.0.251", "multicast"), ("0.0.0.0", "unspecified"), ("240.0.0.1", "reserved"),
    ("[fd12::1]", "private"), ("[fe80::1]", "link-local"), ("[::ffff:10.0.0.1]", "private"),
    ("127.0.0.3", "loopback"), ("localhost", "loopback"), ("jira.localhost", "loopback"),
])
async def test_create_and_patch_refuse_base_urls_at_refused_addresses(
    api: httpx.AsyncClient, auth: dict[str, str], host: str, kind: str,
) -> None:
    """Checked by validation alone: nothing is ever connected to these."""
    expected = (f"base_url: {host.strip('[]')} resolves to a refused address ({kind}); "
                "allow it with JIRA_ALLOWED_NETWORKS")
    r = await api.post("/api/v1/jira-instances", json={"name": "Inner", "base_url": f"https://{host}/jira"},
                       headers=auth)
    assert (r.status_code, r.json()["detail"]) == (422, expected)
    ok = await api.post("/api/v1/jira-instances", json={"name": "Fine", "base_url": "https://jira.example.invalid"},
                        headers=auth)
    assert ok.status_code == 201, ok.text
    r = await api.patch(f"/api/v1/jira-instances/{ok.json()['id']}", json={"base_url": f"http://{host}:8080"},
                        headers=auth)
    assert (r.status_code, r.json()["detail"]) == (422, expected)
    assert (await api.get(f"/api/v1/jira-instances/{ok.json()['id']}", headers=auth)).json()["base_url"] == \
        "https://jira.example.invalid"


async def test_a_push_to_a_refused_address_fails_with_the_reason_and_sends_nothing(
    app: Any, api: httpx.AsyncClient, settings: Any, tenant: Any, auth: dict[str, str],
) -> None:
    from workers.context import build_context

    listener = CountingListener("127.0.0.3").start()
    try:
        owner = Tenant(tenant.tenant_id, tenant.api_key, tenant.webhook_secret)
        await _instance_row(app, owner, f"http://127.0.0.3:{listener.port}")
        entry = {"user": "jdoe", "ticket": "PROJ-7", "date": "2026-11-25", "start": "09:00", "duration": 30}
        assert (await api.put("/api/v1/entries/e1", json=entry, headers=auth)).status_code == 202
        context = build_context(settings)
        try:
            assert await context.push(tenant.tenant_id, "e1") is None
        finally:
            await context.close()
        sync = (await api.get("/api/v1/entries/e1", headers=auth)).json()["sync"]
        assert sync["status"] == "failed"
        assert sync["last_error"] == ("base_url: 127.0.0.3 resolves to a refused address (loopback); "
                                      "allow it with JIRA_ALLOWED_NETWORKS")
        assert listener.connections == 0
    finally:
        listener.stop()


def test_settings_parse_allowed_networks() -> None:
    from app.config import parse_networks

    assert parse_networks(" 127.0.0.1/32, 10.0.0.0/8 ,::1") == (
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))
    with pytest.raises(ValueError, match="not a network"):
        parse_networks("10.0.0.0/33")


async def test_a_name_that_does_not_resolve_is_a_connection_error() -> None:
    async with jira_http_client(EgressPolicy(), timeout_seconds=5) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("http://jira.example.invalid/rest/api/2/myself")
