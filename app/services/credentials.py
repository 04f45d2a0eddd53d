"""How the service authenticates as a user towards JIRA: the one place that turns an instance row and a user's
connection into a `JiraTarget`, and that seals and opens the credentials a connection holds.

The push engine, the reconciliation poller, ticket look-ups and the connect flows all ask `Credentials`; the JIRA
client asks the target's credential (`app.jira.credentials`). Per instance `auth` (CONTRACT 13):

* `oauth1`: the connection holds an access token (and its secret); requests are signed OAuth 1.0a RSA-SHA1 with
  the instance's key (`OAuth1Signature`);
* `pat`: it holds the personal access token, sent as `Bearer` (`StaticBearer`);
* `oauth2`: it holds an access and a refresh token and their times, sent as `Bearer` and renewed ahead of expiry
  and after a 401, one renewal per connection at a time across processes (`RefreshingBearer` on
  `ConnectionTokens`);
* `3lo` (Jira Cloud, CONTRACT 12): the same, renewed at Atlassian's token endpoint for the service's app, and sent to
  the site's REST API behind Atlassian's gateway (`<ATLASSIAN_API_URL>/ex/jira/<cloud_id>`). A lost renewal's token is
  presented again only within 9 minutes (Atlassian answers the token it just replaced for 10).

A new kind is one more branch of `Credentials.user_target` (and of `seal_connection` if it holds something new).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import redis_keys
from app.clock import now_utc
from app.config import Settings
from app.db.models import ConnectionRow, JiraInstanceRow
from app.db.repositories import jira as jira_repo
from app.domain.auth import AuthKind, Deployment
from app.domain.cloud import gateway_base
from app.domain.cloud_limits import points_budget
from app.domain.priority import Priority
from app.jira.atlassian import AtlassianApp, AtlassianTokens, authorize_url
from app.jira.client import JiraClient, JiraTarget
from app.jira.credentials import ClientAuthenticated, Credential, OAuth1Signature, StaticBearer
from app.jira.gate import CloudPool, InstanceRef
from app.jira.oauth2 import DataCenterTokens, OAuth2Client
from app.jira.signing import KeyCache, OAuthConsumer
from app.jira.token_refresh import RefreshingBearer, RefreshPolicy, StoredGrant, TokenEndpoint, TokenPair
from app.security.secrets import SecretBox, binding

OAUTH2_CALLBACK_PATH = "/oauth/jira2/callback"
ATLASSIAN_CALLBACK_PATH = "/oauth/atlassian/callback"
# Atlassian answers the refresh token it just replaced for 10 minutes; a lost renewal's token is presented again only
# within 9 (a minute's margin for clocks and the request's own time), else never (CONTRACT 12)
ATLASSIAN_REUSE_LEEWAY = timedelta(minutes=9)


def instance_ref(instance: JiraInstanceRow) -> InstanceRef:
    return InstanceRef(instance.id, instance.rate_limit_per_second)


def private_key_pem(box: SecretBox, instance: JiraInstanceRow) -> bytes:
    return box.open_bytes(instance.private_key_enc or b"", binding("jira_instances", "private_key", instance.id))


def instance_webhook_secret(box: SecretBox, instance: JiraInstanceRow) -> str:
    return box.open(instance.webhook_secret_enc, binding("jira_instances", "webhook_secret", instance.id))


def oauth2_redirect_uri(public_base_url: str) -> str:
    """The redirect URL of JIRA's External application link (and of every OAuth 2.0 grant)."""
    return public_base_url.rstrip("/") + OAUTH2_CALLBACK_PATH


def atlassian_redirect_uri(public_base_url: str) -> str:
    """The callback URL of the service's 3LO app (registered in Atlassian's developer console)."""
    return public_base_url.rstrip("/") + ATLASSIAN_CALLBACK_PATH


def is_cloud(instance: JiraInstanceRow) -> bool:
    return instance.deployment == Deployment.CLOUD


def cloud_pool(settings: Settings) -> CloudPool:
    """The points pool of every Cloud site: the service's 3LO app and 80 % of its hourly quota (CONTRACT 12)."""
    return CloudPool(settings.atlassian_client_id or "atlassian", points_budget(settings.atlassian_points_per_hour),
                     settings.atlassian_quota_window_seconds)


def _seal(box: SecretBox, column: str, connection_id: uuid.UUID, value: str | None) -> bytes | None:
    return box.seal(value, binding("jira_connections", column, connection_id)) if value else None


