"""Queries on entries, the changes feed and the audit log."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import asyncpg
from sqlalchemy import Table, bindparam, func, insert, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import AuditRow, ChangeRow, EntryRow, JiraInstanceRow, NotificationRow, WebhookDeliveryRow
from app.domain.entry import InstanceRoute, SyncStatus

# Statements run on every accepted change, built once: building one anew took about a fifth of its CPU time.
_ENTRY_BY_ID = select(EntryRow).where(
    EntryRow.tenant_id == bindparam("tenant_id"), EntryRow.id == bindparam("entry_id")
)
_ENTRY_BY_ID_LOCKED = _ENTRY_BY_ID.with_for_update()
_INSTANCE_ROUTES = select(JiraInstanceRow.id, JiraInstanceRow.name, JiraInstanceRow.project_keys).where(
    JiraInstanceRow.tenant_id == bindparam("tenant_id")
)


async def get_entry(
    session: AsyncSession, tenant_id: uuid.UUID, entry_id: str, *, lock: bool = False
) -> EntryRow | None:
    stmt = _ENTRY_BY_ID_LOCKED if lock else _ENTRY_BY_ID
    return (await session.execute(stmt, {"tenant_id": tenant_id, "entry_id": entry_id})).scalar_one_or_none()


def new_entry(session: AsyncSession, tenant_id: uuid.UUID, entry_id: str, *, now: datetime) -> EntryRow:
    """A new entry, added to the session: no content yet (the caller sets it), sync state pending, never pushed."""
    row = EntryRow(
        tenant_id=tenant_id, id=entry_id, version=0, synced_version=0, sync_status=SyncStatus.PENDING, attempts=0,
        is_deleted=False, create_unconfirmed=False, created_at=now,
    )
    session.add(row)
    return row


# -- an entry change written in one statement -------------------------------------------------------------------
# TimeTracker's single-entry changes (PUT, the webhook) read the entry without a lock and write it back, with its
# feed records and the webhook's delivery id, in one statement guarded by the version read (PostgreSQL's `xmin`,
# new with every update of the row): outside a transaction that is two round trips per change, none of them
# waiting for another writer. A write that finds the entry changed meanwhile writes nothing; the unit of work then
# runs the change again on what is there now (`app.services.unit_of_work.UnitOfWork.run`).

# The statements are text built once at import from the model's own column names (ruff's S608 is silenced for
# them): every value is a bind parameter.
_ENTRY_TABLE = cast(Table, EntryRow.__table__)
_COLUMNS = tuple(c.name for c in _ENTRY_TABLE.columns)
_KEY = ("tenant_id", "id")
_SET = tuple(c for c in _COLUMNS if c not in _KEY)
_JSON = frozenset(c.name for c in _ENTRY_TABLE.columns if isinstance(c.type, JSONB))  # sent as JSON text


def _q(name: str) -> str:
    return f'"{name}"'


@dataclass
class LoadedEntry:
    """An entry as read for a change (None: no such entry), detached from any session, with what deciding the
    change needs: the tenant's routes, and whether this webhook delivery was accepted before."""

    row: EntryRow | None
    version: str | None  # the row version read (`xmin`): the write's guard
    routes: list[InstanceRoute]
    delivered: bool = False


NOTHING = text("SELECT 1")  # a statement that only opens the session's transaction

_ROUTES_JSON = ("(SELECT coalesce(json_agg(json_build_array(i.id, i.name, i.project_keys)), '[]'::json) "
                "FROM jira_instances i WHERE i.tenant_id = $1)")
