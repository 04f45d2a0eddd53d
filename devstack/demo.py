"""Demo mode of `make run`: the JIRA simulator, a demo tenant with three Data Center instances (one per way of
authenticating: OAuth 1.0a, a personal access token, OAuth 2.0) and a Jira Cloud site, a connected user and a few
entries on each, so a newcomer sees worklogs appear without any JIRA.

The simulator keeps its state in memory, so every start registers again what JIRA's administrators would have set
up (the OAuth 1.0a instance's public key as a consumer; the OAuth 2.0 "External application" link comes from the
simulator's config) and connects the demo user again the real way: the OAuth 1.0a and OAuth 2.0 dances, a new
personal access token, Atlassian's 3LO on Cloud with the simulated authorization server and gateway. The tenant,
its API key and the instances live in PostgreSQL and `.data/run/demo.json`, so a second `make run` reuses them.
The demo's client secrets (the 3LO app's, given to the API and the worker by `atlassian_env`, and the OAuth 2.0
link's, given to its instance) are generated once into `.data/run/`.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEMO_USER = "demo"
DEMO_ISSUES = [("DEMO-1", "Customer portal: login page"), ("DEMO-2", "Customer portal: password reset"),
               ("DEMO-3", "Billing export"), ("DEMO-4", "Weekly status meeting")]
OAUTH2_CLIENT_ID = "timetracker-demo-oauth2"


@dataclass(frozen=True)
class DemoSite:
    """One simulated Data Center instance of the demo and how the service authenticates to it."""

    sim_name: str
    auth: str  # oauth1 | pat | oauth2 (CONTRACT 13)
    name: str
    project: str
    issues: tuple[tuple[str, str], ...]
    entries: int  # how many of `issues` the demo books
    state_prefix: str  # its keys in demo.json (the first demo's names are kept, so older .data/run still works)


DC_SITES = (
    DemoSite("jira1", "oauth1", "Demo JIRA (simulator)", "DEMO", tuple(DEMO_ISSUES), 3, ""),
    DemoSite("jira2", "pat", "Demo JIRA, personal access token (simulator)", "OPS",
             (("OPS-1", "Server patching"), ("OPS-2", "Backup restore drill")), 2, "pat_"),
    DemoSite("jira3", "oauth2", "Demo JIRA, OAuth 2.0 link (simulator)", "SUP",
             (("SUP-1", "Support rota"), ("SUP-2", "Customer call: invoices")), 2, "oauth2_"),
)


CLOUD_SITE, CLOUD_SITE_URL = "acme", "https://acme.atlassian.net"
CLOUD_ISSUES = [("CLOUD-1", "Mobile app: onboarding"), ("CLOUD-2", "Mobile app: push notifications")]
DEMO_APP_ID = "timetracker-demo"


def _secret(data_dir: Path, name: str) -> str:
    """A demo client secret, generated once into `data_dir` (readable by its owner only)."""
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def atlassian_env(data_dir: Path, *, sim_port: int) -> dict[str, str]:
    """The settings of the demo's 3LO app on the simulated Atlassian platform (the secret generated once)."""
    sim_url = f"http://127.0.0.1:{sim_port}"
    return {"ATLASSIAN_CLIENT_ID": DEMO_APP_ID, "ATLASSIAN_CLIENT_SECRET": _secret(data_dir, "atlassian_client_secret"),
            "ATLASSIAN_AUTH_URL": f"{sim_url}/auth.atlassian.com", "ATLASSIAN_API_URL": f"{sim_url}/api.atlassian.com"}


def sim_config(env: dict[str, str], data_dir: Path) -> dict[str, Any]:
    user = {"name": DEMO_USER, "display_name": "Demo User", "timezone": "Europe/Berlin"}
    public_base_url = env.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    config: dict[str, Any] = {"instances": [{
        "name": site.sim_name, "display_timezone": "Europe/Berlin", "feed_delay_seconds": 60,
        "authorize_mode": "approve", "approve_as": DEMO_USER,
        "users": [user],
        "issues": [{"key": k, "summary": s} for k, s in site.issues],
        "rate_limit": {"rate": 10, "burst": 10},
    } for site in DC_SITES]}
    oauth2_site = next(c for c in config["instances"] if c["name"] == "jira3")
    oauth2_site["oauth2_clients"] = [{  # the "External application" link a JIRA administrator makes
        "client_id": OAUTH2_CLIENT_ID, "client_secret": _secret(data_dir, "jira_oauth2_client_secret"),
        "redirect_uri": f"{public_base_url}/oauth/jira2/callback", "name": "TimeTracker (demo)", "scopes": ["WRITE"]}]
    if env.get("ATLASSIAN_CLIENT_ID") == DEMO_APP_ID:
        config["atlassian"] = {"apps": [{
            "client_id": DEMO_APP_ID, "client_secret": env["ATLASSIAN_CLIENT_SECRET"], "name": "TimeTracker (demo)",
            "callback_urls": [f"{public_base_url}/oauth/atlassian/callback"]}],
            "authorize_mode": "approve", "approve_as": DEMO_USER}
        config["instances"].append({
            "name": CLOUD_SITE, "deployment": "cloud", "site_url": CLOUD_SITE_URL, "display_timezone": "Europe/Berlin",
            "feed_delay_seconds": 60, "users": [user], "issues": [{"key": k, "summary": s} for k, s in CLOUD_ISSUES]})
    return config