class Credentials:
    """Builds targets for a process: one per request or job, cheap (RSA keys are parsed once per process)."""

    def __init__(
        self, box: SecretBox, *, sessionmaker: async_sessionmaker[AsyncSession], jira: JiraClient, redis: Redis,
        settings: Settings, keys: KeyCache | None = None,
    ) -> None:
        self.box = box
        self._sessionmaker, self._jira, self._redis, self._settings = sessionmaker, jira, redis, settings
        self._keys = keys or KeyCache()

    def target(self, instance: JiraInstanceRow, credential: Credential, *,
               priority: Priority = Priority.USER, cloud_id: str | None = None) -> JiraTarget:
        """A target on the instance's REST base with `credential` (counted against the instance's rate limit): a Data
        Center instance's `base_url`, a Cloud site's base behind Atlassian's gateway (its `cloud_id`, or the one
        given while the first connection finds it)."""
        if is_cloud(instance):
            base = gateway_base(self._settings.atlassian_api_url, cloud_id or instance.cloud_id or "")
            return JiraTarget(self.site_ref(instance), base, credential, priority, deployment=Deployment.CLOUD)
        return JiraTarget(instance_ref(instance), instance.base_url, credential, priority)

    def cloud_pool(self) -> CloudPool:
        """The points pool of every Cloud site (`cloud_pool`)."""
        return cloud_pool(self._settings)

    def site_ref(self, instance: JiraInstanceRow) -> InstanceRef:
        """A Cloud site as the gate sees it: its own rate, and the app's pool its requests draw points from."""
        return InstanceRef(instance.id, instance.rate_limit_per_second, self.cloud_pool())

    # -- per kind ---------------------------------------------------------------------------------------------------

    def _consumer(self, instance: JiraInstanceRow) -> OAuthConsumer:
        return OAuthConsumer(instance.consumer_key, self._keys.load(private_key_pem(self.box, instance)))

    def consumer_target(self, instance: JiraInstanceRow, *, token: str | None = None) -> JiraTarget:
        """Signed as the instance's OAuth 1.0a consumer (the dance's token calls), with `token` if given."""
        return self.target(instance, OAuth1Signature(self._consumer(instance), token=token))

    def bearer_target(self, instance: JiraInstanceRow, token: str, *, cloud_id: str | None = None) -> JiraTarget:
        """`Authorization: Bearer <token>` (a personal access token being checked, a fresh OAuth 2.0 access token;
        on Cloud, at the site `cloud_id` when the instance does not know its id yet)."""
        return self.target(instance, StaticBearer(token, kind=instance.auth), cloud_id=cloud_id)

    def oauth2_client(self, instance: JiraInstanceRow) -> OAuth2Client:
        """The service as the client of the instance's External application link."""
        secret = self.box.open(instance.oauth2_client_secret_enc or b"",
                               binding("jira_instances", "oauth2_client_secret", instance.id))
        redirect_uri = oauth2_redirect_uri(self._settings.public_base_url)
        return OAuth2Client(instance.oauth2_client_id or "", secret, redirect_uri)

    def token_endpoint(self, instance: JiraInstanceRow) -> DataCenterTokens:
        """The instance's OAuth 2.0 token endpoint (requests through the JIRA client, the instance's rate limit)."""
        return DataCenterTokens(self._jira, self.target(instance, ClientAuthenticated()), self.oauth2_client(instance))

    def atlassian_app(self) -> AtlassianApp:
        """The service's 3LO app (CONTRACT 12)."""
        settings = self._settings
        return AtlassianApp(settings.atlassian_client_id, settings.atlassian_client_secret,
                            atlassian_redirect_uri(settings.public_base_url))

    @property
    def atlassian_app_configured(self) -> bool:
        return self._settings.atlassian_app_configured

    def atlassian_authorize_url(self, state: str) -> str:
        """Atlassian's consent page for the app, with `state`."""
        return authorize_url(self._settings.atlassian_auth_url, self.atlassian_app(), state=state)

    def atlassian_tokens(self, instance: JiraInstanceRow) -> AtlassianTokens:
        """Atlassian's token endpoint for the app, its requests counted against the Cloud site's rate limit."""
        auth_server = JiraTarget(instance_ref(instance), self._settings.atlassian_auth_url, ClientAuthenticated())
        return AtlassianTokens(self._jira, auth_server, self.atlassian_app())

    def gateway_target(self, instance: JiraInstanceRow, access_token: str) -> JiraTarget:
        """Atlassian's gateway itself (`accessible-resources`) with a fresh access token."""
        return JiraTarget(instance_ref(instance), self._settings.atlassian_api_url,
                          StaticBearer(access_token, kind=AuthKind.ATLASSIAN.value))

    def user_target(
        self, instance: JiraInstanceRow, connection: ConnectionRow, *, priority: Priority = Priority.USER,
    ) -> JiraTarget | None:
        """As the connection's JIRA user; None when the connection holds no usable credential."""
        if connection.status != "connected" or not connection.access_token_enc:
            return None
        if is_cloud(instance) and not instance.cloud_id:
            return None  # no connection found the site yet
        token = self.box.open(connection.access_token_enc,
                              binding("jira_connections", "access_token", connection.id))
        credential: Credential
        match AuthKind(instance.auth):
            case AuthKind.OAUTH1:
                credential = OAuth1Signature(self._consumer(instance), token=token)
            case AuthKind.PAT:
                credential = StaticBearer(token)
            case AuthKind.OAUTH2:
                credential = self._refreshing(connection, token, self.token_endpoint(instance),
                                              kind=AuthKind.OAUTH2)
            case AuthKind.ATLASSIAN:
                credential = self._refreshing(connection, token, self.atlassian_tokens(instance),
                                              kind=AuthKind.ATLASSIAN, reuse_leeway=ATLASSIAN_REUSE_LEEWAY)
        return self.target(instance, credential, priority=priority)

    def _refreshing(self, connection: ConnectionRow, access_token: str, endpoint: TokenEndpoint, *, kind: AuthKind,
                    reuse_leeway: timedelta | None = None) -> RefreshingBearer:
        now = now_utc()
        pair = TokenPair(access_token, self.open_refresh_token(connection), connection.access_expires_at or now,
                         connection.refresh_due_at or now)
        timeout = self._settings.jira_timeout_seconds
        # the lock outlives one token request; a second process waits for it and then reads the renewed pair
        policy = RefreshPolicy(lock_key=redis_keys.token_refresh_lock(connection.id), lock_seconds=timeout + 10,
                               wait_seconds=timeout + 5, reuse_leeway=reuse_leeway)
        store = ConnectionTokens(self._sessionmaker, self, connection.tenant_id, connection.id)
        return RefreshingBearer(pair, store=store, endpoint=endpoint, redis=self._redis, policy=policy,
                                kind=kind.value, instance=str(connection.jira_instance_id))

    # -- what a connection holds ------------------------------------------------------------------------------------

    def seal_connection(self, connection: ConnectionRow, access_token: str, *, token_secret: str | None = None,
                        pair: TokenPair | None = None) -> None:
        """Store a new credential in the connection (every column of the previous one replaced)."""
        cid = connection.id
        connection.access_token_enc = _seal(self.box, "access_token", cid, access_token)
        connection.token_secret_enc = _seal(self.box, "token_secret", cid, token_secret)
        connection.refresh_token_enc = _seal(self.box, "refresh_token", cid, pair.refresh_token if pair else None)
        connection.access_expires_at = pair.expires_at if pair else None
        connection.refresh_due_at = pair.refresh_due_at if pair else None
        connection.refresh_started_at = None

    @staticmethod
    def clear_connection(connection: ConnectionRow) -> None:
        """Forget every credential the connection holds (and the end of its consent)."""
        connection.access_token_enc = connection.token_secret_enc = connection.refresh_token_enc = None
        connection.access_expires_at = connection.refresh_due_at = connection.refresh_started_at = None
        connection.expires_at = connection.expiry_notified_at = None

    def open_refresh_token(self, connection: ConnectionRow) -> str | None:
        """The connection's OAuth 2.0 refresh token, if it holds one."""
        if not connection.refresh_token_enc:
            return None
        return self.box.open(connection.refresh_token_enc, binding("jira_connections", "refresh_token", connection.id))