_LOAD_ONE = (
    f"SELECT {', '.join('e.' + _q(c) for c in _COLUMNS)}, e.xmin::text AS row_version, {_ROUTES_JSON} AS routes, "  # noqa: S608
    "($3::text IS NOT NULL AND EXISTS (SELECT 1 FROM webhook_deliveries d "
    "WHERE d.tenant_id = $1 AND d.delivery_id = $3)) AS delivered "
    "FROM (SELECT 1) AS one LEFT JOIN entries e ON e.tenant_id = $1 AND e.id = $2"
)
_LOAD_MANY_LOCKED = (
    f"SELECT {', '.join(_q(c) for c in _COLUMNS)}, xmin::text AS row_version FROM entries "  # noqa: S608
    "WHERE tenant_id = $1 AND id = ANY($2::text[]) ORDER BY id FOR UPDATE"  # a stable lock order: no deadlocks
)
_LOAD_ROUTES = f"SELECT {_ROUTES_JSON}"
# $1 tenant, $2 id, then the other columns; the last three: the version read, the feed records, the delivery id
_N = len(_COLUMNS)
_FEED_AND_DELIVERY = (
    ", fed AS (INSERT INTO changes (tenant_id, entry_id, \"user\", kind, entry) "  # noqa: S608
    "SELECT $1, $2, f.rec->'entry'->>'user', f.rec->>'kind', f.rec->'entry' "
    f"FROM written, jsonb_array_elements(${_N + 2}::jsonb) WITH ORDINALITY AS f(rec, n) ORDER BY f.n), "
    "delivered AS (INSERT INTO webhook_deliveries (tenant_id, delivery_id) "
    f"SELECT $1, ${_N + 3}::text FROM written WHERE ${_N + 3}::text IS NOT NULL ON CONFLICT DO NOTHING) "
    "SELECT count(*) FROM written"
)
_UPDATE_ONE = (
    "WITH written AS (UPDATE entries SET "  # noqa: S608
    + ", ".join(f"{_q(c)} = ${i + 3}" for i, c in enumerate(_SET))
    + f" WHERE tenant_id = $1 AND id = $2 AND xmin = ${_N + 1}::text::xid RETURNING 1)" + _FEED_AND_DELIVERY
)
_INSERT_ONE = (
    f"WITH written AS (INSERT INTO entries ({', '.join(_q(c) for c in (*_KEY, *_SET))}) "  # noqa: S608
    f"VALUES ({', '.join(f'${i + 1}' for i in range(_N))}) ON CONFLICT (tenant_id, id) DO NOTHING "
    f"RETURNING ${_N + 1}::text IS NULL)"  # the version read (none) is a parameter here too
    + _FEED_AND_DELIVERY
)
_REMEMBER_DELIVERY_ALONE = ("INSERT INTO webhook_deliveries (tenant_id, delivery_id) VALUES ($1, $2) "
                            "ON CONFLICT DO NOTHING RETURNING 1")


def _routes(value: Any) -> list[InstanceRoute]:
    items = json.loads(value) if isinstance(value, str) else value
    return [InstanceRoute(uuid.UUID(i), name, keys or []) for i, name, keys in items]


def _detached(record: Any) -> EntryRow | None:
    if record["id"] is None:
        return None
    return EntryRow(**{c: record[c] for c in _COLUMNS})


async def load_for_change(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, entry_id: str, *, delivery_id: str | None = None
) -> LoadedEntry:
    """One round trip: the entry (unlocked), its version, the tenant's routes, and whether `delivery_id` was
    accepted before."""
    record = await conn.fetchrow(_LOAD_ONE, tenant_id, entry_id, delivery_id)
    row = _detached(record)
    return LoadedEntry(row, record["row_version"] if row else None, _routes(record["routes"]),
                       bool(record["delivered"]))


async def load_many_locked(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, entry_ids: Sequence[str]
) -> dict[str, LoadedEntry]:
    """Entries of one tenant, locked until the caller's transaction ends (which must be open), by id; ids without
    an entry map to an empty one. All share one routes list."""
    routes = _routes(await conn.fetchval(_LOAD_ROUTES, tenant_id))
    found = {r["id"]: r for r in await conn.fetch(_LOAD_MANY_LOCKED, tenant_id, list(entry_ids))}
    return {i: LoadedEntry(_detached(found[i]), found[i]["row_version"], routes) if i in found
            else LoadedEntry(None, None, routes) for i in entry_ids}


