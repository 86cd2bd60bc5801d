"""The dashboard over HTTP: pages, escaping, forms, actions, bulk operations, login."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepwell.engine.api.dashboard import runs as runs_module
from tests.dashboard.dashboard_app import app
from tests.support import engine_server, free_port, serve

KEY = "signkey-prod-" + "ab" * 32


async def _wait_run(client: httpx.AsyncClient, event_id: str, status: str) -> dict[str, Any]:
    for _ in range(400):
        runs = (await client.get(f"/v1/events/{event_id}/runs")).json()["data"]
        if runs and runs[0]["status"] == status:
            return dict(runs[0])
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {status} run for {event_id}: {runs}")


async def _wait_status(client: httpx.AsyncClient, run_id: str, status: str) -> dict[str, Any]:
    for _ in range(400):
        run = (await client.get(f"/v1/runs/{run_id}")).json()["data"]
        if run["status"] == status:
            return dict(run)
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} is {run['status']}, not {status}")


async def _send(client: httpx.AsyncClient, name: str, data: dict[str, Any]) -> str:
    response = await client.post("/e/dev", json={"name": name, "data": data})
    return str(response.json()["ids"][0])


async def test_every_page_renders_and_escapes_what_it_shows(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        hostile = "<script>alert(1)</script>"
        event_id = await _send(client, "demo/pipeline", {"n": 3, "note": hostile})
        run = await _wait_run(client, event_id, "Completed")
        pages = ["/", "/events", f"/events/{event_id}", f"/runs/{run['run_id']}"]
        pages += ["/functions", "/apps", "/send", "/?status=Completed&range=1h"]
        for path in pages:
            response = await client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
            assert hostile not in response.text, path
            assert "Dev mode" in response.text
        detail = (await client.get(f"/runs/{run['run_id']}")).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
        assert 'data-step="fetch"' in detail and 'data-step="double"' in detail
        assert "&quot;result&quot;: 6" in detail
        css = await client.get("/dashboard/static/dashboard.css")
        assert "prefers-color-scheme: dark" in css.text


async def test_the_runs_list_filters_searches_and_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        first = await _send(client, "demo/pipeline", {"n": 1})
        failing = await _send(client, "demo/charge", {})
        await _wait_run(client, first, "Completed")
        failed = await _wait_run(client, failing, "Failed")
        for _ in range(55):
            await _send(client, "demo/pipeline", {"n": 2})

        def run_ids(html: str) -> list[str]:
            return re.findall(r'data-run="([0-9A-Z]+)"', html)

        only_failed = run_ids((await client.get("/", params={"status": "Failed"})).text)
        assert only_failed == [failed["run_id"]]
        by_event = (await client.get("/", params={"event": "demo/charge"})).text
        assert run_ids(by_event) == [failed["run_id"]]
        by_function = run_ids((await client.get("/", params={"function": "dash-charge"})).text)
        assert by_function == [failed["run_id"]]
        assert run_ids((await client.get("/", params={"q": failed["run_id"]})).text) == [
            failed["run_id"]
        ]
        assert run_ids((await client.get("/", params={"q": failing})).text) == [failed["run_id"]]
        page_one = await client.get("/")
        assert len(run_ids(page_one.text)) == 50
        cursor = re.search(r'href="/\?cursor=([0-9A-Z]+)"', page_one.text)
        assert cursor is not None, "no link to older runs"
        page_two = run_ids((await client.get("/", params={"cursor": cursor.group(1)})).text)
        assert len(page_two) == 7
        assert not set(page_two) & set(run_ids(page_one.text))
        by_condition = (await client.get("/", params={"if": "event.data.n == 1"})).text
        assert run_ids(by_condition) == [(await _wait_run(client, first, "Completed"))["run_id"]]
        many = (await client.get("/", params={"if": "event.data.n == 2"})).text
        assert len(run_ids(many)) == 50 and "Older runs" in many
        assert 'name="if" value="event.data.n == 2"' in many  # kept by the bulk actions
        broken = (await client.get("/", params={"if": "event.data.n =="})).text
        assert "does not compile" in broken and run_ids(broken) == []
        monkeypatch.setattr(runs_module, "SCAN_BUDGET", 10)
        budgeted = (await client.get("/", params={"if": "event.data.n == 1"})).text
        assert run_ids(budgeted) == [] and "Looked at 10 runs" in budgeted
        assert "Older runs" in budgeted
        live = await client.get("/runs/fragment", params={"status": "Failed"})
        assert run_ids(live.text) == [failed["run_id"]]
        error_page = (await client.get(f"/runs/{failed['run_id']}")).text
        assert "the payment provider said no" in error_page


async def test_the_send_form_validates_and_sends(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        bad = await client.post("/send", data={"name": "demo/pipeline", "data": "{nope"})
        assert bad.status_code == 400
        assert "Not valid JSON" in bad.text and 'aria-invalid="true"' in bad.text
        assert "{nope" in bad.text  # what was typed is kept
        not_object = await client.post("/send", data={"name": "demo/pipeline", "data": "[1]"})
        assert not_object.status_code == 400 and "JSON object" in not_object.text
        no_name = await client.post("/send", data={"name": " ", "data": "{}"})
        assert no_name.status_code == 400 and "Give the event a name" in no_name.text
        sent = await client.post("/send", data={"name": "demo/pipeline", "data": '{"n": 5}'})
        assert sent.status_code == 303
        event_id = sent.headers["location"].split("/events/")[1].split("?")[0]
        run = await _wait_run(client, event_id, "Completed")
        assert run["output"] == {"result": 10}


async def test_rerun_from_a_step_replays_earlier_steps_with_edited_output(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        event_id = await _send(client, "demo/pipeline", {"n": 4})
        run = await _wait_run(client, event_id, "Completed")
        steps = (await client.get(f"/v1/runs/{run['run_id']}/steps")).json()["data"]
        keys = {s["step_id"]: s["step_key"] for s in steps}
        response = await client.post(
            f"/runs/{run['run_id']}/rerun",
            data={"step_key": keys["double"], f"output:{keys['fetch']}": '{"n": 21}'},
        )
        assert response.status_code == 303, response.text
        new_id = response.headers["location"].split("/runs/")[1].split("?")[0]
        assert new_id != run["run_id"]
        rerun = await _wait_status(client, new_id, "Completed")
        assert rerun["output"] == {"result": 42}
        assert rerun["event_id"] == event_id
        plain = await client.post(f"/runs/{run['run_id']}/rerun")
        assert plain.status_code == 303
        runs = await _wait_run(client, event_id, "Completed")
        assert runs["run_id"] == run["run_id"]
        all_runs = (await client.get(f"/v1/events/{event_id}/runs")).json()["data"]
        assert len(all_runs) == 3
        steps_of_rerun = (await client.get(f"/v1/runs/{new_id}/steps")).json()["data"]
        fetched = [s["output"] for s in steps_of_rerun if s["step_id"] == "fetch"]
        assert fetched == [{"data": {"n": 21}}]  # seeded, not run again
        bad = await client.post(
            f"/runs/{run['run_id']}/rerun", data={"step_key": keys["double"], "output:x": "1"}
        )
        assert "error=" in bad.headers["location"]
        # another output for the step itself: the rerun continues after it
        own = await client.post(
            f"/runs/{run['run_id']}/rerun",
            data={"step_key": keys["double"], f"output:{keys['double']}": "1000"},
        )
        own_id = own.headers["location"].split("/runs/")[1].split("?")[0]
        assert (await _wait_status(client, own_id, "Completed"))["output"] == {"result": 1000}
        page = (await client.get(f"/runs/{run['run_id']}")).text
        assert 'data-own-output="double"' in page and 'data-edit-step="fetch"' in page
        assert 'data-edit-input="double"' in page and 'aria-label="input of double"' in page


async def test_rerun_from_a_step_with_edited_input_from_the_form_and_the_rest_api(
    tmp_path: Path,
) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        event_id = await _send(client, "demo/pipeline", {"n": 4})
        run = await _wait_run(client, event_id, "Completed")
        steps = (await client.get(f"/v1/runs/{run['run_id']}/steps")).json()["data"]
        by_id = {s["step_id"]: s for s in steps}
        assert by_id["double"]["input"] == [{"n": 4}]
        key = by_id["double"]["step_key"]
        form = await client.post(
            f"/runs/{run['run_id']}/rerun", data={"step_key": key, "input": '[{"n": 50}]'}
        )
        form_id = form.headers["location"].split("/runs/")[1].split("?")[0]
        assert (await _wait_status(client, form_id, "Completed"))["output"] == {"result": 100}
        rest = await client.post(
            f"/v1/runs/{run['run_id']}/rerun", json={"step_key": key, "input": [{"n": 7}]}
        )
        assert rest.status_code == 201, rest.text
        rest_id = rest.json()["data"]["run_id"]
        assert (await _wait_status(client, rest_id, "Completed"))["output"] == {"result": 14}
        rerun_steps = (await client.get(f"/v1/runs/{rest_id}/steps")).json()["data"]
        assert [s["input"] for s in rerun_steps if s["step_id"] == "double"] == [[{"n": 7}]]
        # bad input is refused with the reason, and starts nothing
        bad_json = await client.post(
            f"/runs/{run['run_id']}/rerun", data={"step_key": key, "input": "[oops"}
        )
        assert "error=" in bad_json.headers["location"]
        not_list = await client.post(
            f"/v1/runs/{run['run_id']}/rerun", json={"step_key": key, "input": {"n": 1}}
        )
        assert not_list.status_code == 400 and "list of its arguments" in not_list.text
        unknown = await client.post("/v1/runs/nope/rerun", json={})
        assert unknown.status_code == 404
        all_runs = (await client.get(f"/v1/events/{event_id}/runs")).json()["data"]
        assert len(all_runs) == 3


async def test_cancel_replay_and_invoke_from_the_dashboard(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        event_id = await _send(client, "demo/sleep", {})
        run = await _wait_run(client, event_id, "Running")
        for _ in range(200):
            page = (await client.get(f"/runs/{run['run_id']}")).text
            if "nap (sleeping)" in page:
                break
            await asyncio.sleep(0.02)
        assert "nap (sleeping)" in page
        cancelled = await client.post(f"/runs/{run['run_id']}/cancel")
        assert cancelled.status_code == 303
        assert (await client.get(f"/v1/runs/{run['run_id']}")).json()["data"]["status"] == (
            "Cancelled"
        )
        replayed = await client.post(f"/events/{event_id}/replay")
        new_event = replayed.headers["location"].split("/events/")[1].split("?")[0]
        assert new_event != event_id
        await _wait_run(client, new_event, "Running")
        invoked = await client.post("/functions/dash-pipeline/invoke", data={"data": '{"n": 8}'})
        new_run = invoked.headers["location"].split("/runs/")[1].split("?")[0]
        body = await _wait_status(client, new_run, "Completed")
        assert body["output"] == {"result": 16}


async def test_an_event_page_says_why_a_function_started_no_run(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        first = await _send(client, "demo/limited", {})
        await _wait_run(client, first, "Completed")
        second = await _send(client, "demo/limited", {})
        page = (await client.get(f"/events/{second}")).text
        assert "Functions it started no run of" in page
        assert "dash-limited" in page and "rate limit" in page.lower()
        orphan = await _send(client, "nobody/listens", {})
        page = (await client.get(f"/events/{orphan}")).text
        assert "no registered function is triggered by" in page


async def test_pause_and_resume_a_function_from_the_functions_page(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/functions/dash-pipeline/pause", follow_redirects=True)
        assert "Paused dash-pipeline" in response.text
        assert "Resume dash-pipeline" in response.text
        held = await _send(client, "demo/pipeline", {"n": 1})
        page = (await client.get(f"/events/{held}")).text
        assert "function paused" in page
        response = await client.post("/functions/dash-pipeline/resume", follow_redirects=True)
        assert "Pause dash-pipeline" in response.text
        replayed = await client.post(f"/events/{held}/replay", follow_redirects=True)
        assert replayed.status_code == 200
        runs = (await client.get("/v1/runs", params={"function_id": "dash-pipeline"})).json()
        assert len(runs["data"]) == 1  # the event held while paused, replayed


async def test_a_run_page_lists_the_attempts_that_failed_and_were_retried(
    tmp_path: Path,
) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        event_id = await _send(client, "demo/flaky", {})
        run = await _wait_run(client, event_id, "Completed")
        page = (await client.get(f"/runs/{run['run_id']}")).text
        assert "Failed attempts (retried)" in page
        assert "Attempt 1 of step <code>try</code>" in page and "not yet" in page


async def test_bulk_cancel_over_rest_reports_progress(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        events = [await _send(client, "demo/sleep", {"i": i}) for i in range(5)]
        other = await _send(client, "demo/pipeline", {"n": 1})
        for event_id in events:
            await _wait_run(client, event_id, "Running")
        await _wait_run(client, other, "Completed")
        bad = await client.post("/v1/cancellations", json={"if": "event.data.i >"})
        assert bad.status_code == 400
        created = await client.post(
            "/v1/cancellations",
            json={"app_id": "dash", "function_id": "sleeper", "if": "event.data.i < 3"},
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        for _ in range(200):
            job = (await client.get(f"/v1/cancellations/{job_id}")).json()
            if job["state"] == "done":
                break
            await asyncio.sleep(0.02)
        assert (job["total"], job["processed"], job["changed"]) == (3, 3, 3)
        statuses = []
        for event_id in events:
            runs = (await client.get(f"/v1/events/{event_id}/runs")).json()["data"]
            statuses.append(runs[0]["status"])
        assert statuses == ["Cancelled"] * 3 + ["Running"] * 2
        page = await client.get(f"/bulk/{job_id}")
        assert "data-progress" in page.text and page.status_code == 200
        replay = await client.post("/v1/replays", json={"function_id": "dash-pipeline"})
        replayed = (await client.get(f"/v1/replays/{replay.json()['id']}")).json()
        while replayed["state"] != "done":
            await asyncio.sleep(0.02)
            replayed = (await client.get(f"/v1/replays/{replay.json()['id']}")).json()
        assert replayed["changed"] == 1
        assert len((await client.get(f"/v1/events/{other}/runs")).json()["data"]) == 2


async def test_forms_posted_from_another_site_are_refused(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        data = {"name": "demo/pipeline", "data": "{}"}
        evil = await client.post("/send", data=data, headers={"Origin": "http://evil.test"})
        assert evil.status_code == 403
        opaque = await client.post("/send", data=data, headers={"Origin": "null"})
        assert opaque.status_code == 403
        assert (await client.get("/v1/events")).json()["data"] == []
        here = await client.post("/send", data=data, headers={"Origin": url})
        assert here.status_code == 303


async def test_production_mode_needs_a_login(tmp_path: Path) -> None:
    async with (
        serve([app], tmp_path / "d.db", signing_keys=[KEY], server_kind="cloud") as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        for path in ["/", "/events", "/functions", "/runs/x"]:
            response = await client.get(path)
            assert response.status_code == 303
            assert response.headers["location"].startswith("/dashboard/login?next=%2F")
        assert (await client.post("/send", data={"name": "a"})).status_code == 401
        assert (await client.post("/v1/cancellations", json={})).status_code == 401
        form = await client.get("/dashboard/login")
        assert 'type="password"' in form.text and "Dev mode" not in form.text
        wrong = await client.post("/dashboard/login", data={"token": "nope", "next": "/events"})
        assert wrong.status_code == 401 and "not this server" in wrong.text
        assert 'name="next" value="/events"' in wrong.text  # kept for the next try
        right = await client.post("/dashboard/login", data={"token": KEY, "next": "/events"})
        assert right.status_code == 303 and right.headers["location"] == "/events"
        assert KEY.split("-")[-1] not in right.headers["set-cookie"]
        assert "httponly" in right.headers["set-cookie"].lower()
        page = await client.get("/events")
        assert page.status_code == 200 and "Log out" in page.text
        away = await client.post("/dashboard/login", data={"token": KEY, "next": "//evil.test"})
        assert away.headers["location"] == "/"
        await client.post("/dashboard/logout")
        client.cookies.clear()
        assert (await client.get("/events")).status_code == 303


async def test_bulk_actions_on_the_runs_page_act_on_what_the_filters_show(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        sleepers = [await _send(client, "demo/sleep", {"i": i}) for i in range(2)]
        for event_id in sleepers:
            await _wait_run(client, event_id, "Running")
        page = (await client.get("/", params={"event": "demo/sleep"})).text
        assert 'name="event_name" value="demo/sleep"' in page
        assert "Cancel all matching runs" in page
        searching = (await client.get("/", params={"q": "x", "status": "Running"})).text
        assert "Clear the search" in searching and "Cancel all matching runs" not in searching
        started = await client.post("/bulk", data={"kind": "cancel", "event_name": "demo/sleep"})
        assert started.status_code == 303
        job_id = started.headers["location"].removeprefix("/bulk/")
        for _ in range(200):
            job = (await client.get(f"/bulk/{job_id}/progress")).json()
            if job["state"] == "done":
                break
            await asyncio.sleep(0.02)
        assert (job["changed"], job["event_name"]) == (2, "demo/sleep")
        for event_id in sleepers:
            await _wait_run(client, event_id, "Cancelled")
        refused = await client.post("/bulk", data={"kind": "explode"})
        assert "error=" in refused.headers["location"]


async def test_syncing_an_app_by_url_shows_the_failure_in_plain_words(tmp_path: Path) -> None:
    async with (
        engine_server(tmp_path / "e.db") as served,
        httpx.AsyncClient(base_url=served.url) as client,
    ):
        nowhere = f"http://127.0.0.1:{free_port()}/api/inngest"
        bad = await client.post("/apps/sync", data={"url": "localhost:3000"})
        assert "error=" in bad.headers["location"]
        assert "full serve URL" in (await client.get(bad.headers["location"])).text
        response = await client.post("/apps/sync", data={"url": nowhere})
        assert response.status_code == 303
        shown = (await client.get(response.headers["location"])).text
        assert f"Could not sync {nowhere}" in shown
        apps_page = (await client.get("/apps")).text
        assert nowhere in apps_page and "sync failed" in apps_page


async def test_the_timeline_shows_a_wait_until_its_event_comes(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        waiting = await _send(client, "demo/wait", {"id": "a-1"})
        run = await _wait_run(client, waiting, "Running")
        for _ in range(200):
            page = (await client.get(f"/runs/{run['run_id']}")).text
            if "approval (waiting for demo/approved)" in page:
                break
            await asyncio.sleep(0.02)
        assert 'data-step="approval (waiting for demo/approved)"' in page
        assert "data-live=" in page  # an active run's page follows it
        await _send(client, "demo/approved", {"id": "a-1", "by": "ada"})
        done = await _wait_status(client, run["run_id"], "Completed")
        assert done["output"] == {"id": "a-1", "by": "ada"}
        page = (await client.get(f"/runs/{run['run_id']}")).text
        assert 'data-step="approval"' in page and "waiting for" not in page
        assert "data-live=" not in page
