"""The HTTP path to JIRA, bounded whatever a JIRA does (CONTRACT section 11, guarantee 11).

* `EgressBackend`: httpcore's network backend behind the egress policy. Every new connection resolves its host
  once, checks every address (`app.jira.egress`), and connects to a checked address, never to the name; TLS
  still verifies the certificate against the host name (httpcore passes it as SNI separately).
* `jira_http_client`: the one pooled `httpx.AsyncClient` a process uses for JIRA, built on that backend, with
  no proxies from the environment and no redirects followed.
* `read_bounded`: a whole answer, decompressed by us in bounded steps, abandoned past `JIRA_MAX_RESPONSE_BYTES`
  (httpx's own decoder would inflate a 64 KiB network read of a gzip bomb to 64 MiB at once); the bytes of all
  answers being read at once share one budget per process (`app.budget`), so concurrent bombs cannot add up.
* `InstanceSlots`: at most `JIRA_MAX_CONNECTIONS_PER_INSTANCE` requests of one instance in flight per process,
  so a slow instance cannot take the whole shared pool.

Why our own and not a library: `httpx-secure` finds a name's address by opening a TCP connection to it (to a
refused address too) before deciding, and `safehttpx` wraps only GET and asks Google's DNS; neither bounds
time or size. What is needed is one small network backend on httpcore's public interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable

import httpcore
import httpx

from app.budget import ByteBudget, Share
from app.jira.egress import EgressPolicy, NameNotResolved
from app.jira.errors import TransientError

# what we ask for and can decode in bounded steps; a JIRA (or its proxy) that sends anything else is refused
ACCEPT_ENCODING = "gzip, deflate"
_STEP = 256 * 1024  # most decompressed bytes made at once


class AnswerTooLarge(TransientError):
    """The answer passed `JIRA_MAX_RESPONSE_BYTES` after decompression; the rest was not read."""

    def __init__(self, status: int | None) -> None:
        super().__init__("JIRA answer too large", maybe_applied=True, status=status)


class EgressBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the egress policy permits (resolved here, once per connection)."""

    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._policy.permitted(host, port)  # EgressRefused passes through httpx unchanged
        except NameNotResolved as exc:
            raise httpcore.ConnectError(str(exc)) from exc  # what httpx reports for a name that does not resolve
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, timeout=timeout,
                                                     local_address=local_address, socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # permitted() never answers an empty list
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("JIRA is reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _EgressTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (its exception mapping, its request/response plumbing) on an egress-checked pool."""

    def __init__(self, policy: EgressPolicy, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx offers no parameter for the network backend; its pool is built the same way as its own
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=EgressBackend(policy),
        )


def jira_http_client(policy: EgressPolicy, *, timeout_seconds: float, max_connections: int = 100) -> httpx.AsyncClient:
    """The process's pooled client for JIRA: egress-checked, no environment proxies, no redirects followed.

    httpx's timeouts bound each step; `JiraClient` puts the one deadline on the whole request.
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(transport=_EgressTransport(policy, limits), trust_env=False, follow_redirects=False,
                             timeout=timeout_seconds)


class _Decoder:
    """Accumulates a body, decompressing gzip/deflate in steps that never produce more than the room left."""

    def __init__(self, encoding: str, limit: int, status: int) -> None:
        self.limit = limit
        self.status = status
        self.size = 0
        self.body: list[bytes] = []  # joined once at the end: no copy while reading
        coding = encoding.strip().lower()
        if coding in ("", "identity"):
            self._inflate = None
        elif coding in ("gzip", "x-gzip", "deflate"):
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
        else:
            raise TransientError("JIRA answered with a content encoding we did not ask for", maybe_applied=True,
                                 status=status)

    @property
    def compressed(self) -> bool:
        return self._inflate is not None

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            # let go of what was read now: the exception's traceback keeps this decoder alive for as long as a
            # caller holds it (a retry, a log record), and with it up to a whole limit of bytes
            self.body.clear()
            raise AnswerTooLarge(self.status)
        self.body.append(data)

    async def feed(self, data: bytes, share: Share) -> None:
        """Take in one network read; decompressed output is produced in steps of at most `_STEP` bytes, each
        accounted in the process' answer budget (which may make us wait) before the next is made."""
        if self._inflate is None:
            await share.add(len(data))
            self._keep(data)
            return
        try:
            while data:
                out = self._inflate.decompress(data, min(_STEP, self.limit - self.size + 1))
                await share.add(len(out))
                self._keep(out)
                data = self._inflate.unconsumed_tail
        except zlib.error:
            raise TransientError("JIRA answered with a body that cannot be decompressed", maybe_applied=True,
                                 status=self.status) from None

    def finish(self) -> bytes:
        if self._inflate is not None:
            with contextlib.suppress(zlib.error):
                self._keep(self._inflate.flush(self.limit - self.size + 1))
        return b"".join(self.body)


async def read_bounded(response: httpx.Response, limit: int, budget: ByteBudget | None = None) -> bytes:
    """The whole (decompressed) body of a streamed answer; `AnswerTooLarge` past `limit` bytes. With `budget`,
    the bytes held while reading count against the process' share for all answers being read at once."""
    encoding = response.headers.get("content-encoding", "")
    decoder = _Decoder(encoding, limit, response.status_code)
    declared = response.headers.get("content-length", "")
    if not decoder.compressed and declared.isdigit() and int(declared) > limit:
        raise AnswerTooLarge(response.status_code)  # not worth reading at all
    async with (budget or ByteBudget(limit)).share() as share:
        async for chunk in response.aiter_raw():
            await decoder.feed(chunk, share)
        return decoder.finish()


class InstanceSlots:
    """Per-instance caps on requests in flight in this process (`JIRA_MAX_CONNECTIONS_PER_INSTANCE`).

    Each request holds a slot while it uses a connection, so one instance never holds more connections of the
    shared pool than its cap, however slow its JIRA answers. Idle instances are forgotten.
    """

    def __init__(self, per_instance: int) -> None:
        self.per_instance = per_instance
        self._slots: dict[uuid.UUID, tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def slot(self, instance_id: uuid.UUID) -> AsyncIterator[None]:
        semaphore, users = self._slots.setdefault(instance_id, (asyncio.Semaphore(self.per_instance), [0]))
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._slots[instance_id]

    def in_use(self, instance_id: uuid.UUID) -> int:
        """Requests of the instance holding or waiting for a slot now."""
        entry = self._slots.get(instance_id)
        return entry[1][0] if entry else 0
