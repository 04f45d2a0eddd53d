"""Building a signed JIRA target from an instance row and a user's connection (secrets opened here only)."""

from __future__ import annotations

from app.db.models import ConnectionRow, JiraInstanceRow
from app.domain.priority import Priority
from app.jira.client import JiraTarget
from app.jira.gate import InstanceRef
from app.security.secrets import SecretBox, binding


def instance_ref(instance: JiraInstanceRow) -> InstanceRef:
    return InstanceRef(instance.id, instance.rate_limit_per_second)


def private_key_pem(box: SecretBox, instance: JiraInstanceRow) -> bytes:
    return box.open_bytes(instance.private_key_enc, binding("jira_instances", "private_key", instance.id))


def instance_webhook_secret(box: SecretBox, instance: JiraInstanceRow) -> str:
    return box.open(instance.webhook_secret_enc, binding("jira_instances", "webhook_secret", instance.id))


def consumer_target(box: SecretBox, instance: JiraInstanceRow, *, priority: Priority = Priority.USER) -> JiraTarget:
    """Signed as the consumer only (OAuth token calls)."""
    return JiraTarget(instance_ref(instance), instance.base_url, instance.consumer_key,
                      private_key_pem(box, instance), priority=priority)


def user_target(
    box: SecretBox, instance: JiraInstanceRow, connection: ConnectionRow, *, priority: Priority = Priority.USER
) -> JiraTarget | None:
    """Signed as the user; None when the connection holds no usable token."""
    if connection.status != "connected" or not connection.access_token_enc:
        return None
    token = box.open(connection.access_token_enc, binding("jira_connections", "access_token", connection.id))
    secret = (
        box.open(connection.token_secret_enc, binding("jira_connections", "token_secret", connection.id))
        if connection.token_secret_enc else None
    )
    return JiraTarget(instance_ref(instance), instance.base_url, instance.consumer_key,
                      private_key_pem(box, instance), access_token=token, token_secret=secret, priority=priority)