class ConnectionTokens:
    """A connection's OAuth 2.0 pair in the database (`TokenStore`): each call a short transaction of its own, so a
    renewed pair is committed before it is used, whatever the caller's transaction does."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], credentials: Credentials,
                 tenant_id: uuid.UUID, connection_id: uuid.UUID) -> None:
        self._sessionmaker, self._credentials = sessionmaker, credentials
        self._tenant_id, self._connection_id = tenant_id, connection_id
        self._loaded: bytes | None = None  # the sealed refresh token last read: a save replaces only that

    async def _row(self, session: AsyncSession) -> ConnectionRow | None:
        return await jira_repo.get_connection_by_id(session, self._tenant_id, self._connection_id, lock=True)

    async def load(self) -> StoredGrant | None:
        """The connected pair, or None (removed, disconnected, no token)."""
        async with self._sessionmaker() as session:
            row = await self._row(session)
            if row is None or row.status != "connected" or not row.access_token_enc:
                return None
            self._loaded = row.refresh_token_enc
            box, now = self._credentials.box, now_utc()
            access = box.open(row.access_token_enc, binding("jira_connections", "access_token", row.id))
            pair = TokenPair(access, self._credentials.open_refresh_token(row), row.access_expires_at or now,
                             row.refresh_due_at or now)
            return StoredGrant(pair, row.refresh_started_at)

    async def mark_refresh(self, at: datetime | None) -> None:
        """Record (or clear) an outstanding renewal."""
        async with self._sessionmaker() as session:
            row = await self._row(session)
            if row is not None:
                row.refresh_started_at = at
                await session.commit()

    async def save(self, pair: TokenPair) -> bool:
        """Replace the loaded pair with `pair`; False when the stored one is no longer the loaded one."""
        async with self._sessionmaker() as session:
            row = await self._row(session)
            if row is None or row.status != "connected" or row.refresh_token_enc != self._loaded:
                return False
            self._credentials.seal_connection(row, pair.access_token, pair=pair)
            row.updated_at = now_utc()
            await session.commit()
            self._loaded = row.refresh_token_enc
            return True
