"""The dashboard and the TimeTracker frontend in a real headless Chromium against a real uvicorn process
(CONTRACT sections 9 and 14). One browser for the whole module (Debian's chromium driven by Playwright; no
browser download); screenshots go to test-output/.

* the operators' view shows the API's figures and retries a failed entry;
* its charts draw the history of a short synthetic run (pushes through the push engine against the simulator,
  with 429s and 503s injected), for the last hour and the last 24 hours;
* a TimeTracker page (docs/frontend-example, served on another loopback address that the tenant allows) gets a
  user token from its backend, lists its user's entries and connects JIRA through the whole OAuth dance;
* the same page on an origin the tenant did not allow is blocked by the browser (no CORS headers);
* a person's dashboard (`/dashboard#token=…`) resolves a conflict by clicking.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import JiraSetup
from tests.integration.ops_data import add_instance, add_push_audits, put_entries, set_state
from tests.live_server import ROOT, live_api
from tests.waiting import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EXAMPLE = ROOT / "docs" / "frontend-example"
OUT = ROOT / "test-output"


def _chromium_or_skip() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed and could not be (`make browser` installs it as root)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright package is missing (it is a dev dependency: `make install`)")


@pytest.fixture(scope="module")
def live(stack: Any) -> Iterator[str]:
    # its own address is PUBLIC_BASE_URL: the OAuth callback the browser follows comes back to it
    with live_api({**stack.env, "TENANT_API_RATE_PER_SECOND": "1000"}, log_name="dashboard-api", public=True) as base:
        yield base


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    _chromium_or_skip()
    from playwright.async_api import async_playwright

    OUT.mkdir(exist_ok=True)
    profile = tempfile.mkdtemp(prefix="ttsync-chromium-")
    try:
        async with async_playwright() as pw:
            # a fresh profile per run (Playwright passes it as --user-data-dir); every test opens its own tab
            context = await pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1280, "height": 900},
            )
            try:
                yield context
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    tab = await browser.new_page()
    yield tab
    await tab.close()


@pytest.fixture(scope="module")
async def engine(settings: Any) -> AsyncIterator[Any]:
    """A worker's push side, in this process (what it records is published by the session app)."""
    from workers.context import build_context

    wc = build_context(settings)
    yield wc
    await wc.close()


async def push(engine: Any, tenant_id: Any, *entry_ids: str) -> None:
    for entry_id in entry_ids:
        for _ in range(200):
            delay = await engine.push(tenant_id, entry_id)
            if delay is None:
                break
            await asyncio.sleep(min(delay, 0.25))
        else:
            raise AssertionError(f"the push of {entry_id} did not settle")


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f} %"


def ms(x: float | None) -> str:
    return "–" if x is None else f"{round(x)} ms"


# -- the operators' view ---------------------------------------------------------------------------------------------

