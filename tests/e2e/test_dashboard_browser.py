"""The dashboard in a real headless Chromium against a real uvicorn process (CONTRACT section 9)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.integration.ops_data import add_instance, add_push_audits, put_entries, set_state
from tests.live_server import ROOT, live_api

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium_or_skip() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed and could not be (`make browser` installs it as root)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright package is missing (it is a dev dependency: `make install`)")


@pytest.fixture(scope="module")
def live(stack):
    with live_api(stack.env, log_name="dashboard-api") as base:
        yield base


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f} %"


def ms(x: float | None) -> str:
    return "–" if x is None else f"{round(x)} ms"


async def test_dashboard_shows_the_api_figures_and_retries_a_failed_entry(live, app, api, make_tenant):
    _chromium_or_skip()
    from playwright.async_api import async_playwright

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
        profile = tempfile.mkdtemp(prefix="ttsync-chromium-")
        try:
            async with async_playwright() as pw:
                # a fresh profile per run (Playwright passes it as --user-data-dir)
                browser = await pw.chromium.launch_persistent_context(
                    profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                    viewport={"width": 1280, "height": 900},
                )
                try:
                    page = await browser.new_page()
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

                    out = ROOT / "test-output"
                    out.mkdir(exist_ok=True)
                    await page.screenshot(path=str(out / "dashboard.png"), full_page=True)

                    await page.click('button[data-retry="d4"]')
                    for _ in range(50):
                        entry = (await client.get("/api/v1/entries/d4")).json()
                        if entry["sync"]["status"] == "pending":
                            break
                        await page.wait_for_timeout(100)
                    assert entry["sync"]["status"] == "pending"
                    # the next refresh no longer lists it as failed
                    await page.locator('tr[data-entry="d4"]').wait_for(state="detached", timeout=15_000)
                    await page.screenshot(path=str(out / "dashboard-after-retry.png"), full_page=True)
                finally:
                    await browser.close()
        finally:
            shutil.rmtree(profile, ignore_errors=True)
