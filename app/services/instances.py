"""Use cases on JIRA instances: create (a Data Center server with a key pair or an OAuth 2.0 client, or a Jira Cloud
site; a webhook secret), change, delete, rotate the webhook secret.

Creating or changing an instance may change where entries go (CONTRACT 3, routing): entries that were
skipped for want of an instance are routed again in the same unit of work, whose commit feeds their new
status to the changes feed and then wakes their pushers (batch priority).
"""

from __future__ import annotations

import asyncio
import hmac
import uuid
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import now_utc
from app.db.models import JiraInstanceRow, Tenant
from app.db.repositories import entries as entries_repo
from app.db.repositories import jira as jira_repo
from app.domain.auth import AuthKind, Deployment, auth_problems, deployment_problems, link_changes
from app.domain.commands import ChangeInstance, NewInstance
from app.security.api_keys import new_webhook_secret
from app.security.rsa_keys import KeyPair, generate_key_pair, import_private_key
from app.security.secrets import SecretBox, binding
from app.services.connect import disconnect_link_change
from app.services.entries import reroute_skipped
from app.services.unit_of_work import UnitOfWork

ROUTING_FIELDS = ("project_keys",)


class DuplicateInstanceName(ValueError):
    """Another instance of the tenant already has this name."""


class InvalidInstance(ValueError):
    """The instance's authentication settings do not fit its `auth` (HTTP 422); `problems` are (field, reason)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in problems))
        self.problems = problems


@dataclass
class InstanceChange:
    row: JiraInstanceRow
    webhook_secret: str | None = field(default=None, repr=False)  # only when created or rotated now
    due_entries: list[str] = field(default_factory=list)  # entries rerouted and due (their pushers are woken at commit)


async def _name_taken(session: AsyncSession, tenant_id: uuid.UUID, name: str, *, other_than: uuid.UUID | None) -> bool:
    return any(i.name == name and i.id != other_than for i in await jira_repo.list_instances(session, tenant_id))


async def create_instance(uow: UnitOfWork, box: SecretBox, tenant: Tenant, data: NewInstance, *,
                          atlassian_app_configured: bool = False) -> InstanceChange:
    """A new instance with its sealed private key and webhook secret; reroutes skipped entries. A Cloud site needs
    the service's 3LO app (`atlassian_app_configured`)."""
    session = uow.session
    problems = deployment_problems(data.deployment, data.auth, given=data.given, has_site_url=bool(data.site_url),
                                   has_base_url=bool(data.base_url), app_configured=atlassian_app_configured)
    if data.deployment is Deployment.DATACENTER:
        problems += auth_problems(data.auth, given=data.given, has_client_id=bool(data.client_id),
                                  has_client_secret=bool(data.client_secret))
    if problems:
        raise InvalidInstance(problems)
    if await _name_taken(session, tenant.id, data.name, other_than=None):
        raise DuplicateInstanceName(f"a JIRA instance named {data.name!r} already exists")
    instance_id = uuid.uuid4()
    webhook_secret = new_webhook_secret()
    now = now_utc()
    cloud = data.deployment is Deployment.CLOUD
    row = JiraInstanceRow(
        id=instance_id, tenant_id=tenant.id, name=data.name,
        # a Cloud site's address stands in for base_url (what messages name); its API is the gateway's
        base_url=(data.site_url if cloud else data.base_url) or "", deployment=data.deployment.value,
        site_url=data.site_url if cloud else None, auth=data.auth.value,
        consumer_key="" if cloud else data.consumer_key, rate_limit_per_second=data.rate_limit_per_second,
        project_keys=list(data.project_keys),
        webhook_secret_enc=box.seal(webhook_secret, binding("jira_instances", "webhook_secret", instance_id)),
        created_at=now, updated_at=now,
    )
    how = "Jira Cloud, 3LO" if cloud else data.auth.value
    if data.auth is AuthKind.OAUTH1:
        keys = await _key_pair(data.private_key_pem)
        _store_key_pair(box, row, keys)
        how = f"oauth1, {'imported' if data.private_key_pem is not None else 'generated'} {keys.bits}-bit key"
    elif data.auth is AuthKind.OAUTH2:
        row.oauth2_client_id = data.client_id
        _store_client_secret(box, row, data.client_secret or "")
        how = f"oauth2, client {data.client_id}"
    session.add(row)
    await _flush(session, data.name)
    entries_repo.add_audit(session, tenant_id=tenant.id, action="instance.created", outcome="ok",
                           jira_instance_id=instance_id, detail=f"{data.name} at {row.base_url} ({how})")
    due = await reroute_skipped(uow, tenant, now=now)
    return InstanceChange(row, webhook_secret, due)


async def _key_pair(private_key_pem: str | None) -> KeyPair:
    if private_key_pem is not None:
        return import_private_key(private_key_pem)
    return await asyncio.to_thread(generate_key_pair)  # RSA generation would stall every other request


def _store_key_pair(box: SecretBox, row: JiraInstanceRow, keys: KeyPair) -> None:
    row.private_key_enc = box.seal(keys.private_pem, binding("jira_instances", "private_key", row.id))
    row.public_key_pem = keys.public_pem


