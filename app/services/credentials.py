"""How the service authenticates as a user towards JIRA: the one place that turns an instance row and a user's
connection into a `JiraTarget` (secrets are opened here only).

The push engine, the reconciliation poller, ticket look-ups and the connect flows all ask `Credentials`; the
JIRA client asks the target's credential (`app.jira.credentials`). A new way to authenticate is a new branch of
`Credentials.user_target` and its credential class, nothing else.
"""

from __future__ import annotations

from app.db.models import ConnectionRow, JiraInstanceRow
from app.domain.priority import Priority
from app.jira.client import JiraTarget
from app.jira.credentials import Credential, OAuth1Signature
from app.jira.gate import InstanceRef
from app.jira.signing import KeyCache, OAuthConsumer
from app.security.secrets import SecretBox, binding


def instance_ref(instance: JiraInstanceRow) -> InstanceRef:
    return InstanceRef(instance.id, instance.rate_limit_per_second)


def private_key_pem(box: SecretBox, instance: JiraInstanceRow) -> bytes:
    return box.open_bytes(instance.private_key_enc, binding("jira_instances", "private_key", instance.id))


def instance_webhook_secret(box: SecretBox, instance: JiraInstanceRow) -> str:
    return box.open(instance.webhook_secret_enc, binding("jira_instances", "webhook_secret", instance.id))


class Credentials:
    """Builds targets for a process: one per request or job, cheap (RSA keys are parsed once per process)."""

    def __init__(self, box: SecretBox, *, keys: KeyCache | None = None) -> None:
        self.box = box
        self._keys = keys or KeyCache()

    def target(self, instance: JiraInstanceRow, credential: Credential, *,
               priority: Priority = Priority.USER) -> JiraTarget:
        """A target on the instance's REST base with `credential`."""
        return JiraTarget(instance_ref(instance), instance.base_url, credential, priority)

    def _consumer(self, instance: JiraInstanceRow) -> OAuthConsumer:
        return OAuthConsumer(instance.consumer_key, self._keys.load(private_key_pem(self.box, instance)))

    def consumer_target(self, instance: JiraInstanceRow, *, token: str | None = None) -> JiraTarget:
        """Signed as the instance's OAuth 1.0a consumer (the dance's token calls), with `token` if given."""
        return self.target(instance, OAuth1Signature(self._consumer(instance), token=token))

    def user_target(
        self, instance: JiraInstanceRow, connection: ConnectionRow, *, priority: Priority = Priority.USER,
    ) -> JiraTarget | None:
        """As the connection's JIRA user; None when the connection holds no usable credential."""
        if connection.status != "connected" or not connection.access_token_enc:
            return None
        token = self.box.open(connection.access_token_enc,
                              binding("jira_connections", "access_token", connection.id))
        return self.target(instance, OAuth1Signature(self._consumer(instance), token=token), priority=priority)
