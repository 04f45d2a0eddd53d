"""TimeTracker webhook (CONTRACT section 6): signature, tolerance, replay, stale, size, malformed."""

from __future__ import annotations

import json
import time
import uuid

from app.security.signatures import sign_timetracker

ENTRY = {
    "id": 4711, "user": "jdoe", "ticket": "PROJ-123", "date": "2026-11-25", "start": "09:00", "duration": 90,
    "timezone": "Europe/Berlin", "description": "Fix login", "activity": "Development",
    "updated_at": "2026-11-25T10:31:00Z",
}


def event(kind="entry.updated", **entry):
    return json.dumps({"event": kind, "entry": {**ENTRY, **entry}}).encode()


async def send(api, tenant, body: bytes, *, delivery=None, secret=None, t=None, headers=None):
    h = {
        "X-TimeTracker-Signature": sign_timetracker(secret or tenant.webhook_secret, body, t),
        "X-TimeTracker-Delivery": delivery or str(uuid.uuid4()),
        "Content-Type": "application/json",
    }
    h.update(headers or {})
    return await api.post(f"/webhooks/timetracker/{tenant.tenant_id}", content=body, headers=h)


async def entry_of(api, tenant, entry_id="4711"):
    return await api.get(f"/api/v1/entries/{entry_id}", headers={"Authorization": f"Bearer {tenant.api_key}"})


async def test_signed_event_is_accepted(api, tenant):
    r = await send(api, tenant, event())
    assert r.status_code == 202, r.text
    assert (await entry_of(api, tenant)).json()["duration"] == 90


async def test_wrong_signature_is_401_and_stores_nothing(api, tenant):
    r = await send(api, tenant, event(), secret="whsec_wrong")
    assert r.status_code == 401
    assert (await entry_of(api, tenant)).status_code == 404


async def test_missing_signature_is_401(api, tenant):
    body = event()
    r = await api.post(f"/webhooks/timetracker/{tenant.tenant_id}", content=body,
                       headers={"X-TimeTracker-Delivery": "x1"})
    assert r.status_code == 401


async def test_signature_of_other_body_is_401(api, tenant):
    body = event()
    sig = sign_timetracker(tenant.webhook_secret, body)
    r = await api.post(f"/webhooks/timetracker/{tenant.tenant_id}", content=event(duration=5),
                       headers={"X-TimeTracker-Signature": sig, "X-TimeTracker-Delivery": "x2"})
    assert r.status_code == 401


async def test_timestamp_outside_tolerance_is_401(api, tenant):
    # Whole seconds and the request's own transit blur the edge by up to ~1 s; the exact
    # boundary is pinned in tests/unit/test_signatures.py with a fixed clock.
    r = await send(api, tenant, event(), t=int(time.time()) - 330)
    assert r.status_code == 401 and "300" in r.json()["detail"]
    r = await send(api, tenant, event(), t=int(time.time()) + 330)
    assert r.status_code == 401
    assert (await send(api, tenant, event(), t=int(time.time()) - 270)).status_code == 202
    assert (await send(api, tenant, event(), t=int(time.time()) + 270)).status_code == 202


async def test_unknown_tenant_is_404(api, tenant):
    body = event()
    sig = sign_timetracker(tenant.webhook_secret, body)
    for tid in (uuid.uuid4(), "not-a-uuid"):
        r = await api.post(f"/webhooks/timetracker/{tid}", content=body,
                           headers={"X-TimeTracker-Signature": sig, "X-TimeTracker-Delivery": "x"})
        assert r.status_code == 404


async def test_replayed_delivery_is_duplicate_without_effect(api, tenant):
    assert (await send(api, tenant, event(duration=30), delivery="d-1")).status_code == 202
    # a newer change sent under the same delivery id is a replay: no effect
    r = await send(api, tenant, event(duration=45, updated_at="2026-11-26T00:00:00Z"), delivery="d-1")
    assert r.status_code == 200 and r.json() == {"duplicate": True}
    assert (await entry_of(api, tenant)).json()["duration"] == 30


async def test_copies_of_one_delivery_at_once_apply_it_once(api, tenant):
    """TimeTracker retrying while its first attempt is still in flight: one copy is accepted, every other one is a
    duplicate (one of them may lose the race to write and run again: it then finds the delivery recorded)."""
    import asyncio

    body = event(id="race", duration=30)
    answers = await asyncio.gather(*(send(api, tenant, body, delivery="d-race") for _ in range(8)))
    assert sorted(r.status_code for r in answers) == [200] * 7 + [202]
    assert all(r.json() == {"duplicate": True} for r in answers if r.status_code == 200)
    stale = await asyncio.gather(*(send(api, tenant, event(id="race", duration=10, updated_at="2026-11-01T00:00:00Z"),
                                        delivery="d-stale") for _ in range(4)))
    assert sorted(r.json().get("stale", False) for r in stale) == [False] * 3 + [True]
    assert (await entry_of(api, tenant, "race")).json()["duration"] == 30