def new_detached_entry(tenant_id: uuid.UUID, entry_id: str, *, now: datetime) -> EntryRow:
    """A new entry, in no session (`write_entry` inserts it): no content yet, pending, never pushed."""
    return EntryRow(
        tenant_id=tenant_id, id=entry_id, version=0, synced_version=0, sync_status=SyncStatus.PENDING, attempts=0,
        is_deleted=False, create_unconfirmed=False, created_at=now, priority=0,
    )


def _value(row: EntryRow, column: str) -> Any:
    value = getattr(row, column)
    return json.dumps(value) if column in _JSON and value is not None else value


def _write_args(row: EntryRow, version: str | None, feed: list[tuple[str, dict[str, Any]]],
                delivery_id: str | None) -> tuple[str, list[Any]]:
    values = [row.tenant_id, row.id, *(_value(row, c) for c in _SET)]
    records = json.dumps([{"kind": kind, "entry": view} for kind, view in feed])
    return (_INSERT_ONE if version is None else _UPDATE_ONE), [*values, version, records, delivery_id]


async def write_entry(
    conn: asyncpg.Connection, row: EntryRow, *, version: str | None, feed: list[tuple[str, dict[str, Any]]],
    delivery_id: str | None = None,
) -> bool:
    """Insert (`version` None) or update the entry with its feed records (kind, entry view) and the delivery id, in
    one statement; False (nothing written) when the entry changed since it was read at `version`, or was created
    meanwhile."""
    sql, args = _write_args(row, version, feed, delivery_id)
    return bool(await conn.fetchval(sql, *args))


_CREATED_BY_OTHERS = ("SELECT count(*) FROM entries WHERE tenant_id = $1 AND id = ANY($2::text[]) "
                      "AND xmin <> pg_current_xact_id()::xid")


async def write_entries_locked(
    conn: asyncpg.Connection, writes: Sequence[tuple[EntryRow, str | None, list[tuple[str, dict[str, Any]]]]]
) -> bool:
    """Several entries of one tenant read with `load_many_locked` in the transaction still open, pipelined (one
    round trip for all). The ones read are locked, so their guards hold; False when one the read did not find was
    created by someone else meanwhile (nothing of it was written: run the change again)."""
    if not writes:
        return True
    inserts = [_write_args(row, None, feed, None)[1] for row, version, feed in writes if version is None]
    updates = [_write_args(row, version, feed, None)[1] for row, version, feed in writes if version is not None]
    if updates:
        await conn.executemany(_UPDATE_ONE, updates)
    if not inserts:
        return True
    await conn.executemany(_INSERT_ONE, inserts)
    return not await conn.fetchval(_CREATED_BY_OTHERS, writes[0][0].tenant_id, [args[1] for args in inserts])


async def remember_delivery_alone(conn: asyncpg.Connection, tenant_id: uuid.UUID, delivery_id: str) -> bool:
    """Record a webhook delivery that wrote no entry (stale, unknown entry); False when it was recorded before."""
    return await conn.fetchval(_REMEMBER_DELIVERY_ALONE, tenant_id, delivery_id) is not None


async def get_entries(
    session: AsyncSession, tenant_id: uuid.UUID, entry_ids: Sequence[str], *, lock: bool = False
) -> dict[str, EntryRow]:
    if not entry_ids:
        return {}
    stmt = (
        select(EntryRow)
        .where(EntryRow.tenant_id == tenant_id, EntryRow.id.in_(list(entry_ids)))
        .order_by(EntryRow.id)  # a stable lock order, so concurrent batches cannot deadlock
    )
    if lock:
        stmt = stmt.with_for_update()
    return {row.id: row for row in (await session.execute(stmt)).scalars()}


