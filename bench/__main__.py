"""Every workload on stepwell and on each peer, in one run.

    pip install -e '.[bench]'
    python -m bench --quick                 # under 10 minutes; what `make bench` runs
    python -m bench --full                  # the sizes of issue #5 (W5 alone takes ~20 minutes)
    python -m bench --quick --only embedded,celery   # some parts only; docs are left alone
    python -m bench --report-only           # tables, chart and docs again from bench/results.json

Prints the machine's load average first, then each part as it runs, then a table of absolute
figures and ratios (stepwell ÷ best peer). A complete run writes ``bench/results.json``, the chart
``docs/img/bench.png`` and the generated block of ``docs/benchmarks.md``. Durability stays at
each system's defaults; nothing here is a test assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.embedded import build_app

__all__ = ["build_app"]  # bench.postgres builds its nodes' app from here

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "img" / "bench.png"
SERVERS = {"postgres": "PostgreSQL", "celery": "Redis", "restate": "restate-server"}
"""Parts that report the version of the server they ran on, and the server's name."""
PACKAGES = ("stepwell", "celery", "redis", "dbos", "restate-sdk", "hypercorn", "inngest", "uvicorn")


def versions() -> dict[str, str]:
    """Versions of what the run used: Python packages, Node.js and the npm packages."""
    found = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    if "inngest" in found:
        found["inngest (PyPI)"] = found.pop("inngest")
    package_json = ROOT / "tests" / "official" / "nextjs" / "package.json"
    if package_json.exists():
        dependencies = json.loads(package_json.read_text())["dependencies"]
        found["inngest (npm)"] = dependencies["inngest"]
        found["next"] = dependencies["next"]
    if node := shutil.which("node"):
        out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
        found["Node.js"] = out.stdout.strip().lstrip("v")
    return found


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average": list(os.getloadavg()),
    }


def report(results: dict[str, Any], write: bool) -> None:
    from bench import report as make

    print()
    print(make.text_table(make.peer_rows(results)))
    print()
    print(make.text_table(make.mode_rows(results)))
    print()
    for name, part in results["parts"].items():
        if "settings" in part:
            print(f"{name}: {part['settings']}")
    for line in make.unavailable(results):
        print(f"could not run: {line}")
    if write:
        make.chart(results, CHART)
        make.write_docs(results, DOC, f"img/{CHART.name}")
        print(
            f"\nwrote {RESULTS.relative_to(ROOT)}, {CHART.relative_to(ROOT)}, {DOC.relative_to(ROOT)}"
        )


def main() -> None:
    from bench.sizes import MODES
    from bench.suite import PARTS, run_parts

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", dest="mode", const="quick")
    size.add_argument("--full", action="store_const", dest="mode", const="full")
    size.add_argument(
        "--tiny",
        action="store_const",
        dest="mode",
        const="tiny",
        help="smoke test: every workload at a tiny size",
    )
    parser.add_argument("--only", help=f"comma-separated parts, of: {', '.join(PARTS)}")
    parser.add_argument(
        "--report-only", action="store_true", help="report bench/results.json again"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report_only:
        report(json.loads(args.results.read_text()), write=True)
        return
    mode = args.mode or "quick"
    parts = tuple(args.only.split(",")) if args.only else PARTS
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    info = machine()
    load = ", ".join(f"{x:.2f}" for x in info["load_average"])
    print(f"load average at start: {load} ({info['cpus']} cores); sizes: {mode}", flush=True)
    started = time.time()
    results: dict[str, Any] = {
        "command": f"python -m bench --{mode}" + (f" --only {args.only}" if args.only else ""),
        "mode": mode,
        "started_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "machine": info,
        "versions": versions(),
        "parts": run_parts(parts, mode, MODES[mode]),
    }
    results["seconds"] = time.time() - started
    for part, server in SERVERS.items():
        if "server_version" in results["parts"].get(part, {}):
            results["versions"][server] = results["parts"][part]["server_version"]
    complete = not args.only and mode != "tiny"
    out = RESULTS if complete else Path(tempfile.gettempdir()) / "stepwell-bench-partial.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    report(results, write=complete)
    if not complete:
        print(f"\na partial run: results in {out}, docs left alone")


if __name__ == "__main__":
    main()
