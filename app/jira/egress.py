"""Where a JIRA may be reached (CONTRACT section 11, `JIRA_ALLOWED_NETWORKS`).

A tenant chooses its instance's `base_url`, so without a rule any tenant could make the service talk to
loopback, the private network or a cloud metadata address and read parts of the answers back. The rule:
public unicast addresses are allowed; loopback, private (RFC 1918, ULA), link-local, CGNAT, multicast,
unspecified and every other reserved address are refused unless a network in `JIRA_ALLOWED_NETWORKS`
lists them. Addresses that wrap an IPv4 address (`::ffff:127.0.0.1`, NAT64, 6to4) are judged by it.

The rule is applied to the addresses a connection is actually made to: `EgressPolicy.permitted` resolves a
name once, refuses the whole answer if any address in it is refused, and the transport
(`app.jira.transport`) connects to those checked addresses only, never to the name. A name that resolves
(or re-resolves, DNS rebinding) to a refused address therefore gets nothing sent to it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from app.jira.errors import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# how long a create or PATCH waits for DNS before accepting the name (it is checked again on every connection)
VALIDATION_RESOLVE_SECONDS = 3.0
HOSTS_FILE = Path("/etc/hosts")


class EgressRefused(PermanentError):
    """The host is, or resolves to, an address JIRA may not be reached at; nothing was sent.

    The message is the one CONTRACT 11 prescribes for create and PATCH, and what a push's `last_error` says.
    """

    def __init__(self, host: str, kind: str) -> None:
        super().__init__(f"base_url: {host} resolves to a refused address ({kind}); "
                         "allow it with JIRA_ALLOWED_NETWORKS", status=None)
        self.host = host
        self.kind = kind


class NameNotResolved(OSError):
    """The host name has no address (or is a name RFC 6761 says never resolves)."""


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(address.packed[-4:])
    return address.sixtofour


def refused_kind(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why `address` may not be connected to (`loopback`, `private`, …), or None when it may."""
    inner = _embedded_ipv4(address)
    candidates = [address] if inner is None else [address, inner]
    if any(a in network for network in allowed for a in candidates if a.version == network.version):
        return None
    judged = inner or address
    if judged.is_loopback:
        return "loopback"
    if judged.is_unspecified:
        return "unspecified"
    if judged.is_link_local:
        return "link-local"
    if judged.is_multicast:
        return "multicast"
    if judged in _CGNAT:
        return "CGNAT"
    if any(judged in n for n in _PRIVATE if n.version == judged.version):
        return "private"
    if not judged.is_global:
        return "reserved"
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _special_use(host: str) -> list[IPAddress] | None:
    """RFC 6761 names answered without asking anyone: `localhost` and `*.localhost` are loopback, `*.invalid`
    never resolves. None for every other name."""
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    if name == "invalid" or name.endswith(".invalid"):
        raise NameNotResolved(f"{host} does not resolve (a .invalid name)")
    return None


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The addresses the system resolver gives for `host`, without blocking the event loop."""
    special = _special_use(host)
    if special is not None:
        return special
    name = host.rstrip(".").lower()
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NameNotResolved(f"{host} does not resolve") from exc
    found: list[IPAddress] = []
    for info in infos:
        address = _literal(str(info[4][0]))
        if address is not None and address not in found:
            found.append(address)
    if not found:
        raise NameNotResolved(f"{host} does not resolve")
    return found


def read_hosts_file(path: Path = HOSTS_FILE) -> dict[str, list[IPAddress]]:
    """Name → addresses from a hosts(5) file; an unreadable file is an empty table."""
    table: dict[str, list[IPAddress]] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return table
    for line in lines:
        fields = line.split("#", 1)[0].split()
        address = _literal(fields[0]) if fields else None
        if address is None:
            continue
        for name in fields[1:]:
            known = table.setdefault(name.rstrip(".").lower(), [])
            if address not in known:
                known.append(address)
    return table


def hosts_file_resolver(path: Path = HOSTS_FILE) -> Resolver:
    """A resolver that never asks DNS: special-use names and the hosts file only (`JIRA_NAME_RESOLUTION=hosts`).

    For networks where the service may send nothing but to listed hosts, and for the test suite, whose traffic
    stays on loopback: a name outside the file does not resolve instead of becoming a DNS query.
    """
    table = read_hosts_file(path)

    async def resolve(host: str, port: int) -> list[IPAddress]:
        special = _special_use(host)
        if special is not None:
            return special
        found = table.get(host.rstrip(".").lower())
        if not found:
            raise NameNotResolved(f"{host} does not resolve (not in {path}; JIRA_NAME_RESOLUTION=hosts)")
        return list(found)

    return resolve


def resolver_for(mode: str) -> Resolver:
    """The resolver `JIRA_NAME_RESOLUTION` names: `system` (DNS through the OS) or `hosts` (no DNS)."""
    return hosts_file_resolver() if mode == "hosts" else system_resolver


class EgressPolicy:
    """The allowed networks and the resolver; one per process, shared by the API's and the workers' clients."""

    def __init__(self, allowed: Iterable[IPNetwork] = (), *, resolver: Resolver = system_resolver) -> None:
        self.allowed = tuple(allowed)
        self._resolve = resolver

    def refused(self, address: IPAddress) -> str | None:
        return refused_kind(address, self.allowed)

    async def permitted(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to for `host`; `EgressRefused` when any address it resolves to is refused.

        Refusing the whole answer (not just the bad addresses) keeps a mixed answer from reaching a refused
        address on a retry, and makes the outcome the same whichever address the resolver lists first.
        """
        literal = _literal(host)
        addresses = [literal] if literal is not None else await self._resolve(host, port)
        for address in addresses:
            kind = self.refused(address)
            if kind is not None:
                raise EgressRefused(host, kind)
        return addresses

    async def check_base_url(self, base_url: str) -> None:
        """Refuse a `base_url` whose host is a refused literal address or resolves to one (create, PATCH).

        A name that does not resolve (yet), or not within a few seconds, is accepted: every connection is
        checked again, so accepting it now lets nothing through later.
        """
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            async with asyncio.timeout(VALIDATION_RESOLVE_SECONDS):
                await self.permitted(host, port)
        except (NameNotResolved, TimeoutError, OSError):
            return
