"""The dashboard's one stylesheet and one script, written for it and served from memory.

The stylesheet follows ``prefers-color-scheme``; the script is progressive enhancement only:
every page works without it. It polls ``data-live`` parts of a page (new runs and events appear
without a reload, an active run's timeline moves on), follows bulk-operation progress, asks
before destructive actions and shows times in the reader's zone.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

CSS = """
:root {
  --bg: #ffffff; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --panel: #f6f8fa;
  --accent: #0a58ca; --accent-fg: #ffffff; --danger: #b42318; --ok: #1a7f37; --warn: #9a6700;
  --queued: #57606a; --bar: #0a58ca; --bar-pending: #9a6700; --focus: #ff8c00;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --fg: #e6edf3; --muted: #9da7b3; --line: #30363d; --panel: #161b22;
    --accent: #4493f8; --accent-fg: #0d1117; --danger: #ff7b72; --ok: #3fb950; --warn: #d29922;
    --queued: #9da7b3; --bar: #4493f8; --bar-pending: #d29922;
  }
}
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
  background: var(--bg); color: var(--fg); }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 8px; top: 8px; background: var(--panel); padding: 4px 8px; }
header { border-bottom: 1px solid var(--line); background: var(--panel); }
nav { display: flex; align-items: center; gap: 16px; padding: 8px 24px; flex-wrap: wrap; }
nav ul { display: flex; gap: 12px; list-style: none; margin: 0; padding: 0; }
nav a { text-decoration: none; padding: 4px 6px; border-radius: 4px; }
nav a[aria-current="page"] { background: var(--accent); color: var(--accent-fg); }
.brand { font-weight: 700; color: var(--fg); }
.send { margin-left: auto; }
.banner { margin: 0; padding: 6px 24px; background: var(--warn); color: var(--bg); }
.banner code { color: inherit; }
main { padding: 8px 24px 48px; max-width: 1400px; }
h1 { font-size: 1.5rem; margin: 12px 0; word-break: break-all; }
h2 { font-size: 1.15rem; margin: 24px 0 8px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
caption { text-align: left; color: var(--muted); padding: 4px 0; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--panel); }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 13px; }
pre.json { background: var(--panel); border: 1px solid var(--line); padding: 8px; margin: 4px 0;
  overflow: auto; max-height: 320px; white-space: pre-wrap; word-break: break-word; }
form.filters { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: end;
  background: var(--panel); padding: 12px; border: 1px solid var(--line); border-radius: 6px; }
form.filters > div { display: flex; flex-direction: column; }
form.stack { display: flex; flex-direction: column; gap: 6px; max-width: 720px; }
form.inline { display: inline; }
label { font-weight: 600; font-size: 13px; }
input, select, textarea, button { font: inherit; color: var(--fg); background: var(--bg);
  border: 1px solid var(--line); border-radius: 4px; padding: 4px 8px; }
textarea { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; width: 100%; }
button { cursor: pointer; background: var(--accent); color: var(--accent-fg);
  border-color: var(--accent); }
button.secondary { background: var(--bg); color: var(--accent); }
button.danger { background: var(--danger); border-color: var(--danger); color: var(--bg); }
.actions { display: flex; gap: 8px; flex-wrap: wrap; margin: 8px 0; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; border: 1px solid currentColor; }
.status-completed { color: var(--ok); }
.status-failed { color: var(--danger); }
.status-cancelled { color: var(--muted); }
.status-running { color: var(--accent); }
.status-queued { color: var(--warn); }
.notice { border-left: 4px solid var(--ok); padding: 6px 12px; background: var(--panel); }
.error { border-left: 4px solid var(--danger); padding: 6px 12px; background: var(--panel); }
.field-error { color: var(--danger); margin: 0; }
.muted { color: var(--muted); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dt { color: var(--muted); }
dd { margin: 0; word-break: break-all; }
.timeline { border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.tl-row { display: grid; grid-template-columns: 220px 1fr 110px; gap: 8px; align-items: center;
  min-height: 26px; }
.tl-name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.tl-track { position: relative; height: 14px; background: var(--panel); border-radius: 3px; }
.tl-bar { position: absolute; top: 0; bottom: 0; min-width: 2px; border-radius: 3px;
  background: var(--bar); }
.tl-bar.queued { background: var(--queued); }
.tl-bar.pending { background: repeating-linear-gradient(45deg, var(--bar-pending),
  var(--bar-pending) 4px, transparent 4px, transparent 8px); border: 1px solid var(--bar-pending); }
.tl-bar.failed { background: var(--danger); }
.tl-dur { text-align: right; color: var(--muted); font-size: 13px; }
.tl-axis { display: flex; justify-content: space-between; color: var(--muted); font-size: 12px;
  margin-left: 228px; margin-right: 118px; }
details { margin: 6px 0; }
summary { cursor: pointer; color: var(--accent); }
progress { width: 320px; height: 18px; }
.chart { max-width: 100%; height: auto; }
.chart text { fill: var(--muted); font-size: 11px; }
.chart .started { fill: var(--accent); }
.chart .Completed { fill: var(--ok); }
.chart .Failed { fill: var(--danger); }
.chart .Cancelled { fill: var(--muted); }
.chart .axis { stroke: var(--line); }
.legend { display: flex; gap: 16px; list-style: none; padding: 0; }
.login { max-width: 420px; }
"""

JS = """
"use strict";
(function () {
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.title = el.textContent; el.textContent = d.toLocaleString(); }
    });
  }
  function poll(body) {
    var url = body.getAttribute("data-live");
    var last = body.innerHTML;
    function tick() {
      if (document.hidden) { return; }
      fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html"}})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html !== null && html !== last) {
            if (body.hasAttribute("data-reload-when-final") &&
                html.indexOf("data-final") !== -1) { window.location.reload(); return; }
            last = html; body.innerHTML = html; localTimes(body);
          }
        })
        .catch(function () {});
    }
    setInterval(tick, 1500);
  }
  function progress(box) {
    var url = box.getAttribute("data-progress");
    function tick() {
      fetch(url, {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (job) {
          var bar = box.querySelector("progress");
          if (job.total !== null) { bar.max = Math.max(job.total, 1); bar.value = job.processed; }
          box.querySelector("[data-field=state]").textContent = job.state;
          box.querySelector("[data-field=processed]").textContent = job.processed;
          box.querySelector("[data-field=total]").textContent =
            job.total === null ? "…" : job.total;
          box.querySelector("[data-field=changed]").textContent = job.changed;
          box.querySelector("[data-field=skipped]").textContent = job.skipped;
          if (job.state !== "done" && job.state !== "failed") { setTimeout(tick, 500); }
        })
        .catch(function () { setTimeout(tick, 2000); });
    }
    tick();
  }
  document.addEventListener("submit", function (ev) {
    var ask = ev.target.getAttribute("data-confirm");
    if (ask && !window.confirm(ask)) { ev.preventDefault(); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.querySelectorAll("[data-live]").forEach(poll);
    document.querySelectorAll("[data-progress]").forEach(progress);
  });
})();
"""


async def stylesheet(request: Request) -> Response:
    return Response(CSS, media_type="text/css", headers={"Cache-Control": "max-age=300"})


async def script(request: Request) -> Response:
    return Response(JS, media_type="text/javascript", headers={"Cache-Control": "max-age=300"})