async def test_dashboard_shows_the_api_figures_and_retries_a_failed_entry(live, page, app, api, make_tenant):
    t = await make_tenant("Dashboard Co")
    auth = {"Authorization": f"Bearer {t.api_key}"}
    instance_id = await add_instance(api, t, name="Main JIRA", rate=8)
    ids = ["d1", "d2", "d3", "d4", "d5", "d6"]
    await put_entries(api, auth, ids)
    states = {"d1": "synced", "d2": "synced", "d3": "pending", "d4": "failed", "d5": "conflict", "d6": "pending"}
    for i, (entry_id, st) in enumerate(states.items()):
        await set_state(app, t.tenant_id, entry_id, status=st, instance_id=instance_id, due=st == "pending",
                        last_error="JIRA answered 400: Issue Does Not Exist" if st == "failed" else None,
                        age_seconds=60 - i)
    await add_push_audits(app, t.tenant_id, instance_id, [120, 180, 240, 900])

    async with httpx.AsyncClient(base_url=live, headers=auth, trust_env=False, timeout=10) as client:
        stats = (await client.get("/api/v1/stats")).json()
        inst = stats["instances"][0]
        await page.goto(f"{live}/dashboard")
        await page.fill("#api-key", t.api_key)
        await page.click("#connect")
        card = page.locator(f'[data-instance="{instance_id}"]')
        await card.wait_for(timeout=15_000)

        async def shown(field: str) -> str:
            return (await card.locator(f'[data-field="{field}"]').inner_text()).strip()

        assert await shown("name") == "Main JIRA"
        assert await shown("queue_length") == str(inst["queue_length"]) == "2"
        assert await shown("due_now") == str(inst["due_now"])
        assert await shown("success_rate") == pct(inst["success_rate"])
        assert await shown("failure_rate") == pct(inst["failure_rate"])
        assert await shown("p50") == ms(inst["push"]["p50_ms"])
        assert await shown("p95") == ms(inst["push"]["p95_ms"])
        assert await shown("circuit") == inst["circuit"]["state"] == "closed"
        assert await shown("circuit-explained") == "circuit closed — JIRA answers normally"
        rl = inst["rate_limit"]
        assert await shown("rate_limit") == f"{rl['grants_last_second']} / 8 per s"
        assert await shown("rate_limit_usage") == pct(rl["usage"])
        # the key lives in the tab's sessionStorage, not in the page or a cookie
        assert await page.evaluate("sessionStorage.getItem('ttsync.apiKey')") == t.api_key
        assert await page.context.cookies() == []

        failed_row = page.locator('tr[data-entry="d4"]')
        assert "Issue Does Not Exist" in await failed_row.inner_text()
        assert await page.locator('tr[data-entry="d5"]').count() == 1  # the conflict is listed
        assert await page.locator('tr[data-entry="d5"] button').count() == 0
        await page.screenshot(path=str(OUT / "dashboard.png"), full_page=True)

        await page.click('button[data-retry="d4"]')

        async def pending() -> bool:
            return (await client.get("/api/v1/entries/d4")).json()["sync"]["status"] == "pending"

        await wait_until(pending, timeout=10, interval=0.1)
        # the next refresh no longer lists it as failed
        await page.locator('tr[data-entry="d4"]').wait_for(state="detached", timeout=15_000)
        await page.screenshot(path=str(OUT / "dashboard-after-retry.png"), full_page=True)


async def test_the_charts_draw_the_history_of_a_short_run(live, page, app, api, engine, jira_setup, connect_user,
                                                          sim):
    setup: JiraSetup = await jira_setup(name="Charted JIRA", project_keys=["PROJ"], rate_limit_per_second=20)
    assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    # JIRA says "slow down" twice and fails twice during the run
    sim.control.add_fault_rule(setup.sim_name, "rate_limit", count=2, retry_after=1, path_contains="/worklog")
    sim.control.add_fault_rule(setup.sim_name, "error", count=2, status=503, path_contains="/worklog")
    ids = [f"c{i}" for i in range(12)]
    await put_entries(api, setup.headers, ids)
    await push(engine, setup.tenant.tenant_id, *ids)
    await app.state.metrics_publisher.publish()  # what its loop does every 2 s

    await page.goto(f"{live}/dashboard")
    await page.fill("#api-key", setup.tenant.api_key)
    await page.click("#connect")
    charts = page.locator(f'[data-history="{setup.instance_id}"]')
    await charts.locator('figure[data-chart="failures"]').wait_for(timeout=15_000)
    failures = charts.locator('figure[data-chart="failures"]')
    assert await failures.locator('rect[data-kind="slow down (429)"]').count() >= 1
    assert await failures.locator('rect[data-kind="JIRA error (5xx)"]').count() >= 1
    assert "2 slow down (429)" in (await failures.locator("svg").get_attribute("aria-label") or "")
    latency = charts.locator('figure[data-chart="latency"] path[data-series="p95"]')
    assert int(await latency.get_attribute("data-points") or 0) >= 1
    throughput = await charts.locator('figure[data-chart="throughput"] svg').get_attribute("aria-label") or ""
    assert "limit 20 per second" in throughput and "peak 0 per second" not in throughput
    assert await charts.locator('figure[data-chart="throughput"] line.limit').count() == 1
    await page.screenshot(path=str(OUT / "dashboard-charts-1h.png"), full_page=True)

    await page.click('button[data-window="24h"]')
    assert await page.get_attribute('button[data-window="24h"]', "aria-pressed") == "true"
    await wait_until(lambda: failures.locator("svg").get_attribute("aria-label"), timeout=10)

    async def redrawn_for_a_day() -> bool:
        label = await charts.locator('figure[data-chart="queue"] svg').get_attribute("aria-label") or ""
        return "the last 24 hours" in label

    await wait_until(redrawn_for_a_day, timeout=10, interval=0.1)
    assert await charts.locator('figure[data-chart="failures"] rect[data-kind="slow down (429)"]').count() >= 1
    await page.screenshot(path=str(OUT / "dashboard-charts-24h.png"), full_page=True)


