"""The dashboard in real Chromium against a real ``stepwell dev`` process.

Chromium is Debian's (``apt-get install chromium``), driven by Playwright through
``executable_path``; no browser is downloaded. Without it these tests are skipped, except under
``CI=true``, where they fail.

Screenshots of the main pages are written to the test's temporary folder, or to ``docs/img/``
with ``STEPWELL_DOCS_SCREENSHOTS=1`` (``make screenshots``), where the docs use them.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dashboard.devserver import ROOT, dev_process

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.slow


def _missing() -> str | None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        return "Chromium is not installed: apt-get install -y chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed: pip install -e '.[dev]'"
    return None


def _need_chromium() -> None:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _need_chromium()
    with dev_process(tmp_path_factory.mktemp("dashboard")) as url:
        yield url


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("STEPWELL_DOCS_SCREENSHOTS") == "1":
        folder = ROOT / "docs" / "img"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def browser(dev_server: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM)
        context = launched.new_context(base_url=dev_server, viewport={"width": 1280, "height": 860})
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()
            launched.close()


def _eventually(check: Any, page: Any, timeout: float = 15) -> None:
    """Reload ``page`` until ``check()`` holds (for pages that are not live)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{page.url} never reached the expected state")
        time.sleep(0.2)
        page.reload()


def _send_from_form(page: Any, name: str, data: str) -> None:
    page.goto("/send")
    page.get_by_label("Event name").fill(name)
    page.get_by_label("Data (a JSON object)").fill(data)
    page.get_by_role("button", name="Send event").click()
    page.wait_for_url("**/events/*")


def test_a_sent_event_shows_its_run_live_and_the_run_reruns_from_a_step_with_edited_input(
    browser: Any, shots: Path
) -> None:
    runs = browser.new_page()
    runs.goto("/?function=dash-pipeline")
    runs.evaluate("window.__not_reloaded = true")
    sender = browser.new_page()
    _send_from_form(sender, "demo/pipeline", '{"n": 3}')
    sender.screenshot(path=str(shots / "event.png"), full_page=True)

    # the runs list, never reloaded, shows the new run
    row = runs.locator("tbody tr[data-run]").first
    row.wait_for()
    assert runs.evaluate("window.__not_reloaded") is True
    runs.wait_for_selector("tbody tr[data-run] .status-completed")
    runs.screenshot(path=str(shots / "runs.png"), full_page=True)

    row.get_by_role("link").click()
    runs.wait_for_url("**/runs/*")
    for step in ("queued", "fetch", "double"):
        assert runs.locator(f'.tl-row[data-step="{step}"] .tl-bar').count() == 1
    assert "&quot;" not in runs.inner_text("main")
    runs.screenshot(path=str(shots / "run.png"), full_page=True)

    step = runs.locator('section[data-step-id="double"]')
    step.get_by_text("Rerun from this step").click()
    step.locator('textarea[data-edit-input="double"]').fill('[{"n": 21}]')
    step.get_by_role("button", name="Rerun from double").click()
    runs.wait_for_selector("text=Rerun from a step")
    runs.wait_for_selector(".status-completed")  # the page follows the run, no reload by us
    assert '"result": 42' in runs.locator('pre[aria-label="run output"]').inner_text()


def test_cancel_a_sleeping_run_and_bulk_cancel_a_filtered_set(
    browser: Any, dev_server: str, shots: Path
) -> None:
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    _send_from_form(page, "demo/sleep", '{"i": 0}')
    _eventually(lambda: page.locator("table a[href^='/runs/']").count() > 0, page)
    page.locator("table a[href^='/runs/']").first.click()
    page.wait_for_url("**/runs/*")
    page.wait_for_selector('.tl-row[data-step="nap (sleeping)"]')  # live while the run is active
    page.screenshot(path=str(shots / "run-sleeping.png"), full_page=True)
    page.get_by_role("button", name="Cancel run").click()
    page.wait_for_selector("text=Run cancelled.")
    assert page.locator(".status-cancelled").count() == 1

    with httpx.Client(base_url=dev_server) as client:
        ids = [
            client.post("/e/dev", json={"name": "demo/sleep", "data": {"i": i}}).json()["ids"][0]
            for i in range(3)
        ]
        deadline = time.monotonic() + 15
        while any(
            client.get(f"/v1/events/{e}/runs").json()["data"][0]["status"] != "Running" for e in ids
        ):
            assert time.monotonic() < deadline, "the sleepers never started"
            time.sleep(0.1)
    page.goto("/")
    page.get_by_label("Function").select_option("dash-sleeper")
    page.get_by_label("Status").select_option("Running")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**status=Running**")
    assert page.locator("tbody tr[data-run]").count() == 3
    page.get_by_role("button", name="Cancel all matching runs").click()
    page.wait_for_url("**/bulk/*")
    page.wait_for_selector('[data-field="state"]:text("done")')
    assert page.locator('[data-field="changed"]').inner_text() == "3"
    page.screenshot(path=str(shots / "bulk.png"), full_page=True)
    with httpx.Client(base_url=dev_server) as client:
        for event_id in ids:
            assert client.get(f"/v1/events/{event_id}/runs").json()["data"][0]["status"] == (
                "Cancelled"
            )


def test_replay_an_event_and_the_other_pages(browser: Any, dev_server: str, shots: Path) -> None:
    page = browser.new_page()
    _send_from_form(page, "demo/charge", "{}")
    original = page.url
    page.get_by_role("button", name="Replay event").click()
    page.wait_for_selector("text=Replayed as a new event")
    assert page.url.split("?")[0] != original.split("?")[0]
    _eventually(lambda: page.locator("table a[href^='/runs/']").count() == 1, page)
    page.goto("/events")
    before = page.locator("tbody tr[data-event]").count()
    assert before >= 2
    with httpx.Client(base_url=dev_server) as client:
        client.post("/e/dev", json={"name": "demo/live", "data": {}})
    page.wait_for_selector("tbody tr[data-event] a:text('demo/live')")  # no reload
    assert page.locator("tbody tr[data-event]").count() == before + 1
    page.screenshot(path=str(shots / "events.png"), full_page=True)
    pages = [("/functions", "functions"), ("/apps", "apps"), ("/send", "send")]
    for path, name in [*pages, ("/activity", "activity")]:
        page.goto(path)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(el => !el.labels || el.labels.length === 0).length"""
        )
        assert unlabelled == 0, path
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.emulate_media(color_scheme="dark")
    page.goto("/")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"
    page.screenshot(path=str(shots / "runs-dark.png"), full_page=True)


KEY = "signkey-prod-" + "ab" * 32


def test_production_mode_asks_for_the_signing_key_and_keeps_a_session(
    tmp_path: Path, shots: Path
) -> None:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with dev_process(tmp_path, signing_key=KEY) as url, sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = launched.new_page(base_url=url)
            page.goto("/events")
            assert "/dashboard/login" in page.url
            assert page.locator("text=Dev mode").count() == 0
            page.get_by_label("Signing key").fill("signkey-prod-" + "cd" * 32)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_selector("text=That is not this server's signing key.")
            page.screenshot(path=str(shots / "login.png"))
            page.get_by_label("Signing key").fill(KEY)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/events")
            page.goto("/functions")  # the session holds across pages
            assert page.locator("h2", has_text="dash-pipeline").count() == 1
            page.get_by_role("button", name="Log out").click()
            page.wait_for_url("**/dashboard/login")
            page.goto("/")
            assert "/dashboard/login" in page.url
        finally:
            launched.close()