async def list_entries(
    session: AsyncSession, tenant_id: uuid.UUID, *, status: str | None, user: str | None, ticket: str | None,
    after_id: str | None, limit: int,
) -> list[EntryRow]:
    stmt = select(EntryRow).where(EntryRow.tenant_id == tenant_id)
    if status:
        stmt = stmt.where(EntryRow.sync_status == status)
    if user:
        stmt = stmt.where(EntryRow.user == user)
    if ticket:
        stmt = stmt.where(EntryRow.ticket == ticket)
    if after_id is not None:
        stmt = stmt.where(EntryRow.id > after_id)
    stmt = stmt.order_by(EntryRow.id).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def instance_routes(session: AsyncSession, tenant_id: uuid.UUID) -> list[InstanceRoute]:
    rows = await session.execute(_INSTANCE_ROUTES, {"tenant_id": tenant_id})
    return [InstanceRoute(r.id, r.name, r.project_keys or []) for r in rows]


async def add_changes(session: AsyncSession, changes: Sequence[tuple[uuid.UUID, str, str, dict[str, Any]]]) -> None:
    """Append (tenant, entry id, kind, entry view) records to the feed, in this order, in one statement.

    A Core insert: nothing reads the rows back, so the ORM's per-object bookkeeping would be pure cost.
    """
    if not changes:
        return
    await session.execute(
        insert(cast(Table, ChangeRow.__table__)),
        [{"tenant_id": t, "entry_id": e, "user": view.get("user"), "kind": k, "entry": view}
         for t, e, k, view in changes],
    )


# Feed positions follow commit order without a writer lock: a reader places the committed records that have no
# position yet after every placed one (insertion order among them; one entry's records are inserted in the order
# its changes commit, since each change of an entry waits for the one before). A record still uncommitted is
# invisible here and is placed by a later read, after everything placed now: a reader that has passed position N
# never finds a record below N later. Readers of one tenant place records one at a time (an advisory lock held by
# readers only, until their commit); writers never wait for anything of the feed.
_LOCK_FEED_READERS = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")
_PLACE_RECORDS = text("""
    WITH unplaced AS (
        SELECT id, row_number() OVER (ORDER BY id) AS n FROM changes
        WHERE tenant_id = :tenant_id AND seq IS NULL ORDER BY id LIMIT :at_most
    ), last AS (SELECT coalesce(max(seq), 0) AS seq FROM changes WHERE tenant_id = :tenant_id)
    UPDATE changes SET seq = last.seq + unplaced.n FROM unplaced, last WHERE changes.id = unplaced.id
""")
_PLACE_AT_MOST = 10_000  # records placed by one read; more are placed by the next


async def list_changes(
    session: AsyncSession, tenant_id: uuid.UUID, after: int, limit: int, *, user: str | None = None
) -> list[ChangeRow]:
    """Feed records with a position after `after`, in position order; with `user`, only those about that user's
    entries. Places the tenant's newly committed records first (all of them, whoever reads)."""
    await session.execute(_LOCK_FEED_READERS, {"k": f"changes:{tenant_id}"})
    await session.execute(_PLACE_RECORDS, {"tenant_id": tenant_id, "at_most": _PLACE_AT_MOST})
    stmt = select(ChangeRow).where(ChangeRow.tenant_id == tenant_id, ChangeRow.seq > after)
    if user is not None:
        stmt = stmt.where(ChangeRow.user == user)
    rows = list((await session.execute(stmt.order_by(ChangeRow.seq).limit(limit))).scalars())
    await session.commit()  # the placements are kept, and the readers' lock is released
    return rows


def add_audit(
    session: AsyncSession, *, tenant_id: uuid.UUID, action: str, outcome: str, entry_id: str | None = None,
    jira_instance_id: uuid.UUID | None = None, http_status: int | None = None, detail: str | None = None,
    duration_ms: int | None = None,
) -> None:
    session.add(
        AuditRow(
            tenant_id=tenant_id, action=action, outcome=outcome, entry_id=entry_id, jira_instance_id=jira_instance_id,
            http_status=http_status, detail=detail, duration_ms=duration_ms,
        )
    )