async def test_rejected_delivery_is_not_remembered(api, tenant):
    assert (await send(api, tenant, event(duration=-1), delivery="d-2")).status_code == 422
    assert (await send(api, tenant, event(duration=20), delivery="d-2")).status_code == 202


async def test_stale_change_is_reported_and_ignored(api, tenant):
    await send(api, tenant, event(duration=60, updated_at="2026-11-25T12:00:00Z"))
    r = await send(api, tenant, event(duration=10, updated_at="2026-11-25T11:00:00Z"))
    assert r.status_code == 200 and r.json() == {"stale": True}
    assert (await entry_of(api, tenant)).json()["duration"] == 60
    # an equal stamp is applied
    r = await send(api, tenant, event(duration=15, updated_at="2026-11-25T12:00:00Z"))
    assert r.status_code == 202 and (await entry_of(api, tenant)).json()["duration"] == 15


async def test_oversized_body_is_413_whatever_its_signature(api, tenant):
    big = b'{"event": "entry.updated", "entry": {"description": "' + b"x" * (1024 * 1024) + b'"}}'
    r = await api.post(f"/webhooks/timetracker/{tenant.tenant_id}", content=big,
                       headers={"X-TimeTracker-Signature": "t=1,v1=00", "X-TimeTracker-Delivery": "big"})
    assert r.status_code == 413
    r = await api.post(f"/webhooks/timetracker/{uuid.uuid4()}", content=big, headers={})
    assert r.status_code == 413


async def test_oversized_chunked_body_is_413(api, tenant):
    async def chunks():
        for _ in range(20):
            yield b"x" * 65536

    r = await api.post(f"/webhooks/timetracker/{tenant.tenant_id}", content=chunks(),
                       headers={"X-TimeTracker-Signature": "t=1,v1=00", "X-TimeTracker-Delivery": "big2"})
    assert r.status_code == 413


async def test_malformed_bodies_store_nothing(api, tenant):
    assert (await send(api, tenant, b"{not json")).status_code == 400
    exploded = json.dumps({"event": "entry.exploded", "entry": ENTRY}).encode()
    assert (await send(api, tenant, exploded)).status_code == 422
    r = await send(api, tenant, event(ticket="nope"))
    assert r.status_code == 422 and "entry.ticket" in r.json()["detail"]
    assert (await send(api, tenant, json.dumps({"event": "entry.updated"}).encode())).status_code == 422
    assert (await entry_of(api, tenant)).status_code == 404


async def test_missing_delivery_header_is_400(api, tenant):
    body = event()
    r = await api.post(f"/webhooks/timetracker/{tenant.tenant_id}", content=body,
                       headers={"X-TimeTracker-Signature": sign_timetracker(tenant.webhook_secret, body)})
    assert r.status_code == 400 and "Delivery" in r.json()["detail"]


async def test_deleted_event_needs_only_the_id(api, tenant):
    await send(api, tenant, event())
    body = json.dumps({"event": "entry.deleted", "entry": {"id": 4711}}).encode()
    assert (await send(api, tenant, body)).status_code == 202
    got = (await entry_of(api, tenant)).json()
    assert got["deleted"] is True and got["sync"]["status"] == "deleted"


async def test_an_older_deletion_and_an_older_change_after_a_deletion_are_stale(api, tenant):
    await send(api, tenant, event(duration=60, updated_at="2026-11-25T12:00:00Z"))
    before = (await entry_of(api, tenant)).json()
    older_delete = json.dumps({"event": "entry.deleted",
                               "entry": {"id": 4711, "updated_at": "2026-11-25T11:00:00Z"}}).encode()
    r = await send(api, tenant, older_delete)
    assert r.status_code == 200 and r.json() == {"stale": True}
    assert (await entry_of(api, tenant)).json() == before

    newer_delete = json.dumps({"event": "entry.deleted",
                               "entry": {"id": 4711, "updated_at": "2026-11-25T13:00:00Z"}}).encode()
    assert (await send(api, tenant, newer_delete)).status_code == 202
    deleted = (await entry_of(api, tenant)).json()
    assert deleted["deleted"] is True and deleted["sync"]["status"] == "deleted"
    # an update made before the deletion, delivered after it
    r = await send(api, tenant, event(duration=10, updated_at="2026-11-25T12:30:00Z"))
    assert r.status_code == 200 and r.json() == {"stale": True}
    assert (await entry_of(api, tenant)).json() == deleted