# -- the TimeTracker frontend ---------------------------------------------------------------------------------------

class TimeTracker:
    """TimeTracker as a browser sees it, on its own loopback address: the example page of docs/frontend-example
    (pointed at the live sync API) and its backend's token route, which mints user tokens with the API key."""

    def __init__(self, host: str, *, sync_api: str, api_key: str, user: str) -> None:
        page = (EXAMPLE / "index.html").read_text().replace("https://sync.example.com", sync_api)
        files = {"/": ("text/html", page.encode()),
                 "/jira-sync.js": ("text/javascript", (EXAMPLE / "jira-sync.js").read_bytes())}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/api/jira-sync-token":  # the backend knows who is logged in: `user`
                    r = httpx.post(f"{sync_api}/api/v1/user-tokens", json={"user": user, "ttl_seconds": 600},
                                   headers={"Authorization": f"Bearer {api_key}"}, trust_env=False, timeout=10)
                    self._answer(r.status_code, "application/json", r.content)
                elif path in files:
                    self._answer(200, *files[path])
                else:
                    self._answer(404, "text/plain", b"not found")

            def _answer(self, code: int, media_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
async def frontend(api: httpx.AsyncClient, live: str, jira_setup: Any) -> AsyncIterator[dict[str, Any]]:
    """A tenant with a JIRA instance on the simulator, entries of jdoe and of olga, and TimeTracker on two
    loopback addresses: 127.0.0.2 (in the tenant's allowed_origins) and 127.0.0.3 (not)."""
    setup: JiraSetup = await jira_setup(name="Team JIRA", project_keys=["PROJ"])
    allowed = TimeTracker("127.0.0.2", sync_api=live, api_key=setup.tenant.api_key, user="jdoe")
    other = TimeTracker("127.0.0.3", sync_api=live, api_key=setup.tenant.api_key, user="jdoe")
    r = await api.patch("/api/v1/tenant", json={"allowed_origins": [allowed.url]}, headers=setup.headers)
    assert r.status_code == 200, r.text
    for entry_id, user in (("j1", "jdoe"), ("j2", "jdoe"), ("o1", "olga")):
        body = {"user": user, "ticket": "PROJ-1", "date": "2026-11-25", "start": "09:00", "duration": 30,
                "description": f"{user}'s work"}
        assert (await api.put(f"/api/v1/entries/{entry_id}", json=body, headers=setup.headers)).status_code == 202
    yield {"setup": setup, "allowed": allowed, "other": other, "live": live}
    allowed.close()
    other.close()


async def test_a_timetracker_page_on_an_allowed_origin_lists_its_users_entries_and_connects_jira(
        page, api, frontend):
    setup: JiraSetup = frontend["setup"]
    tt: TimeTracker = frontend["allowed"]
    await page.goto(tt.url + "/")
    await page.locator('#sync-entries tr[data-entry="j1"]').wait_for(timeout=15_000)
    rows = await page.locator("#sync-entries tbody tr").evaluate_all("rows => rows.map(r => r.dataset.entry)")
    assert sorted(rows) == ["j1", "j2"]  # jdoe's, never olga's
    await page.locator("#sync-status", has_text="JIRA sync for jdoe").wait_for(timeout=15_000)
    await page.screenshot(path=str(OUT / "timetracker-page.png"), full_page=True)

    # Connect: oauth/start from the browser, JIRA's approval page, our callback, back to this page
    item = page.locator(f'#sync-connections li[data-instance="{setup.instance_id}"]')
    assert await item.get_attribute("data-status") == "not_connected"
    await item.locator("button").click()
    await page.locator(f'#sync-connections li[data-instance="{setup.instance_id}"][data-status="connected"]'
                       ).wait_for(timeout=20_000)
    assert page.url.startswith(tt.url)
    connections = (await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)).json()
    assert [(c["jira_instance"], c["status"], c["jira_username"]) for c in connections] == [
        (setup.instance_id, "connected", "alice")]
    await page.screenshot(path=str(OUT / "timetracker-page-connected.png"), full_page=True)


