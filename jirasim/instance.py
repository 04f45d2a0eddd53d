"""One simulated JIRA instance: data, rate limiter, faults, settings and webhooks."""

from __future__ import annotations

import copy
from typing import Any

from .cloud_limits import CloudLimits
from .config import InstanceConfig, RateLimitConfig, WebhookConfig
from .faults import FaultInjector, FaultSettings
from .observe import Observer
from .ratelimit import TokenBucket
from .render import worklog_json
from .state import InstanceState, Issue, Worklog
from .webhooks import WebhookDispatcher


class SimInstance:
    def __init__(self, config: InstanceConfig, observer: Observer, dispatcher: WebhookDispatcher) -> None:
        self.config = config
        self.name = config.name
        self.observer = observer
        self.dispatcher = dispatcher
        self.state = InstanceState(config)
        self.limiter = TokenBucket(copy.copy(config.rate_limit))
        self.faults = FaultInjector(FaultSettings.from_dict(config.faults))
        self.webhook = copy.copy(config.webhook)
        self.display_timezone = config.display_timezone
        self.feed_delay_seconds = config.feed_delay_seconds
        self.authorize_mode = config.authorize_mode
        self.approve_as = config.approve_as

    @property
    def context_path(self) -> str:
        return self.config.context_path

    @property
    def deployment(self) -> str:
        return self.config.deployment

    @property
    def url_path(self) -> str:
        """Where clients reach this instance's REST API, below the simulator's root URL."""
        return self.context_path

    @property
    def rate_limit(self) -> RateLimitConfig:
        return self.limiter.config

    def reset(self, state: bool = True, counters: bool = True) -> None:
        """Back to the configured initial state (data, settings, faults, rate limit)."""
        if state:
            self.state.load_config()
            self.limiter = TokenBucket(copy.copy(self.config.rate_limit))
            self.faults = FaultInjector(FaultSettings.from_dict(self.config.faults))
            self.webhook = copy.copy(self.config.webhook)
            self.display_timezone = self.config.display_timezone
            self.feed_delay_seconds = self.config.feed_delay_seconds
            self.authorize_mode = self.config.authorize_mode
            self.approve_as = self.config.approve_as
            self.dispatcher.clear(self.name)
        if counters:
            self.observer.reset(self.name)

    def set_webhook(self, webhook: WebhookConfig) -> None:
        self.webhook = webhook

    def default_approver(self) -> str | None:
        if self.approve_as:
            return self.approve_as
        return next(iter(self.state.users), None)

    # -- worklog operations (these fire webhooks, like JIRA does for every change) --
    def render_worklog(self, worklog: Worklog, base: str, *, properties: bool = False) -> dict[str, Any]:
        return worklog_json(self.state, worklog, base, self.display_timezone, properties=properties)

    def create_worklog(
        self,
        issue: Issue,
        author: str,
        started_ms: int,
        time_spent_seconds: int,
        comment: str,
        base: str,
        visibility: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
    ) -> Worklog:
        worklog = self.state.create_worklog(
            issue, author, started_ms, time_spent_seconds, comment, visibility, properties
        )
        self._emit("worklog_created", worklog, base)
        return worklog

    def update_worklog(
        self,
        worklog: Worklog,
        update_author: str,
        base: str,
        *,
        started_ms: int | None = None,
        time_spent_seconds: int | None = None,
        comment: str | None = None,
        visibility: dict[str, Any] | None = None,
        updated_ms: int | None = None,
        properties: dict[str, Any] | None = None,
    ) -> Worklog:
        self.state.update_worklog(
            worklog,
            update_author,
            started_ms=started_ms,
            time_spent_seconds=time_spent_seconds,
            comment=comment,
            visibility=visibility,
            updated_ms=updated_ms,
            properties=properties,
        )
        self._emit("worklog_updated", worklog, base)
        return worklog

    def delete_worklog(self, worklog: Worklog, base: str) -> None:
        self.state.delete_worklog(worklog)
        self._emit("worklog_deleted", worklog, base)

    def _emit(self, event: str, worklog: Worklog, base: str) -> None:
        self.dispatcher.emit(self.name, self.webhook, event, self.render_worklog(worklog, base))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "deployment": self.deployment,
            "context_path": self.context_path,
            "display_timezone": self.display_timezone,
            "feed_delay_seconds": self.feed_delay_seconds,
            "authorize_mode": self.authorize_mode,
            "approve_as": self.approve_as,
            "rate_limit": self.rate_limit.to_dict(),
            "webhook": self.webhook.to_dict(),
            "faults": self.faults.to_dict(),
            "consumers": sorted(self.state.consumers),
            "oauth2_clients": sorted(self.state.oauth2_clients),
            "personal_access_tokens": len(self.state.pats),
            "users": sorted(self.state.users),
            "issues": sorted(self.state.issues_by_key),
        }


class CloudSite(SimInstance):
    """A Jira Cloud site: reached through the simulated Atlassian gateway at ``<api_path>/ex/jira/<cloud_id>``,
    its people are accountIds, its worklogs carry properties, and the three Cloud limits apply."""

    def __init__(
        self, config: InstanceConfig, observer: Observer, dispatcher: WebhookDispatcher, api_path: str
    ) -> None:
        super().__init__(config, observer, dispatcher)
        self.api_path = api_path
        self.limits = CloudLimits(copy.copy(config.cloud_limits))

    @property
    def cloud_id(self) -> str:
        return self.config.cloud_id

    @property
    def site_url(self) -> str:
        return self.config.site_url

    @property
    def url_path(self) -> str:
        return f"{self.api_path}/ex/jira/{self.cloud_id}"

    def reset(self, state: bool = True, counters: bool = True) -> None:
        super().reset(state=state, counters=counters)
        if state:
            self.limits.configure(copy.copy(self.config.cloud_limits))
        if counters:
            self.limits.clear_observations()

    def _emit(self, event: str, worklog: Worklog, base: str) -> None:
        # an admin webhook names the site itself, whatever URL the change came through
        payload = self.render_worklog(worklog, self.site_url)
        self.dispatcher.emit(self.name, self.webhook, event, payload)

    def describe(self) -> dict[str, Any]:
        data = super().describe()
        data.update(
            {
                "cloud_id": self.cloud_id,
                "site_url": self.site_url,
                "gateway_path": self.url_path,
                "cloud_limits": self.limits.config.to_dict(),
                "accounts": {u.name: u.account_id for u in self.state.users.values()},
            }
        )
        for dc_only in ("consumers", "oauth2_clients", "personal_access_tokens", "rate_limit"):
            data.pop(dc_only)
        return data