async def lock_notification_key(
    session: AsyncSession, *, tenant_id: uuid.UUID, user: str, kind: str, jira_instance_id: uuid.UUID | None,
    entry_id: str | None,
) -> None:
    """Serialise "is there an unread one already?" for one notification key until commit.

    Without it two pushes parking entries at once (one meeting the 401, one finding the connection already
    rejected) both see no unread notification and both add one.
    """
    key = f"notify:{tenant_id}:{user}:{kind}:{jira_instance_id}:{entry_id or ''}"
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


def add_notification(
    session: AsyncSession, *, tenant_id: uuid.UUID, user: str, kind: str, message: str,
    entry_id: str | None = None, jira_instance_id: uuid.UUID | None = None,
) -> None:
    session.add(
        NotificationRow(
            tenant_id=tenant_id, user=user, kind=kind, message=message, entry_id=entry_id,
            jira_instance_id=jira_instance_id,
        )
    )


async def has_unread_notification(
    session: AsyncSession, *, tenant_id: uuid.UUID, user: str, kind: str, jira_instance_id: uuid.UUID | None,
    entry_id: str | None = None, per_entry: bool = False,
) -> bool:
    """Whether `user` still has an unread notification of this kind for the instance (and, `per_entry`, entry)."""
    stmt = select(NotificationRow.id).where(
        NotificationRow.tenant_id == tenant_id, NotificationRow.user == user, NotificationRow.kind == kind,
        NotificationRow.jira_instance_id == jira_instance_id, NotificationRow.read_at.is_(None),
    )
    if per_entry:
        stmt = stmt.where(NotificationRow.entry_id == entry_id)
    return (await session.execute(stmt.limit(1))).first() is not None


_REMEMBER_DELIVERY = (
    pg_insert(WebhookDeliveryRow)
    .values(tenant_id=bindparam("tenant_id"), delivery_id=bindparam("delivery_id"))
    .on_conflict_do_nothing()
    .returning(WebhookDeliveryRow.delivery_id)
)


async def remember_delivery(session: AsyncSession, tenant_id: uuid.UUID, delivery_id: str) -> bool:
    """Record a webhook delivery id; False when it was already accepted before."""
    result = await session.execute(_REMEMBER_DELIVERY, {"tenant_id": tenant_id, "delivery_id": delivery_id})
    return result.first() is not None


# where an entry's next push goes (EntrySync.push_instance); the expression of `ix_entries_push_due`
PUSH_INSTANCE = func.coalesce(EntryRow.worklog_instance_id, EntryRow.instance_id)


