"""The client of the simulator control API: ``SimControl``."""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

PREFIX = "/_sim"  # where the control API lives (jirasim.control_api serves it)


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for all simulator HTTP clients: httpx builds (slowly, ~50-200 ms) one per
    client otherwise. The simulator and its webhook targets are plain HTTP on loopback anyway."""
    return ssl.create_default_context()


class SimControlError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)


def _i(instance: str) -> str:
    return f"{PREFIX}/instances/{instance}"


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _result(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            message = str(response.json().get("error", response.text))
        except ValueError:
            message = response.text
        raise SimControlError(response.status_code, message)
    if not response.content:
        return None
    return response.json()


# Each function describes one control call (method, path, body), apart from how it is sent.
class Calls:
    @staticmethod
    def health() -> Call:
        return Call("GET", f"{PREFIX}/health")

    @staticmethod
    def instances() -> Call:
        return Call("GET", f"{PREFIX}/instances")

    @staticmethod
    def add_instance(config: dict[str, Any]) -> Call:
        return Call("POST", f"{PREFIX}/instances", config)

    @staticmethod
    def describe(instance: str) -> Call:
        return Call("GET", _i(instance))

    @staticmethod
    def reset(instance: str | None, state: bool, counters: bool) -> Call:
        path = f"{_i(instance)}/reset" if instance else f"{PREFIX}/reset"
        return Call("POST", path, {"state": state, "counters": counters})

    @staticmethod
    def add_consumer(instance: str, consumer_key: str, public_key_pem: str, name: str | None) -> Call:
        body = _drop_none({"consumer_key": consumer_key, "public_key_pem": public_key_pem, "name": name})
        return Call("POST", f"{_i(instance)}/consumers", body)

    @staticmethod
    def remove_consumer(instance: str, consumer_key: str) -> Call:
        return Call("DELETE", f"{_i(instance)}/consumers/{consumer_key}")

    @staticmethod
    def add_user(
        instance: str,
        name: str,
        display_name: str | None,
        timezone: str,
        key: str | None,
        email: str | None,
    ) -> Call:
        body = _drop_none(
            {"name": name, "display_name": display_name, "timezone": timezone, "key": key, "email": email}
        )
        return Call("POST", f"{_i(instance)}/users", body)

    @staticmethod
    def add_issue(instance: str, key: str, summary: str, parent: str | None, issue_id: int | None) -> Call:
        body = _drop_none({"key": key, "summary": summary, "parent": parent, "id": issue_id})
        return Call("POST", f"{_i(instance)}/issues", body)

    @staticmethod
    def grant_token(instance: str, consumer_key: str, user: str) -> Call:
        return Call("POST", f"{_i(instance)}/tokens", {"consumer_key": consumer_key, "user": user})

    @staticmethod
    def tokens(instance: str) -> Call:
        return Call("GET", f"{_i(instance)}/tokens")

    @staticmethod
    def revoke(instance: str, user: str | None, token: str | None, consumer_key: str | None) -> Call:
        body = _drop_none({"user": user, "token": token, "consumer_key": consumer_key})
        return Call("POST", f"{_i(instance)}/tokens/revoke", body)

    @staticmethod
    def create_pat(instance: str, user: str, name: str, expiration_days: int | None, token: str | None) -> Call:
        body = _drop_none({"user": user, "name": name, "expiration_days": expiration_days, "token": token})
        return Call("POST", f"{_i(instance)}/pats", body)

    @staticmethod
    def pats(instance: str) -> Call:
        return Call("GET", f"{_i(instance)}/pats")

    @staticmethod
    def revoke_pats(instance: str, user: str | None, pat_id: int | None) -> Call:
        return Call("POST", f"{_i(instance)}/pats/revoke", _drop_none({"user": user, "id": pat_id}))

    @staticmethod
    def add_oauth2_client(instance: str, body: dict[str, Any]) -> Call:
        return Call("POST", f"{_i(instance)}/oauth2/clients", _drop_none(body))

    @staticmethod
    def oauth2_clients(instance: str) -> Call:
        return Call("GET", f"{_i(instance)}/oauth2/clients")

    @staticmethod
    def remove_oauth2_client(instance: str, client_id: str) -> Call:
        return Call("DELETE", f"{_i(instance)}/oauth2/clients/{client_id}")

    @staticmethod
    def oauth2_tokens(instance: str) -> Call:
        return Call("GET", f"{_i(instance)}/oauth2/tokens")

    @staticmethod
    def grant_oauth2_tokens(instance: str, client_id: str, user: str, scopes: list[str] | None) -> Call:
        body = _drop_none({"client_id": client_id, "user": user, "scopes": scopes})
        return Call("POST", f"{_i(instance)}/oauth2/tokens", body)

    @staticmethod
    def revoke_oauth2_tokens(instance: str, user: str | None, client_id: str | None) -> Call:
        body = _drop_none({"user": user, "client_id": client_id})
        return Call("POST", f"{_i(instance)}/oauth2/tokens/revoke", body)

    @staticmethod
    def expire_oauth2_tokens(instance: str, user: str | None) -> Call:
        return Call("POST", f"{_i(instance)}/oauth2/tokens/expire", _drop_none({"user": user}))

    @staticmethod
    def set_rate_limit(
        instance: str,
        rate: float | None,
        burst: int | None,
        enabled: bool | None,
        retry_after: bool | None,
        refill: bool,
    ) -> Call:
        body = _drop_none(
            {"rate": rate, "burst": burst, "enabled": enabled, "retry_after": retry_after, "refill": refill}
        )
        return Call("PUT", f"{_i(instance)}/rate-limit", body)

    @staticmethod
    def set_faults(instance: str, settings: dict[str, Any]) -> Call:
        return Call("PUT", f"{_i(instance)}/faults", settings)

    @staticmethod
    def clear_faults(instance: str) -> Call:
        return Call("DELETE", f"{_i(instance)}/faults")

    @staticmethod
    def faults(instance: str) -> Call:
        return Call("GET", f"{_i(instance)}/faults")

    @staticmethod
    def add_fault_rule(instance: str, rule: dict[str, Any]) -> Call:
        return Call("POST", f"{_i(instance)}/faults/rules", rule)

    @staticmethod
    def release_holds(instance: str) -> Call:
        return Call("POST", f"{_i(instance)}/faults/release")

    @staticmethod
    def set_settings(instance: str, settings: dict[str, Any]) -> Call:
        return Call("PUT", f"{_i(instance)}/settings", settings)

    @staticmethod
    def set_webhook(
        instance: str,
        url: str | None,
        secret: str,
        duplicates: int,
        delay_ms: int,
        timeout_seconds: float,
    ) -> Call:
        body = {
            "url": url,
            "secret": secret,
            "duplicates": duplicates,
            "delay_ms": delay_ms,
            "timeout_seconds": timeout_seconds,
        }
        return Call("PUT", f"{_i(instance)}/webhook", body)

    @staticmethod
    def webhook_events(instance: str) -> Call:
        return Call("GET", f"{_i(instance)}/webhook/events")

    @staticmethod
    def resend_webhook(instance: str, event_id: int) -> Call:
        return Call("POST", f"{_i(instance)}/webhook/events/{event_id}/resend")

    @staticmethod
    def worklogs(instance: str, issue_key: str) -> Call:
        return Call("GET", f"{_i(instance)}/issues/{issue_key}/worklogs")

    @staticmethod
    def all_worklogs(instance: str) -> Call:
        return Call("GET", f"{_i(instance)}/worklogs")

    @staticmethod
    def create_worklog_as(
        instance: str,
        issue_key: str,
        author: str,
        time_spent_seconds: int,
        started: str | int | None,
        comment: str,
    ) -> Call:
        body = _drop_none(
            {"author": author, "timeSpentSeconds": time_spent_seconds, "started": started, "comment": comment}
        )
        return Call("POST", f"{_i(instance)}/issues/{issue_key}/worklogs", body)

    @staticmethod
    def remote_edit(
        instance: str,
        worklog_id: int | str,
        time_spent_seconds: int | None,
        comment: str | None,
        started: str | int | None,
        as_user: str | None,
        updated: str | int | None = None,
    ) -> Call:
        body = _drop_none(
            {"timeSpentSeconds": time_spent_seconds, "comment": comment, "started": started, "as_user": as_user,
             "updated": updated}
        )
        return Call("PATCH", f"{_i(instance)}/worklogs/{worklog_id}", body)

    @staticmethod
    def remote_delete(instance: str, worklog_id: int | str) -> Call:
        return Call("DELETE", f"{_i(instance)}/worklogs/{worklog_id}")

    @staticmethod
    def counters(instance: str) -> Call:
        return Call("GET", f"{_i(instance)}/counters")

    @staticmethod
    def window_max(instance: str, window: float, accepted_only: bool) -> Call:
        params = {"window": window, "accepted_only": str(accepted_only).lower()}
        return Call("GET", f"{_i(instance)}/window-max", params=params)

    @staticmethod
    def log(instance: str | None, since: float | None, limit: int | None) -> Call:
        return Call("GET", f"{PREFIX}/log", params=_drop_none({"instance": instance, "since": since, "limit": limit}))

    # -- the Atlassian platform and Cloud sites --
    @staticmethod
    def atlassian(method: str, path: str, body: dict[str, Any] | None = None) -> Call:
        return Call(method, f"{PREFIX}/atlassian{path}", _drop_none(body) if body is not None else None)

    @staticmethod
    def set_cloud_limits(instance: str, limits: dict[str, Any]) -> Call:
        return Call("PUT", f"{_i(instance)}/cloud-limits", _drop_none(limits))

    @staticmethod
    def cloud_usage(instance: str) -> Call:
        return Call("GET", f"{_i(instance)}/cloud-usage")

    @staticmethod
    def max_writes(instance: str, window: float, issue: str | None) -> Call:
        return Call("GET", f"{_i(instance)}/max-writes", params=_drop_none({"window": window, "issue": issue}))


def _settings(
    feed_delay_seconds: float | None,
    display_timezone: str | None,
    authorize_mode: str | None,
    approve_as: str | None,
) -> dict[str, Any]:
    return _drop_none(
        {
            "feed_delay_seconds": feed_delay_seconds,
            "display_timezone": display_timezone,
            "authorize_mode": authorize_mode,
            "approve_as": approve_as,
        }
    )


def _rule(kind: str, count: int, options: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "count": count, **options}


class SimControl:
    """Synchronous client of the control API (``base_url`` is the server root URL)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, trust_env=False, verify=shared_ssl_context())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SimControl:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _do(self, call: Call) -> Any:
        response = self._http.request(call.method, call.path, json=call.json, params=call.params)
        return _result(response)

    # -- general --
    def health(self) -> dict[str, Any]:
        return dict(self._do(Calls.health()))

    def instances(self) -> list[dict[str, Any]]:
        return list(self._do(Calls.instances()))

    def add_instance(self, config: dict[str, Any]) -> dict[str, Any]:
        return dict(self._do(Calls.add_instance(config)))

    def describe(self, instance: str) -> dict[str, Any]:
        return dict(self._do(Calls.describe(instance)))

    def reset(self, instance: str | None = None, *, state: bool = True, counters: bool = True) -> None:
        self._do(Calls.reset(instance, state, counters))

    # -- data --
    def add_consumer(
        self, instance: str, consumer_key: str, public_key_pem: str, name: str | None = None
    ) -> dict[str, Any]:
        return dict(self._do(Calls.add_consumer(instance, consumer_key, public_key_pem, name)))

    def remove_consumer(self, instance: str, consumer_key: str) -> dict[str, Any]:
        return dict(self._do(Calls.remove_consumer(instance, consumer_key)))

    def add_user(
        self,
        instance: str,
        name: str,
        display_name: str | None = None,
        timezone: str = "UTC",
        key: str | None = None,
        email: str | None = None,
    ) -> dict[str, Any]:
        return dict(self._do(Calls.add_user(instance, name, display_name, timezone, key, email)))

    def add_issue(
        self,
        instance: str,
        key: str,
        summary: str = "",
        parent: str | None = None,
        issue_id: int | None = None,
    ) -> dict[str, Any]:
        return dict(self._do(Calls.add_issue(instance, key, summary, parent, issue_id)))

    # -- OAuth tokens --
    def grant_token(self, instance: str, consumer_key: str, user: str) -> tuple[str, str]:
        data = self._do(Calls.grant_token(instance, consumer_key, user))
        return str(data["token"]), str(data["secret"])

    def tokens(self, instance: str) -> list[dict[str, Any]]:
        return list(self._do(Calls.tokens(instance)))

    def revoke(
        self,
        instance: str,
        user: str | None = None,
        token: str | None = None,
        consumer_key: str | None = None,
    ) -> int:
        return int(self._do(Calls.revoke(instance, user, token, consumer_key))["revoked"])

    # -- Data Center personal access tokens and OAuth 2.0 provider --
    def create_pat(
        self,
        instance: str,
        user: str,
        name: str = "token",
        expiration_days: int | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """A personal access token of ``user``; the answer's ``token`` is the only place its value appears."""
        return dict(self._do(Calls.create_pat(instance, user, name, expiration_days, token)))

    def pats(self, instance: str) -> list[dict[str, Any]]:
        return list(self._do(Calls.pats(instance)))

    def revoke_pats(self, instance: str, user: str | None = None, pat_id: int | None = None) -> int:
        return int(self._do(Calls.revoke_pats(instance, user, pat_id))["revoked"])

    def add_oauth2_client(
        self,
        instance: str,
        redirect_uri: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        name: str | None = None,
        scopes: list[str] | None = None,
    ) -> dict[str, Any]:
        """Register an incoming "External application" link; the answer carries ``client_id`` and
        ``client_secret`` (generated when not given)."""
        body = {
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "client_secret": client_secret,
            "name": name,
            "scopes": scopes,
        }
        return dict(self._do(Calls.add_oauth2_client(instance, body)))

    def oauth2_clients(self, instance: str) -> list[dict[str, Any]]:
        return list(self._do(Calls.oauth2_clients(instance)))

    def remove_oauth2_client(self, instance: str, client_id: str) -> dict[str, Any]:
        return dict(self._do(Calls.remove_oauth2_client(instance, client_id)))

    def oauth2_tokens(self, instance: str) -> dict[str, Any]:
        """``{"tokens": [...], "counts": {"code_exchanges", "refreshes", "refresh_reuse", "pkce_failures", ...}}``."""
        return dict(self._do(Calls.oauth2_tokens(instance)))

    def grant_oauth2_tokens(
        self, instance: str, client_id: str, user: str, scopes: list[str] | None = None
    ) -> dict[str, Any]:
        """A token pair without the dance: the token endpoint's answer."""
        return dict(self._do(Calls.grant_oauth2_tokens(instance, client_id, user, scopes)))

    def revoke_oauth2_tokens(self, instance: str, user: str | None = None, client_id: str | None = None) -> int:
        return int(self._do(Calls.revoke_oauth2_tokens(instance, user, client_id))["revoked"])

    def expire_oauth2_tokens(self, instance: str, user: str | None = None) -> int:
        return int(self._do(Calls.expire_oauth2_tokens(instance, user))["expired"])

    # -- settings and faults --
    def set_rate_limit(
        self,
        instance: str,
        rate: float | None = None,
        burst: int | None = None,
        enabled: bool | None = None,
        retry_after: bool | None = None,
        refill: bool = False,
    ) -> dict[str, Any]:
        call = Calls.set_rate_limit(instance, rate, burst, enabled, retry_after, refill)
        return dict(self._do(call))

    def set_faults(self, instance: str, **settings: Any) -> dict[str, Any]:
        """Replace the probabilistic fault settings (see ``FaultSettings``)."""
        return dict(self._do(Calls.set_faults(instance, settings)))

    def clear_faults(self, instance: str) -> dict[str, Any]:
        return dict(self._do(Calls.clear_faults(instance)))

    def faults(self, instance: str) -> dict[str, Any]:
        return dict(self._do(Calls.faults(instance)))

    def add_fault_rule(self, instance: str, kind: str, count: int = 1, **options: Any) -> dict[str, Any]:
        """Scripted fault for the next ``count`` matching requests (see ``FaultRule``)."""
        return dict(self._do(Calls.add_fault_rule(instance, _rule(kind, count, options))))

    def release_holds(self, instance: str) -> dict[str, Any]:
        """Let the requests ``hold`` rules hold now go on (they are answered as usual)."""
        return dict(self._do(Calls.release_holds(instance)))

    def set_settings(
        self,
        instance: str,
        *,
        feed_delay_seconds: float | None = None,
        display_timezone: str | None = None,
        authorize_mode: str | None = None,
        approve_as: str | None = None,
    ) -> dict[str, Any]:
        body = _settings(feed_delay_seconds, display_timezone, authorize_mode, approve_as)
        return dict(self._do(Calls.set_settings(instance, body)))

    def set_webhook(
        self,
        instance: str,
        url: str | None,
        secret: str = "",
        duplicates: int = 0,
        delay_ms: int = 0,
        timeout_seconds: float = 2.0,
    ) -> dict[str, Any]:
        call = Calls.set_webhook(instance, url, secret, duplicates, delay_ms, timeout_seconds)
        return dict(self._do(call))

    def webhook_events(self, instance: str) -> list[dict[str, Any]]:
        return list(self._do(Calls.webhook_events(instance)))

    def resend_webhook(self, instance: str, event_id: int) -> None:
        self._do(Calls.resend_webhook(instance, event_id))

    # -- worklogs --
    def worklogs(self, instance: str, issue_key: str) -> list[dict[str, Any]]:
        return list(self._do(Calls.worklogs(instance, issue_key)))

    def all_worklogs(self, instance: str) -> dict[str, Any]:
        return dict(self._do(Calls.all_worklogs(instance)))

    def create_worklog_as(
        self,
        instance: str,
        issue_key: str,
        author: str,
        time_spent_seconds: int = 3600,
        started: str | int | None = None,
        comment: str = "",
    ) -> dict[str, Any]:
        call = Calls.create_worklog_as(instance, issue_key, author, time_spent_seconds, started, comment)
        return dict(self._do(call))

    def remote_edit(
        self,
        instance: str,
        worklog_id: int | str,
        *,
        time_spent_seconds: int | None = None,
        comment: str | None = None,
        started: str | int | None = None,
        as_user: str | None = None,
        updated: str | int | None = None,
    ) -> dict[str, Any]:
        call = Calls.remote_edit(instance, worklog_id, time_spent_seconds, comment, started, as_user, updated)
        return dict(self._do(call))

    def remote_delete(self, instance: str, worklog_id: int | str) -> None:
        self._do(Calls.remote_delete(instance, worklog_id))

    # -- observation --
    def counters(self, instance: str) -> dict[str, Any]:
        return dict(self._do(Calls.counters(instance)))

    def max_requests_in_any_window(self, instance: str, window: float = 1.0, accepted_only: bool = False) -> int:
        return int(self._do(Calls.window_max(instance, window, accepted_only))["max"])

    def log(
        self, instance: str | None = None, since: float | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return list(self._do(Calls.log(instance, since, limit)))

    # -- the Atlassian platform (Cloud): see docs/jirasim.md "Jira Cloud" --
    def atlassian(self) -> dict[str, Any]:
        """Settings, apps, accounts (user name -> accountId), sites and the clock offset."""
        return dict(self._do(Calls.atlassian("GET", "")))

    def reset_atlassian(self, *, state: bool = True, counters: bool = True) -> None:
        self._do(Calls.atlassian("POST", "/reset", {"state": state, "counters": counters}))

    def set_atlassian(self, **settings: Any) -> dict[str, Any]:
        """``authorize_mode``, ``approve_as``, ``approve_sites``, ``access_token_seconds``, ``code_seconds``,
        ``refresh_reuse_interval_seconds``, ``refresh_inactivity_seconds``, ``refresh_absolute_seconds``,
        ``quota_window_seconds`` (``approve_sites=None`` clears the site choice)."""
        return dict(self._do(Call("PUT", f"{PREFIX}/atlassian/settings", settings)))

    def add_atlassian_app(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        name: str | None = None,
        callback_urls: list[str] | None = None,
        points_per_hour: int | None = 65000,
    ) -> dict[str, Any]:
        """Register a 3LO app; the answer carries ``client_id`` and ``client_secret`` (generated when not given).
        ``points_per_hour=None``: no global points pool."""
        given = {"client_id": client_id, "client_secret": client_secret, "name": name, "callback_urls": callback_urls}
        body: dict[str, Any] = {**_drop_none(given), "points_per_hour": points_per_hour}
        return dict(self._do(Call("POST", f"{PREFIX}/atlassian/apps", body)))

    def set_app_quota(self, client_id: str, points_per_hour: int | None) -> dict[str, Any]:
        call = Call("PUT", f"{PREFIX}/atlassian/apps/{client_id}/quota", {"points_per_hour": points_per_hour})
        return dict(self._do(call))

    def atlassian_grants(self) -> list[dict[str, Any]]:
        return list(self._do(Calls.atlassian("GET", "/grants")))

    def grant_atlassian(
        self, client_id: str, user: str, *, sites: list[str] | None = None, scopes: list[str] | None = None
    ) -> dict[str, Any]:
        """A consent and its token answer without the browser (default scopes: Jira work + user + offline)."""
        body = {"client_id": client_id, "user": user, "sites": sites, "scopes": scopes}
        return dict(self._do(Calls.atlassian("POST", "/grants", body)))

    def revoke_atlassian(self, *, user: str | None = None, client_id: str | None = None) -> int:
        call = Calls.atlassian("POST", "/grants/revoke", {"user": user, "client_id": client_id})
        return int(self._do(call)["revoked"])

    def expire_atlassian_tokens(self, user: str | None = None) -> int:
        return int(self._do(Calls.atlassian("POST", "/tokens/expire", {"user": user}))["expired"])

    def advance_atlassian_clock(self, seconds: float) -> float:
        """Move the authorization server's clock forward (refresh-token lifetimes); returns the offset."""
        return float(self._do(Calls.atlassian("POST", "/clock/advance", {"seconds": seconds}))["offset_seconds"])

    def atlassian_counters(self) -> dict[str, Any]:
        """Request counters of the auth server plus ``oauth`` (consents, code_exchanges, refreshes,
        reuse_within_interval, reuse_detected, invalid_grant, invalid_client, expired_refresh, revoked_grants,
        denials) and ``oauth_by_user``."""
        return dict(self._do(Calls.atlassian("GET", "/counters")))

    def atlassian_usage(self) -> dict[str, Any]:
        """Each app's global points pool: limit, used and remaining this window, points per window."""
        return dict(self._do(Calls.atlassian("GET", "/usage")))

    def lose_token_answers(self, count: int = 1) -> dict[str, Any]:
        """The next ``count`` token requests are applied (codes spent, tokens rotated) but answered by a
        dropped connection."""
        return dict(self._do(Calls.atlassian("POST", "/lose-token-answers", {"count": count})))

    def set_atlassian_faults(self, **settings: Any) -> dict[str, Any]:
        return dict(self._do(Call("PUT", f"{PREFIX}/atlassian/faults", settings)))

    def add_atlassian_fault_rule(self, kind: str, count: int = 1, **options: Any) -> dict[str, Any]:
        return dict(self._do(Call("POST", f"{PREFIX}/atlassian/faults/rules", _rule(kind, count, options))))

    def clear_atlassian_faults(self) -> dict[str, Any]:
        return dict(self._do(Calls.atlassian("DELETE", "/faults")))

    def set_cloud_limits(
        self,
        instance: str,
        *,
        burst_rate: float | None = None,
        burst_capacity: int | None = None,
        per_issue_writes: list[tuple[int, float]] | None = None,
        tenant_points_per_hour: int | None = None,
        no_tenant_pool: bool = False,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        """Merge into a Cloud site's limits (resets its buckets and tenant pools); ``no_tenant_pool`` removes
        the site's own points pool."""
        limits = {
            "burst_rate": burst_rate,
            "burst_capacity": burst_capacity,
            "enabled": enabled,
            "per_issue_writes": [list(p) for p in per_issue_writes] if per_issue_writes else None,
            "tenant_points_per_hour": tenant_points_per_hour,
        }
        call = Calls.set_cloud_limits(instance, limits)
        if no_tenant_pool:
            call = Call(call.method, call.path, {**(call.json or {}), "tenant_points_per_hour": None})
        return dict(self._do(call))

    def cloud_usage(self, instance: str) -> dict[str, Any]:
        """What a Cloud site's limits saw: points per window, refusals by reason, writes per issue and the most
        in any per-issue window (``max_writes_per_issue``), near-limit answers, tenant pools."""
        return dict(self._do(Calls.cloud_usage(instance)))

    def max_writes(self, instance: str, window: float = 2.0, issue: str | None = None) -> int:
        """Most writes a Cloud site admitted to one issue (or to ``issue``) within any ``window`` seconds."""
        return int(self._do(Calls.max_writes(instance, window, issue))["max"])
