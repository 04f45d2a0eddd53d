"""Demo mode of `make run`: the JIRA simulator, a demo tenant with a registered Data Center instance and a Jira
Cloud site, a connected user and a few entries, so a newcomer sees worklogs appear without any JIRA.

The simulator keeps its state in memory, so every start re-registers the instance's public key as a
consumer and connects the demo user again through the real OAuth dances (OAuth 1.0a on Data Center, Atlassian's
3LO on Cloud, with the simulated authorization server and gateway); the tenant, its API key and the
instances live in PostgreSQL and `.data/run/demo.json`, so a second `make run` reuses them. The demo's 3LO app
(its client id and a secret generated once into `.data/run/atlassian_client_secret`) is registered in the simulator
and given to the API and the worker (`atlassian_env`).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEMO_USER = "demo"
DEMO_ISSUES = [("DEMO-1", "Customer portal: login page"), ("DEMO-2", "Customer portal: password reset"),
               ("DEMO-3", "Billing export"), ("DEMO-4", "Weekly status meeting")]


CLOUD_SITE, CLOUD_SITE_URL = "acme", "https://acme.atlassian.net"
CLOUD_ISSUES = [("CLOUD-1", "Mobile app: onboarding"), ("CLOUD-2", "Mobile app: push notifications")]
DEMO_APP_ID = "timetracker-demo"


def atlassian_env(data_dir: Path, *, sim_port: int) -> dict[str, str]:
    """The settings of the demo's 3LO app on the simulated Atlassian platform (the secret generated once)."""
    path = data_dir / "atlassian_client_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    sim_url = f"http://127.0.0.1:{sim_port}"
    return {"ATLASSIAN_CLIENT_ID": DEMO_APP_ID, "ATLASSIAN_CLIENT_SECRET": path.read_text().strip(),
            "ATLASSIAN_AUTH_URL": f"{sim_url}/auth.atlassian.com", "ATLASSIAN_API_URL": f"{sim_url}/api.atlassian.com"}


def sim_config(env: dict[str, str] | None = None) -> dict[str, Any]:
    user = {"name": DEMO_USER, "display_name": "Demo User", "timezone": "Europe/Berlin"}
    config: dict[str, Any] = {"instances": [{
        "name": "jira1", "display_timezone": "Europe/Berlin", "feed_delay_seconds": 60,
        "authorize_mode": "approve", "approve_as": DEMO_USER,
        "users": [user],
        "issues": [{"key": k, "summary": s} for k, s in DEMO_ISSUES],
        "rate_limit": {"rate": 10, "burst": 10},
    }]}
    if env is not None and env.get("ATLASSIAN_CLIENT_ID") == DEMO_APP_ID:
        config["atlassian"] = {"apps": [{
            "client_id": DEMO_APP_ID, "client_secret": env["ATLASSIAN_CLIENT_SECRET"], "name": "TimeTracker (demo)",
            "callback_urls": [env.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
                              + "/oauth/atlassian/callback"]}],
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
    config_path.write_text(json.dumps(sim_config(env), indent=2))
    config_path.chmod(0o600)  # it holds the demo app's secret
    procs.append(subprocess.Popen([sys.executable, "-m", "jirasim", "--port", str(sim_port), "--config",
                                   str(config_path), "--log-level", "warning"], cwd=ROOT))
    sim_url = f"http://127.0.0.1:{sim_port}"
    _wait(f"{sim_url}/_sim/health")
    _wait(f"{api_url}/readyz", timeout=60)
    state_file = data_dir / "demo.json"
    state: dict[str, str] = json.loads(state_file.read_text()) if state_file.exists() else {}
    if not state.get("api_key"):
        state.update(_create_tenant(env))
    headers = {"Authorization": f"Bearer {state['api_key']}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=30, trust_env=False) as api:
        instance = api.get(f"/api/v1/jira-instances/{state['instance_id']}") if state.get("instance_id") else None
        if instance is None or instance.status_code != 200:
            created = api.post("/api/v1/jira-instances", json={
                "name": "Demo JIRA (simulator)", "base_url": f"{sim_url}/jira1", "consumer_key": "timetracker-demo",
                "rate_limit_per_second": 10, "project_keys": ["DEMO"],
            })
            created.raise_for_status()
            body = created.json()
            state["instance_id"], state["instance_webhook_secret"] = body["id"], body["webhook_secret"]
            instance = api.get(f"/api/v1/jira-instances/{state['instance_id']}")
        state_file.write_text(json.dumps(state, indent=2))
        state_file.chmod(0o600)
        public_key = instance.json()["public_key_pem"]
        control = SimControl(sim_url)
        control.add_consumer("jira1", "timetracker-demo", public_key)
        control.set_webhook("jira1", f"{api_url}/webhooks/jira/{state['instance_id']}",
                            secret=state["instance_webhook_secret"])
        _connect(api, state["instance_id"])
        cloud = env.get("ATLASSIAN_CLIENT_ID") == DEMO_APP_ID
        if cloud:
            _cloud_site(api, control, state, api_url=api_url)
            state_file.write_text(json.dumps(state, indent=2))
            _connect(api, state["cloud_instance_id"])
        bookings = [("demo", n, ticket, text) for n, (ticket, text) in enumerate(DEMO_ISSUES[:3], start=1)]
        if cloud:
            bookings += [("cloud", n, ticket, text) for n, (ticket, text) in enumerate(CLOUD_ISSUES, start=1)]
        for prefix, n, ticket, text in bookings:
            if api.get(f"/api/v1/entries/{prefix}-{n}").status_code == 404:
                api.put(f"/api/v1/entries/{prefix}-{n}", json={
                    "user": DEMO_USER, "ticket": ticket, "date": time.strftime("%Y-%m-%d"),
                    "start": f"{8 + n:02d}:00", "duration": 30 * n, "timezone": "Europe/Berlin",
                    "description": text, "activity": "Development",
                }).raise_for_status()
    key = state["api_key"]
    cloud_lines = [
        f"Cloud sim  {CLOUD_SITE_URL} behind {sim_url}/api.atlassian.com (3LO app {DEMO_APP_ID!r}; project CLOUD)",
        f"  curl -s {sim_url}/_sim/instances/{CLOUD_SITE}/worklogs | python -m json.tool   # the Cloud site's",
    ] if env.get("ATLASSIAN_CLIENT_ID") == DEMO_APP_ID else []
    return [
        f"JIRA sim   {sim_url}/jira1   (control API: {sim_url}/_sim/, see docs/jirasim.md)",
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
    """The real OAuth dance (1.0a on Data Center, 3LO on Cloud): the simulator approves as the demo user and
    redirects to our callback."""
    start = api.post(f"/api/v1/jira-instances/{instance_id}/oauth/start", json={"user": DEMO_USER})
    start.raise_for_status()
    with httpx.Client(timeout=30, trust_env=False, follow_redirects=True) as browser:
        done = browser.get(start.json()["authorize_url"])
    if done.status_code != 200 or done.json().get("status") != "connected":
        raise RuntimeError(f"demo OAuth connect failed: {done.status_code} {done.text[:200]}")