def _wait(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def _create_tenant(env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "app.cli", "create-tenant", "--name", "Demo agency",
                          "--timezone", "Europe/Berlin"], env=env, cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    data: dict[str, str] = json.loads(out)
    return data


def start_demo(env: dict[str, str], *, api_url: str, sim_port: int, procs: list[subprocess.Popen[bytes]],
               data_dir: Path) -> list[str]:
    """Start the simulator and make sure the demo tenant, instance, connection and entries exist."""
    from jirasim.control import SimControl

    config_path = data_dir / "jirasim.json"
    config_path.write_text(json.dumps(sim_config(env, data_dir), indent=2))
    config_path.chmod(0o600)  # it holds the demo clients' secrets
    procs.append(subprocess.Popen([sys.executable, "-m", "jirasim", "--port", str(sim_port), "--config",
                                   str(config_path), "--log-level", "warning"], cwd=ROOT))
    sim_url = f"http://127.0.0.1:{sim_port}"
    _wait(f"{sim_url}/_sim/health")
    _wait(f"{api_url}/readyz", timeout=60)
    state_file = data_dir / "demo.json"
    state: dict[str, str] = json.loads(state_file.read_text()) if state_file.exists() else {}
    if not state.get("api_key"):
        state.update(_create_tenant(env))

    def save() -> None:
        state_file.write_text(json.dumps(state, indent=2))
        state_file.chmod(0o600)

    save()
    control = SimControl(sim_url)
    headers = {"Authorization": f"Bearer {state['api_key']}"}
    bookings: list[tuple[str, str, str]] = []  # (entry id, ticket, description)
    with httpx.Client(base_url=api_url, headers=headers, timeout=30, trust_env=False) as api:
        for site in DC_SITES:
            _dc_site(api, control, state, site, sim_url=sim_url, api_url=api_url, data_dir=data_dir)
            save()
            prefix = "demo" if site.sim_name == "jira1" else site.project.lower()
            bookings += [(f"{prefix}-{n}", ticket, text)
                         for n, (ticket, text) in enumerate(site.issues[:site.entries], start=1)]
        cloud = env.get("ATLASSIAN_CLIENT_ID") == DEMO_APP_ID
        if cloud:
            _cloud_site(api, control, state, api_url=api_url)
            save()
            _connect(api, state["cloud_instance_id"])
            bookings += [(f"cloud-{n}", ticket, text) for n, (ticket, text) in enumerate(CLOUD_ISSUES, start=1)]
        for n, (entry_id, ticket, text) in enumerate(bookings):
            if api.get(f"/api/v1/entries/{entry_id}").status_code == 404:
                api.put(f"/api/v1/entries/{entry_id}", json={
                    "user": DEMO_USER, "ticket": ticket, "date": time.strftime("%Y-%m-%d"),
                    "start": f"{8 + n % 9:02d}:{30 * (n // 9) % 60:02d}", "duration": 30 + 15 * (n % 4),
                    "timezone": "Europe/Berlin", "description": text, "activity": "Development",
                }).raise_for_status()
    key = state["api_key"]
    cloud_lines = [
        f"Cloud sim  {CLOUD_SITE_URL} behind {sim_url}/api.atlassian.com (3LO app {DEMO_APP_ID!r}; project CLOUD)",
        f"  curl -s {sim_url}/_sim/instances/{CLOUD_SITE}/worklogs | python -m json.tool   # the Cloud site's",
    ] if env.get("ATLASSIAN_CLIENT_ID") == DEMO_APP_ID else []
    return [
        f"JIRA sim   {sim_url}/jira1   (OAuth 1.0a; control API: {sim_url}/_sim/, see docs/jirasim.md)",
        f"           {sim_url}/jira2   (personal access token)   {sim_url}/jira3   (OAuth 2.0 link)",
        *cloud_lines[:1],
        f"Demo key   {key}",
        f"Tenant     {state['tenant_id']}   (TimeTracker webhook secret in .data/run/demo.json)",
        "Try:",
        f"  curl -s -H 'Authorization: Bearer {key}' {api_url}/api/v1/entries | python -m json.tool",
        f"  curl -s -X PUT -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\",
        f"       {api_url}/api/v1/entries/42 -d '{{\"user\":\"demo\",\"ticket\":\"DEMO-4\",\"date\":\"2026-11-26\","
        "\"start\":\"14:00\",\"duration\":45,\"timezone\":\"Europe/Berlin\",\"description\":\"Standup\"}'",
        f"  curl -s {sim_url}/_sim/instances/jira1/worklogs | python -m json.tool   # what JIRA now holds",
        *cloud_lines[1:],
        f"  open {api_url}/dashboard (paste the demo key) and {api_url}/docs",
    ]


def _dc_site(api: httpx.Client, control: Any, state: dict[str, str], site: DemoSite, *, sim_url: str, api_url: str,
             data_dir: Path) -> None:
    """A demo Data Center instance (made once), what JIRA's administrators set up for it, its webhook, and the demo
    user connected the way its `auth` says."""
    id_key, secret_key = f"{site.state_prefix}instance_id", f"{site.state_prefix}instance_webhook_secret"
    instance = api.get(f"/api/v1/jira-instances/{state[id_key]}") if state.get(id_key) else None
    if instance is None or instance.status_code != 200:
        body: dict[str, Any] = {"name": site.name, "base_url": f"{sim_url}/{site.sim_name}", "auth": site.auth,
                                "rate_limit_per_second": 10, "project_keys": [site.project]}
        if site.auth == "oauth1":
            body["consumer_key"] = "timetracker-demo"
        elif site.auth == "oauth2":
            body.update(client_id=OAUTH2_CLIENT_ID, client_secret=_secret(data_dir, "jira_oauth2_client_secret"))
        created = api.post("/api/v1/jira-instances", json=body)
        created.raise_for_status()
        state[id_key], state[secret_key] = created.json()["id"], created.json()["webhook_secret"]
        instance = api.get(f"/api/v1/jira-instances/{state[id_key]}")
    instance.raise_for_status()
    if site.auth == "oauth1":  # the application link's incoming consumer: our public key
        control.add_consumer(site.sim_name, "timetracker-demo", instance.json()["public_key_pem"])
    control.set_webhook(site.sim_name, f"{api_url}/webhooks/jira/{state[id_key]}", secret=state[secret_key])
    if site.auth == "pat":  # the demo user makes a token in JIRA (Profile → Personal Access Tokens) and pastes it
        token = control.create_pat(site.sim_name, DEMO_USER, name="TimeTracker demo")["token"]
        stored = api.put(f"/api/v1/users/{DEMO_USER}/connections/{state[id_key]}",
                         json={"personal_access_token": token})
        if stored.status_code != 200 or stored.json().get("status") != "connected":
            raise RuntimeError(f"demo token connect failed: {stored.status_code} {stored.text[:200]}")
    else:
        _connect(api, state[id_key])


def _cloud_site(api: httpx.Client, control: Any, state: dict[str, str], *, api_url: str) -> None:
    """The demo's Jira Cloud site (made once), its admin webhook pointed at the service."""
    site = api.get(f"/api/v1/jira-instances/{state['cloud_instance_id']}") if state.get("cloud_instance_id") else None
    if site is None or site.status_code != 200:
        created = api.post("/api/v1/jira-instances", json={
            "name": "Demo Jira Cloud (simulator)", "deployment": "cloud", "site_url": CLOUD_SITE_URL,
            "rate_limit_per_second": 10, "project_keys": ["CLOUD"],
        })
        created.raise_for_status()
        body = created.json()
        state["cloud_instance_id"], state["cloud_webhook_secret"] = body["id"], body["webhook_secret"]
    control.set_webhook(CLOUD_SITE, f"{api_url}/webhooks/jira/{state['cloud_instance_id']}",
                        secret=state["cloud_webhook_secret"])


def _connect(api: httpx.Client, instance_id: str) -> None:
    """The real OAuth dance (1.0a or 2.0 on Data Center, 3LO on Cloud): the simulator approves as the demo user and
    redirects to our callback."""
    start = api.post(f"/api/v1/jira-instances/{instance_id}/oauth/start", json={"user": DEMO_USER})
    start.raise_for_status()
    with httpx.Client(timeout=30, trust_env=False, follow_redirects=True) as browser:
        done = browser.get(start.json()["authorize_url"])
    if done.status_code != 200 or done.json().get("status") != "connected":
        raise RuntimeError(f"demo OAuth connect failed: {done.status_code} {done.text[:200]}")
