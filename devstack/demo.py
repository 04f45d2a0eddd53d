"""Demo mode of `make run`: the JIRA simulator, a demo tenant with a registered instance, a connected user
and a few entries, so a newcomer sees worklogs appear without any JIRA.

The simulator keeps its state in memory, so every start re-registers the instance's public key as a
consumer and connects the demo user again through the real OAuth dance; the tenant, its API key and the
instance live in PostgreSQL and `.data/run/demo.json`, so a second `make run` reuses them.
"""

from __future__ import annotations

import json
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


def sim_config() -> dict[str, Any]:
    return {"instances": [{
        "name": "jira1", "display_timezone": "Europe/Berlin", "feed_delay_seconds": 60,
        "authorize_mode": "approve", "approve_as": DEMO_USER,
        "users": [{"name": DEMO_USER, "display_name": "Demo User", "timezone": "Europe/Berlin"}],
        "issues": [{"key": k, "summary": s} for k, s in DEMO_ISSUES],
        "rate_limit": {"rate": 10, "burst": 10},
    }]}


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
    config_path.write_text(json.dumps(sim_config(), indent=2))
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
        for n, (ticket, text) in enumerate(DEMO_ISSUES[:3], start=1):
            if api.get(f"/api/v1/entries/demo-{n}").status_code == 404:
                api.put(f"/api/v1/entries/demo-{n}", json={
                    "user": DEMO_USER, "ticket": ticket, "date": time.strftime("%Y-%m-%d"),
                    "start": f"{8 + n:02d}:00", "duration": 30 * n, "timezone": "Europe/Berlin",
                    "description": text, "activity": "Development",
                }).raise_for_status()
    key = state["api_key"]
    return [
        f"JIRA sim   {sim_url}/jira1   (control API: {sim_url}/_sim/, see docs/jirasim.md)",
        f"Demo key   {key}",
        f"Tenant     {state['tenant_id']}   (TimeTracker webhook secret in .data/run/demo.json)",
        "Try:",
        f"  curl -s -H 'Authorization: Bearer {key}' {api_url}/api/v1/entries | python -m json.tool",
        f"  curl -s -X PUT -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\",
        f"       {api_url}/api/v1/entries/42 -d '{{\"user\":\"demo\",\"ticket\":\"DEMO-4\",\"date\":\"2026-11-26\","
        "\"start\":\"14:00\",\"duration\":45,\"timezone\":\"Europe/Berlin\",\"description\":\"Standup\"}'",
        f"  curl -s {sim_url}/_sim/instances/jira1/worklogs | python -m json.tool   # what JIRA now holds",
        f"  open {api_url}/dashboard (paste the demo key) and {api_url}/docs",
    ]


def _connect(api: httpx.Client, instance_id: str) -> None:
    """The real OAuth 1.0a dance: the simulator approves as the demo user and redirects to our callback."""
    start = api.post(f"/api/v1/jira-instances/{instance_id}/oauth/start", json={"user": DEMO_USER})
    start.raise_for_status()
    with httpx.Client(timeout=30, trust_env=False, follow_redirects=True) as browser:
        done = browser.get(start.json()["authorize_url"])
    if done.status_code != 200 or done.json().get("status") != "connected":
        raise RuntimeError(f"demo OAuth connect failed: {done.status_code} {done.text[:200]}")
