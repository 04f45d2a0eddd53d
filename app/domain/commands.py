"""What a caller asks a use case to do, as plain values: services never see an HTTP schema. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime, time

from app.domain.auth import AuthKind, Deployment


@dataclass(frozen=True)
class ChangeEntry:
    """TimeTracker's new state of an entry (PUT, batch item or webhook), already validated."""

    user: str
    ticket: str  # normalised (`PROJ-123`)
    day: date
    start: time
    duration: int  # minutes; 0 means no worklog
    timezone: str | None  # None: the tenant's
    description: str | None
    activity: str | None
    jira_instance: str | None  # id or name of the instance to use; None: routed by the ticket's project
    updated_at: datetime | None  # orders changes; None: when it was received


@dataclass(frozen=True)
class NewInstance:
    """A JIRA instance to register (with `oauth1`, a key pair is generated unless `private_key_pem` is given): a Data
    Center server at `base_url`, or a Jira Cloud site at `site_url`.

    `given` names the fields the caller set (the others are defaults): a field of another `auth` or deployment is a
    mistake."""

    name: str
    base_url: str | None
    consumer_key: str
    rate_limit_per_second: int
    project_keys: list[str]
    private_key_pem: str | None = field(default=None, repr=False)
    auth: AuthKind = AuthKind.OAUTH1
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    deployment: Deployment = Deployment.DATACENTER
    site_url: str | None = None
    given: frozenset[str] = frozenset()


# fields a change does not copy onto the row as they are: secrets are sealed, the kind, client id, deployment and
# site are checked
_NOT_COPIED = ("private_key_pem", "client_secret", "auth", "client_id", "deployment", "site_url")


@dataclass(frozen=True)
class ChangeInstance:
    """The fields of an instance to change; None leaves a field as it is."""

    name: str | None = None
    base_url: str | None = None
    consumer_key: str | None = None
    rate_limit_per_second: int | None = None
    project_keys: list[str] | None = None
    private_key_pem: str | None = field(default=None, repr=False)  # a new key pair (imported; never stored as given)
    auth: AuthKind | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    deployment: Deployment | None = None  # may only repeat the instance's own (a deployment is not changed)
    site_url: str | None = None

    def given(self) -> dict[str, object]:
        """Field name → new value, for the plain fields given (not the secrets, the kind or the client id)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in _NOT_COPIED and getattr(self, f.name) is not None}

    def named(self) -> frozenset[str]:
        """Every field given."""
        return frozenset(f.name for f in fields(self) if getattr(self, f.name) is not None)