async def test_the_same_page_on_an_origin_the_tenant_did_not_allow_is_blocked(page, frontend):
    tt: TimeTracker = frontend["other"]
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    await page.goto(tt.url + "/")
    await page.locator('#sync-status[data-failed="true"]').wait_for(timeout=15_000)
    assert "Could not reach the JIRA sync service" in await page.inner_text("#sync-status")
    assert await page.locator("#sync-entries").is_hidden()
    assert await page.locator("#sync-entries tbody tr").count() == 0
    await wait_until(lambda: any("CORS" in line for line in console), timeout=10, interval=0.1)  # it says why
    # the page itself got its token (same origin); only the cross-origin call was withheld
    token = await page.evaluate("fetch('/api/jira-sync-token').then(r => r.json()).then(b => b.token)")
    blocked = await page.evaluate(
        "([api, token]) => fetch(api + '/api/v1/me', {headers: {Authorization: 'Bearer ' + token}})"
        ".then(() => 'answered', e => e.name)", [frontend["live"], token])
    assert blocked == "TypeError"
    await page.screenshot(path=str(OUT / "timetracker-page-blocked.png"), full_page=True)


# -- a person's page -----------------------------------------------------------------------------------------------

async def test_a_persons_dashboard_resolves_a_conflict_by_clicking(live, page, api, api_without_window, engine,
                                                                   jira_setup, connect_user, sim):
    setup: JiraSetup = await jira_setup(name="Personal JIRA", project_keys=["PROJ"])
    assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    body = {"user": "jdoe", "ticket": "PROJ-1", "date": "2026-11-25", "start": "09:00", "duration": 90,
            "timezone": "Europe/Berlin", "description": "Fix login", "activity": "Development"}
    assert (await api.put("/api/v1/entries/p1", json=body, headers=setup.headers)).status_code == 202
    await push(engine, setup.tenant.tenant_id, "p1")
    worklog_id = (await api.get("/api/v1/entries/p1", headers=setup.headers)).json()["sync"]["worklog_id"]
    # a person edits the worklog in JIRA long after the entry's last change: a conflict
    sim.control.remote_edit(setup.sim_name, worklog_id, time_spent_seconds=7200, as_user="alice")
    event = [e for e in sim.control.webhook_events(setup.sim_name) if str(e["worklogId"]) == worklog_id][-1]
    from app.security.signatures import sign_hub

    raw = json.dumps(event["payload"]).encode()
    r = await api_without_window.post(f"/webhooks/jira/{setup.instance_id}", content=raw, headers={
        "Content-Type": "application/json", "X-Hub-Signature": sign_hub(setup.webhook_secret, raw)})
    assert r.json()["outcome"] == "jira_wins", r.text
    token = (await api.post("/api/v1/user-tokens", json={"user": "jdoe"}, headers=setup.headers)).json()["token"]

    await page.goto(f"{live}/dashboard#token={token}")
    card = page.locator('article[data-entry="p1"]')
    await card.wait_for(timeout=15_000)
    assert "token" not in page.url  # the fragment is gone from the address bar (and never reached a server)
    assert await card.locator('[data-side="timetracker"] [data-field="duration"]').inner_text() == "1 h 30 min"
    assert await card.locator('[data-side="jira"] [data-field="duration"]').inner_text() == "2 h 00 min"
    assert "Signed in as jdoe" in await page.inner_text("#who")
    assert await page.locator('#my-entries tr[data-entry="p1"] [data-field="status"]').inner_text() != ""
    await page.locator(f'#my-connections li[data-connection="{setup.instance_id}"]').wait_for()
    assert "connected" in await page.inner_text(f'#my-connections li[data-connection="{setup.instance_id}"]')
    await page.locator("#my-notifications li").first.wait_for()
    assert await page.locator("#content").is_hidden()  # no operators' view for a user token
    await page.screenshot(path=str(OUT / "person-conflict.png"), full_page=True)

    # the keyboard alone reaches and presses the page's buttons: mark the notification read
    unread = page.locator("#my-notifications li", has=page.get_by_role("button", name="Mark read")).first
    await unread.get_by_role("button", name="Mark read").focus()
    await page.keyboard.press("Enter")
    await page.locator("#my-notifications li.read").first.wait_for(timeout=15_000)

    await card.get_by_role("button", name="Keep JIRA's version").click()
    await page.locator("#no-conflicts").wait_for(state="visible", timeout=15_000)
    assert "JIRA's version kept" in await page.inner_text("#notice")
    conflicts = (await api.get("/api/v1/conflicts?entry_id=p1", headers=setup.headers)).json()
    assert [(c["status"], c["winner"]) for c in conflicts] == [("resolved", "jira")]
    assert (await api.get("/api/v1/entries/p1", headers=setup.headers)).json()["duration"] == 120
    await page.screenshot(path=str(OUT / "person-resolved.png"), full_page=True)
