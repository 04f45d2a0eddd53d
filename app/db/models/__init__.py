"""SQLAlchemy models; importing this package registers every table on `Base.metadata`."""

from app.db.models.activity import AuditRow, ChangeRow, ConflictRow, NotificationRow
from app.db.models.base import Base
from app.db.models.entries import EntryRow, WebhookDeliveryRow
from app.db.models.jira import ConnectionRow, JiraInstanceRow, OAuthRequestRow
from app.db.models.tenancy import ApiKey, Tenant, UserTokenGeneration, UserTokenKey

__all__ = [
    "ApiKey",
    "AuditRow",
    "Base",
    "ChangeRow",
    "ConflictRow",
    "ConnectionRow",
    "EntryRow",
    "JiraInstanceRow",
    "NotificationRow",
    "OAuthRequestRow",
    "Tenant",
    "UserTokenGeneration",
    "UserTokenKey",
    "WebhookDeliveryRow",
]