def _store_client_secret(box: SecretBox, row: JiraInstanceRow, secret: str) -> None:
    row.oauth2_client_secret_enc = box.seal(secret, binding("jira_instances", "oauth2_client_secret", row.id))


def _same_client_secret(box: SecretBox, row: JiraInstanceRow, secret: str) -> bool:
    if row.oauth2_client_secret_enc is None:
        return False
    stored = box.open(row.oauth2_client_secret_enc, binding("jira_instances", "oauth2_client_secret", row.id))
    return hmac.compare_digest(stored.encode(), secret.encode())


async def update_instance(
    uow: UnitOfWork, box: SecretBox, tenant: Tenant, row: JiraInstanceRow, patch: ChangeInstance,
) -> InstanceChange:
    """Apply the fields given; a change of `project_keys` reroutes skipped entries, a new link (a new `auth`, or a
    new base_url, consumer_key, key pair or client_id of the kind in use) disconnects the instance's users.

    Switching to `oauth1` without a key pair generates one (unless `private_key_pem` imports one); switching to
    `oauth2` needs the client id and secret, given now or stored before. What another kind uses stays stored."""
    session = uow.session
    before = AuthKind(row.auth)
    after = patch.auth or before
    deployment = Deployment(row.deployment)
    problems: list[tuple[str, str]] = []
    if patch.deployment is not None and patch.deployment is not deployment:
        problems.append(("deployment", f"cannot be changed (this instance is {deployment.value}): worklog ids and "
                                       "users differ between deployments; create a new instance instead"))
    problems += deployment_problems(deployment, after, given=patch.named() - {"deployment"},
                                    has_site_url=bool(patch.site_url or row.site_url), has_base_url=bool(row.base_url),
                                    app_configured=True)
    if deployment is Deployment.DATACENTER:
        problems += auth_problems(after, given=patch.named(),
                                  has_client_id=bool(patch.client_id or row.oauth2_client_id),
                                  has_client_secret=bool(patch.client_secret or row.oauth2_client_secret_enc))
    if problems:
        raise InvalidInstance(problems)
    changes = patch.given()
    if patch.name is not None and patch.name != row.name and await _name_taken(
        session, tenant.id, patch.name, other_than=row.id
    ):
        raise DuplicateInstanceName(f"a JIRA instance named {patch.name!r} already exists")
    changed = [name for name, value in changes.items() if getattr(row, name) != value]
    for name in changed:
        setattr(row, name, changes[name])
    if after is not before:
        row.auth = after.value
        changed.append("auth")
    if patch.site_url is not None and patch.site_url != row.site_url:
        # another site: its id is learnt again by the next connection (the users' consents may not reach it)
        row.site_url = row.base_url = patch.site_url
        row.cloud_id = None
        changed.append("site_url")
    if patch.client_id is not None and patch.client_id != row.oauth2_client_id:
        row.oauth2_client_id = patch.client_id
        changed.append("client_id")
    if patch.client_secret is not None and not _same_client_secret(box, row, patch.client_secret):
        _store_client_secret(box, row, patch.client_secret)
        changed.append("client_secret")
    if patch.private_key_pem is not None or (after is AuthKind.OAUTH1 and row.private_key_enc is None):
        keys = await _key_pair(patch.private_key_pem)
        if keys.public_pem != row.public_key_pem:
            _store_key_pair(box, row, keys)
            changed.append("key pair")
    if not changed:
        return InstanceChange(row)
    row.updated_at = now = now_utc()
    await _flush(session, row.name)
    entries_repo.add_audit(session, tenant_id=tenant.id, action="instance.updated", outcome="ok",
                           jira_instance_id=row.id, detail="changed " + ", ".join(sorted(changed)))
    link = link_changes(before, after, changed)
    if link:
        await disconnect_link_change(session, row, link, now=now)
    due = await reroute_skipped(uow, tenant, now=now) if any(f in changed for f in ROUTING_FIELDS) else []
    return InstanceChange(row, None, due)


async def delete_instance(session: AsyncSession, tenant: Tenant, row: JiraInstanceRow) -> None:
    """Forget the instance with its connections and pending OAuth requests (entries keep their data)."""
    entries_repo.add_audit(session, tenant_id=tenant.id, action="instance.deleted", outcome="ok",
                           jira_instance_id=row.id, detail=row.name)
    await session.delete(row)
    await session.flush()


async def rotate_webhook_secret(session: AsyncSession, box: SecretBox, tenant: Tenant,
                                row: JiraInstanceRow) -> InstanceChange:
    """A new webhook secret for JIRA's webhooks; the old one stops working at commit."""
    secret = new_webhook_secret()
    row.webhook_secret_enc = box.seal(secret, binding("jira_instances", "webhook_secret", row.id))
    row.updated_at = now_utc()
    entries_repo.add_audit(session, tenant_id=tenant.id, action="instance.webhook_secret_rotated", outcome="ok",
                           jira_instance_id=row.id)
    return InstanceChange(row, secret)


async def _flush(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError:
        # two requests raced for the same name: the unique constraint decides
        await session.rollback()
        raise DuplicateInstanceName(f"a JIRA instance named {name!r} already exists") from None
