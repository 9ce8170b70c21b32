"""The benchmark harness (``make bench``) on a tiny table: real cases in their own processes, the report, its page."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report
from benchmarks.run import Bench, Run, background_server, case_result, together

# Four processes that each import Airflow: minutes, not seconds, when the 2 cores are shared with other work.
pytestmark = pytest.mark.timeout(900)

ITEMS = 3_200  # synthetic pages of 1,500 items: 1,500 + 1,500 + 200
TABLE = f"synthetic-{ITEMS}"


@pytest.fixture(scope="module")
def replay_url() -> Iterator[str]:
    with background_server([sys.executable, "-m", "benchmarks.replay_server"]) as url:
        yield url


@pytest.fixture(scope="module")
def measured_run(replay_url: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The floor, a whole-table export and two mapped segment processes, measured at once (in four processes)."""
    run = Run(settings={"items": ITEMS}, machine={"cores": 2, "uptime_at_start": "up", "uptime_at_end": "up"})
    bench = Bench(run, replay_url, str(tmp_path_factory.mktemp("airflow-home")))
    floor = bench.start("raw_floor", TABLE, workers=2)
    export = bench.start("export_dynamodb_json", TABLE, workers=2, total_segments=3)
    bench.record(together(bench, ITEMS, 2), group="mapped", key="2_processes", load_average=1.0)
    for process, group, key, expected in (
        (floor, "formats", "floor_before_export_dynamodb_json", ITEMS),
        (export, "formats", "export_dynamodb_json", ITEMS),
    ):
        bench.record(case_result(process, expected), group=group, key=key, load_average=1.0)
    return run


def _result(run: Run, key: str) -> dict[str, Any]:
    (result,) = [result for result in run.results if result["key"] == key]
    return result


def test_every_case_reads_its_items_and_measures_itself(measured_run: Run) -> None:
    assert {result["key"]: result.get("error") for result in measured_run.results} == {
        "2_processes": None,
        "floor_before_export_dynamodb_json": None,
        "export_dynamodb_json": None,
    }
    # Pages 0 and 2 are segment 0's of 2 (1,700 items), page 1 segment 1's.
    assert {result["key"]: result["items"] for result in measured_run.results} == {
        "2_processes": ITEMS,
        "floor_before_export_dynamodb_json": ITEMS,
        "export_dynamodb_json": ITEMS,
    }
    assert [part["items"] for part in _result(measured_run, "2_processes")["extra"]["processes"]] == [1_700, 1_500]
    assert _result(measured_run, "export_dynamodb_json")["extra"]["parts"] == 1
    for result in measured_run.results:
        assert result["seconds"] > 0 and result["cpu_seconds"] > 0 and result["startup_seconds"] > 0
        assert result["peak_rss_mb"] > 10
    # The two mapped processes measure from the same moment: both were set up before either started.
    parts = _result(measured_run, "2_processes")["extra"]["processes"]
    assert abs(parts[0]["started_at"] - parts[1]["started_at"]) < 0.5


def test_the_report_shows_the_measured_figures_and_their_ratios(measured_run: Run, tmp_path: Path) -> None:
    floor = _result(measured_run, "floor_before_export_dynamodb_json")
    export = _result(measured_run, "export_dynamodb_json")
    floor_rate, export_rate = floor["items"] / floor["seconds"], export["items"] / export["seconds"]
    text = report.markdown(measured_run)
    row = next(line for line in text.splitlines() if line.startswith("| `DynamoDBExportOperator` dynamodb_json"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:4] == [
        f"{export_rate:,.0f}",
        f"{export_rate / floor_rate:.2f}",
        "≥ 0.8x: " + ("met" if export_rate / floor_rate >= 0.8 else "not met"),
    ]
    assert cells[7] == f"{export['peak_rss_mb']:,.0f}"
    (target,) = [row for row in report.targets(report.Results(measured_run)) if "CPU" in row["target"]]
    cpu_ratio = (export["cpu_seconds"] / export["items"]) / (floor["cpu_seconds"] / floor["items"])
    assert target == {
        "target": "export_dynamodb_json: CPU per item ÷ floor ≤ 1.3x",
        "measured": f"{cpu_ratio:.2f}",
        "met": "met" if cpu_ratio <= 1.3 else "not met",
    }

    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Title\n\n{report.BLOCK_START}\nold figures\n{report.BLOCK_END}\n\n## Next\n")
    report.replace_generated_block(measured_run, page)
    written = page.read_text()
    assert written.startswith(f"# Title\n\n{report.BLOCK_START}\n") and written.endswith(
        f"{report.BLOCK_END}\n\n## Next\n"
    )
    assert "old figures" not in written and row in written
