"""Smoke test of the benchmark harness (``make bench``): cases in their own processes, the replay server, the report."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.run import Run, Servers, background_server, case_result, run_case

ITEMS = 3_200  # synthetic pages of 1,500 items: 1,500 + 1,500 + 200
TABLE = f"synthetic-{ITEMS}"


@pytest.fixture(scope="module")
def replay_url() -> Iterator[str]:
    with background_server([sys.executable, "-m", "benchmarks.replay_server"]) as url:
        yield url


def test_cases_read_every_synthetic_item_and_the_report_renders(replay_url: str, tmp_path: Path) -> None:
    servers = Servers("", replay_url, str(tmp_path))
    started = {
        ("raw_floor", None): run_case(servers, replay_url, "raw_floor", TABLE),
        ("scan", None): run_case(servers, replay_url, "scan", TABLE),
        ("scan", 700): run_case(servers, replay_url, "scan", TABLE, limit=700),
        ("parallel_scan", None): run_case(servers, replay_url, "parallel_scan", TABLE, workers=2, total_segments=3),
        ("segment_scan", None): run_case(servers, replay_url, "segment_scan", TABLE, segment=1, total_segments=2),
        ("boto3_paginator", None): run_case(servers, replay_url, "boto3_paginator", TABLE),
    }
    results = {key: case_result(process, None) for key, process in started.items()}
    assert {key: result.get("error") for key, result in results.items()} == dict.fromkeys(started)
    # Pages 0 and 2 are segment 0's of 2, page 1 is segment 1's; with Limit 700 the table is 5 pages.
    assert {key: result["items"] for key, result in results.items()} == {
        ("raw_floor", None): ITEMS,
        ("scan", None): ITEMS,
        ("scan", 700): ITEMS,
        ("parallel_scan", None): ITEMS,
        ("segment_scan", None): 1_500,
        ("boto3_paginator", None): ITEMS,
    }
    for result in results.values():
        assert result["seconds"] > 0 and result["cpu_seconds"] > 0 and result["peak_rss_mb"] > result["start_rss_mb"]

    run = Run(settings={"items": ITEMS}, machine={"date": "today", "versions": {}, "load_average_at_start": 0.0})
    run.machine.update(cpu="test", cores=2, memory_gib=1, os="Linux", python="3", node="v20")
    for (function, limit), result in results.items():
        if limit is None and function in ("raw_floor", "scan", "boto3_paginator"):
            run.results.append({**result, "group": "throughput", "scenario": "replay+0ms", "key": function})
    text = report.markdown(run)
    assert "| raw floor: HTTP + orjson.loads, no decoding |" in text
    assert "| scan | " in text  # the ratio row of our scan against the baselines
    (cpu_target,) = [row for row in report.targets(report.Results(run)) if "raw floor" in row["target"]]
    assert cpu_target["met"] in ("met", "not met") and "CPU s per 1k items" in cpu_target["measured"]