async def take_due(session: AsyncSession, instance_id: uuid.UUID, *, now: datetime, limit: int,
                   busy: Sequence[str] = ()) -> list[EntryRow]:
    """Up to `limit` entries due now whose next push goes to `instance_id`, USER before BATCH, oldest first,
    locked for this transaction; entries another transaction holds (a change being accepted), another pusher
    claimed, or in `busy` (being pushed by the caller) are skipped, not waited for."""
    stmt = (
        select(EntryRow)
        .where(PUSH_INSTANCE == instance_id, EntryRow.due_at.is_not(None), EntryRow.due_at <= now,
               or_(EntryRow.claimed_until.is_(None), EntryRow.claimed_until < now))
        .order_by(EntryRow.priority, EntryRow.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if busy:
        stmt = stmt.where(EntryRow.id.not_in(list(busy)))
    return list((await session.execute(stmt)).scalars())


async def next_due_at(session: AsyncSession, instance_id: uuid.UUID, *, busy: Sequence[str] = ()) -> datetime | None:
    """When the earliest entry whose next push goes to `instance_id` (other than `busy` ones) may be taken: when it is
    due, or when another pusher's claim on it lapses; None when nothing is due there."""
    stmt = (select(func.min(func.greatest(EntryRow.due_at, func.coalesce(EntryRow.claimed_until, EntryRow.due_at))))
            .where(PUSH_INSTANCE == instance_id, EntryRow.due_at.is_not(None)))
    if busy:
        stmt = stmt.where(EntryRow.id.not_in(list(busy)))
    earliest: datetime | None = (await session.execute(stmt)).scalar_one_or_none()
    return earliest


async def instances_with_due(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    """Every JIRA instance with at least one entry due now (one index probe per instance, whatever the backlog)."""
    due = (select(EntryRow.tenant_id)
           .where(PUSH_INSTANCE == JiraInstanceRow.id, EntryRow.due_at.is_not(None), EntryRow.due_at <= now)
           .exists())
    rows = await session.execute(select(JiraInstanceRow.id).where(due).order_by(JiraInstanceRow.id))
    return [r[0] for r in rows.all()]


async def take_unrouted_due(session: AsyncSession, *, now: datetime, per_tenant: int) -> list[EntryRow]:
    """Due entries whose next push has no instance (theirs was deleted, or none was ever routed): at most
    `per_tenant` of each tenant, so one tenant's thousands cannot crowd another's out; locked, skipping held ones."""
    ranked = (
        select(EntryRow.tenant_id, EntryRow.id,
               func.row_number().over(partition_by=EntryRow.tenant_id, order_by=EntryRow.due_at).label("n"))
        .where(PUSH_INSTANCE.is_(None), EntryRow.due_at.is_not(None), EntryRow.due_at <= now)
        .subquery()
    )
    picked = select(ranked.c.tenant_id, ranked.c.id).where(ranked.c.n <= per_tenant)
    stmt = (select(EntryRow)
            .where(tuple_(EntryRow.tenant_id, EntryRow.id).in_(picked))
            .order_by(EntryRow.tenant_id, EntryRow.id)
            .with_for_update(skip_locked=True))
    return list((await session.execute(stmt)).scalars())


async def make_pending_due(session: AsyncSession, tenant_id: uuid.UUID, *, now: datetime, priority: int) -> int:
    """`sync-pending` in bulk: the tenant's pending entries without an outbox marker become due now, as
    `EntrySync.mark_due` would make each (entries waiting for a backoff keep their time); returns how many."""
    result = await session.execute(
        update(EntryRow)
        .where(EntryRow.tenant_id == tenant_id, EntryRow.sync_status == SyncStatus.PENDING, EntryRow.due_at.is_(None))
        .values(due_at=now, priority=int(priority))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def entries_skipped_for_routing(session: AsyncSession, tenant_id: uuid.UUID) -> list[EntryRow]:
    """The tenant's `skipped` entries that have something to push: skipped only because no instance was routed."""
    stmt = (
        select(EntryRow)
        .where(EntryRow.tenant_id == tenant_id, EntryRow.sync_status == SyncStatus.SKIPPED,
               EntryRow.is_deleted.is_(False),
               EntryRow.duration > 0)
        .order_by(EntryRow.id)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(stmt)).scalars())


async def pending_ids(session: AsyncSession, tenant_id: uuid.UUID | None) -> list[tuple[uuid.UUID, str]]:
    """(tenant, entry) of every pending entry (of one tenant), oldest marker first (`sync-pending`)."""
    stmt = select(EntryRow.tenant_id, EntryRow.id).where(EntryRow.sync_status == SyncStatus.PENDING)
    if tenant_id is not None:
        stmt = stmt.where(EntryRow.tenant_id == tenant_id)
    return [(r[0], r[1]) for r in (await session.execute(stmt.order_by(EntryRow.due_at))).all()]


async def statuses_of(session: AsyncSession, items: list[tuple[uuid.UUID, str]]) -> Counter[str]:
    """How many of these entries are in each sync status now."""
    counts: Counter[str] = Counter()
    by_tenant: dict[uuid.UUID, list[str]] = {}
    for tenant_id, entry_id in items:
        by_tenant.setdefault(tenant_id, []).append(entry_id)
    for tenant_id, ids in by_tenant.items():
        for chunk in (ids[i : i + 5000] for i in range(0, len(ids), 5000)):
            rows = await session.execute(
                select(EntryRow.sync_status, func.count())
                .where(EntryRow.tenant_id == tenant_id, EntryRow.id.in_(chunk))
                .group_by(EntryRow.sync_status)
            )
            for status, n in rows.all():
                counts[status] += n
    return counts
