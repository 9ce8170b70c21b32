"""
The benchmark report: markdown tables, ratios to the floor, the targets met or not, and the tables of
docs/benchmarks.md.

``python -m benchmarks.report [results.json] [--docs]`` writes ``results.md`` again from a run's measurements and,
with ``--docs``, replaces what docs/benchmarks.md holds between ``<!-- benchmarks:start -->`` and
``<!-- benchmarks:end -->`` by that run's tables, so that no figure there is typed by hand.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.run import Run

#: The page whose generated block holds the latest full run's tables.
BENCHMARKS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BLOCK_START = "<!-- benchmarks:start -->"
BLOCK_END = "<!-- benchmarks:end -->"

LABELS = {
    "floor": "raw floor: HTTP + orjson.loads + orjson.dumps per item, 4 threads",
    "export_jsonl": "`DynamoDBExportOperator` jsonl, whole table",
    "export_dynamodb_json": "`DynamoDBExportOperator` dynamodb_json, whole table",
    "export_csv": "`DynamoDBExportOperator` csv, whole table",
    "export_parquet": "`DynamoDBExportOperator` parquet, whole table",
    "hook_scan": "`hook.scan` (serial) to JSON lines",
}
#: The targets, as ratios to the floor measured next to the case.
ITEMS_PER_SECOND_TARGET = {"export_jsonl": 0.8, "export_dynamodb_json": 0.8, "export_csv": 0.9, "export_parquet": 0.9}
CPU_PER_ITEM_TARGET = {"export_jsonl": 1.3, "export_dynamodb_json": 1.3, "export_csv": 1.5, "export_parquet": 1.5}
#: The memory test's exports: key prefix, name, peak RSS limit at default settings (MB).
MEMORY_EXPORTS = (("items_", "jsonl", 200.0), ("parquet_", "Parquet", 250.0))
#: "Flat": the peak RSS of the largest table at most this much above that of the smallest.
FLAT_MEMORY_GROWTH = 1.1
MAPPED_EFFICIENCY = 0.8


def ok(result: dict[str, Any] | None) -> bool:
    return result is not None and "error" not in result and result.get("seconds", 0) > 0


def items_per_second(result: dict[str, Any] | None) -> float | None:
    return result["items"] / result["seconds"] if ok(result) and result["items"] else None  # type: ignore[index]


def cpu_per_thousand(result: dict[str, Any] | None) -> float | None:
    return 1000 * result["cpu_seconds"] / result["items"] if ok(result) and result["items"] else None  # type: ignore[index]


def ratio(ours: float | None, floor: float | None) -> float | None:
    return ours / floor if ours is not None and floor else None


def number(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "failed" if value is None else f"{value:,.{digits}f}{suffix}"


def verdict(value: float | None, target: float | None, *, at_least: bool) -> str:
    """``"≥ 0.8x: met"`` and the like; empty without a target."""
    if target is None:
        return ""
    sign = "≥" if at_least else "≤"
    met = value is not None and (value >= target if at_least else value <= target)
    return f"{sign} {target:g}x: {'met' if met else 'not met'}"


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    marks = ["---", *("---:" for _ in header[1:])]
    return [f"| {' | '.join(header)} |", f"| {' | '.join(marks)} |", *(f"| {' | '.join(row)} |" for row in rows)]


class Results:
    """Look-ups into the measurements of one run."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.by_key = {(result["group"], result["key"]): result for result in run.results}

    def get(self, group: str, key: str) -> dict[str, Any] | None:
        return self.by_key.get((group, key))

    def keys(self, group: str, prefix: str = "") -> list[str]:
        return [key for (kind, key) in self.by_key if kind == group and key.startswith(prefix)]

    def floor(self, group: str, key: str) -> dict[str, Any] | None:
        """The floor measured just before and just after the case ``key``, as one measurement of both."""
        floors = [self.get(group, f"floor_{when}_{key}") for when in ("before", "after")]
        measured = [floor for floor in floors if ok(floor)]
        if not measured:
            return None
        total = {name: sum(floor[name] for floor in measured) for name in ("items", "seconds", "cpu_seconds")}  # type: ignore[index]
        return {**total, "peak_rss_mb": max(floor["peak_rss_mb"] for floor in measured)}  # type: ignore[index]

    def floor_median(self, measure: Any) -> float | None:
        floors = [self.get(group, key) for group in ("formats", "threads") for key in self.keys(group, "floor")]
        values = [measure(floor) for floor in floors]
        values = [value for value in values if value is not None]
        return statistics.median(values) if values else None


def format_rows(results: Results) -> list[dict[str, Any]]:
    """Each case of the formats table with its figures and their ratios to the floor measured before it."""
    rows = []
    for key in results.keys("formats"):
        if key.startswith("floor"):
            continue
        measured, floor = results.get("formats", key), results.floor("formats", key)
        rows.append(
            {
                "key": key,
                "measured": measured,
                "items_per_second": items_per_second(measured),
                "items_ratio": ratio(items_per_second(measured), items_per_second(floor)),
                "cpu": cpu_per_thousand(measured),
                "cpu_ratio": ratio(cpu_per_thousand(measured), cpu_per_thousand(floor)),
                "peak_rss_mb": measured["peak_rss_mb"] if ok(measured) else None,  # type: ignore[index]
                "floor_rss_mb": floor["peak_rss_mb"] if ok(floor) else None,  # type: ignore[index]
            }
        )
    return rows


def formats_table(results: Results) -> list[str]:
    floors = [results.get("formats", key) for key in results.keys("formats", "floor")]
    floor_rss = statistics.median([floor["peak_rss_mb"] for floor in floors if ok(floor)] or [0])  # type: ignore[index]
    header = ["", "items/s", "÷ floor", "target", "CPU s / 1k items", "÷ floor", "target", "peak RSS, MB"]
    lines = [
        [
            LABELS["floor"] + f" (median of {len(floors)})",
            number(results.floor_median(items_per_second)),
            "1.00",
            "",
            number(results.floor_median(cpu_per_thousand), 3),
            "1.00",
            "",
            number(floor_rss),
        ]
    ]
    for row in format_rows(results):
        lines.append(
            [
                LABELS.get(row["key"], row["key"]),
                number(row["items_per_second"]),
                number(row["items_ratio"], 2),
                verdict(row["items_ratio"], ITEMS_PER_SECOND_TARGET.get(row["key"]), at_least=True),
                number(row["cpu"], 3),
                number(row["cpu_ratio"], 2),
                verdict(row["cpu_ratio"], CPU_PER_ITEM_TARGET.get(row["key"]), at_least=False),
                number(row["peak_rss_mb"]),
            ]
        )
    return table(header, lines)


def threads_table(results: Results) -> list[str]:
    rows = []
    for key in results.keys("threads", "threads_"):
        measured = results.get("threads", key)
        floor = results.floor("threads", key)
        rows.append(
            [
                key.removeprefix("threads_"),
                number(items_per_second(measured)),
                number(ratio(items_per_second(measured), items_per_second(floor)), 2),
                number(cpu_per_thousand(measured), 3),
                number(measured["peak_rss_mb"] if ok(measured) else None),  # type: ignore[index]
            ]
        )
    return table(["threads (= segments)", "items/s", "÷ floor", "CPU s / 1k items", "peak RSS, MB"], rows)


def memory_figures(results: Results, prefix: str = "items_") -> list[tuple[int, dict[str, Any] | None]]:
    return [(int(key.removeprefix(prefix)), results.get("memory", key)) for key in results.keys("memory", prefix)]


def memory_table(results: Results) -> list[str]:
    rows = []
    for prefix, name, limit in MEMORY_EXPORTS:
        figures = memory_figures(results, prefix)
        smallest = figures[0][1] if figures and ok(figures[0][1]) else None
        for items, measured in figures:
            if not ok(measured):
                rows.append([name, f"{items:,}", "failed", "", "", "", ""])
                continue
            assert measured is not None
            growth = measured["peak_rss_mb"] / smallest["peak_rss_mb"] if smallest else None
            rows.append(
                [
                    name,
                    f"{items:,}",
                    number(items_per_second(measured)),
                    number(measured["start_rss_mb"]),
                    number(measured["peak_rss_mb"]),
                    f"≤ {limit:g}: " + ("met" if measured["peak_rss_mb"] <= limit else "not met"),
                    number(growth, 2, "x") + f" ({verdict(growth, FLAT_MEMORY_GROWTH, at_least=False)})",
                ]
            )
    header = ["export", "items", "items/s", "RSS before, MB", "peak RSS, MB", "limit, MB", "÷ smallest"]
    return table(header, rows)


def mapped_figures(results: Results) -> list[dict[str, Any]]:
    """For each N: one segment of N alone, N segments in N processes at once, and the ratio to N x one."""
    figures = []
    for key in results.keys("mapped", "one_of_"):
        processes = int(key.removeprefix("one_of_"))
        one, many = results.get("mapped", key), results.get("mapped", f"{processes}_processes")
        one_rate, many_rate = items_per_second(one), items_per_second(many)
        figures.append(
            {
                "processes": processes,
                "one": one,
                "many": many,
                "ratio": ratio(many_rate, processes * one_rate) if one_rate else None,
            }
        )
    return figures


def _with_startup(result: dict[str, Any] | None, startup_seconds: float | None) -> float | None:
    """Items/s had the task started as the no-op task did: its start-up added to the measured seconds."""
    if not ok(result) or startup_seconds is None:
        return None
    assert result is not None
    return result["items"] / (result["seconds"] + startup_seconds)


def mapped_table(results: Results) -> list[str]:
    noop = results.get("mapped", "noop_task")
    startup = noop["startup_seconds"] if noop is not None and "error" not in noop else None
    rows = []
    if startup is not None:
        rows.append(["no-op task (the export's imports and set-up)", "0", "", "", "", number(startup, 1)])
    for figure in mapped_figures(results):
        processes = figure["processes"]
        for label, result in (
            (f"1 process: segment 0 of {processes}", figure["one"]),
            (f"{processes} processes at once, one segment each", figure["many"]),
        ):
            rows.append(
                [
                    label,
                    number(result["items"] if ok(result) else None),  # type: ignore[index]
                    number(result["seconds"] if ok(result) else None, 2),  # type: ignore[index]
                    number(items_per_second(result)),
                    number(_with_startup(result, startup)),
                    number(result["startup_seconds"] if ok(result) else None, 1),  # type: ignore[index]
                ]
            )
        one_with, many_with = _with_startup(figure["one"], startup), _with_startup(figure["many"], startup)
        rows.append(
            [
                f"{processes} processes ÷ ({processes} x 1 process)",
                "",
                "",
                f"{number(figure['ratio'], 2)} ({verdict(figure['ratio'], MAPPED_EFFICIENCY, at_least=True)})",
                number(ratio(many_with, processes * one_with) if one_with else None, 2),
                "",
            ]
        )
    header = ["", "items", "seconds", "items/s", "items/s with the no-op task's start-up", "start-up, s"]
    return table(header, rows)


def targets(results: Results) -> list[dict[str, str]]:
    """Each target: what was measured and whether it was met."""
    rows = []
    for row in format_rows(results):
        for name, value, goal, at_least in (
            ("items/s ÷ floor", row["items_ratio"], ITEMS_PER_SECOND_TARGET.get(row["key"]), True),
            ("CPU per item ÷ floor", row["cpu_ratio"], CPU_PER_ITEM_TARGET.get(row["key"]), False),
        ):
            if goal is not None:
                met = verdict(value, goal, at_least=at_least)
                rows.append({"target": f"{row['key']}: {name} {met.split(':')[0]}", "measured": number(value, 2)})
                rows[-1]["met"] = met.split(": ")[1]
    for prefix, name, limit in MEMORY_EXPORTS:
        rows += memory_targets(results, prefix, name, limit)
    for figure in mapped_figures(results):
        processes = figure["processes"]
        met = verdict(figure["ratio"], MAPPED_EFFICIENCY, at_least=True)
        rows.append(
            {
                "target": f"{processes} mapped segment processes ≥ {MAPPED_EFFICIENCY:g} x {processes} x one process",
                "measured": number(figure["ratio"], 2),
                "met": met.split(": ")[1],
            }
        )
    return rows


def memory_targets(results: Results, prefix: str, name: str, limit: float) -> list[dict[str, str]]:
    """The peak RSS of one export at each table size within ``limit``, and flat from the smallest to the largest."""
    rows = []
    measured = [(items, result) for items, result in memory_figures(results, prefix) if ok(result)]
    for items, result in measured:
        assert result is not None
        rows.append(
            {
                "target": f"{name} peak RSS, default settings, {items:,} items ≤ {limit:g} MB",
                "measured": f"{result['peak_rss_mb']:.0f} MB",
                "met": "met" if result["peak_rss_mb"] <= limit else "not met",
            }
        )
    if len(measured) >= 2:
        (small, first), (large, last) = measured[0], measured[-1]
        assert first is not None and last is not None
        growth = last["peak_rss_mb"] / first["peak_rss_mb"]
        rows.append(
            {
                "target": f"{name} peak RSS flat from {small:,} to {large:,} items (≤ {FLAT_MEMORY_GROWTH:g}x)",
                "measured": f"{growth:.2f}x ({first['peak_rss_mb']:.0f} → {last['peak_rss_mb']:.0f} MB)",
                "met": "met" if growth <= FLAT_MEMORY_GROWTH else "not met",
            }
        )
    return rows


def targets_table(results: Results) -> list[str]:
    rows = [[row["target"], row["measured"], row["met"]] for row in targets(results)]
    return table(["target (ratios to the floor measured next to the case)", "measured", ""], rows)


def targets_text(run: Run) -> str:
    """The targets, one line each, for the console."""
    return "\n".join(f"{row['met']:>8}  {row['target']}: {row['measured']}" for row in targets(Results(run)))


def describe(run: Run) -> list[str]:
    """When, where and under which load the run measured."""
    machine, settings = run.machine, run.settings
    loads = [result["load_average"] for result in run.results if "load_average" in result]
    versions = ", ".join(f"{name} {version}" for name, version in machine.get("versions", {}).items())
    load = f"1-minute load {min(loads):.1f} to {max(loads):.1f} as the cases started" if loads else "load unknown"
    return [
        f"Measured {machine.get('date', '')} at commit {machine.get('commit', '?')} "
        f"on {machine.get('cpu') or 'a CPU'}, "
        f"{machine.get('cores')} cores, Python {machine.get('python')}; {versions}. The whole run took "
        f"{settings.get('total_seconds', 0)} s; {load} (the machine is shared: above {machine.get('cores')} means "
        "other work competed for the cores).",
        "",
        f"- `uptime` at the start: `{machine.get('uptime_at_start', '')}`",
        f"- `uptime` at the end: `{machine.get('uptime_at_end', '')}`",
    ]


NOTES = (
    "Pages come from memory: the replay server (`benchmarks/replay_server.py`) serves `synthetic-{items}` tables of "
    "~1 KB sample items of every DynamoDB type, 1,500 per page. Every case is its own process: items/s and CPU "
    "seconds (user + sys) cover reading the whole table, after imports and set-up; peak RSS is the whole process "
    "(ours start at ~140 MB with Airflow imported, the floor imports neither Airflow nor the package). The floor "
    "runs again just before and just after each case, and each ratio is to those two together (their items over "
    "their seconds). Exports write to a local folder."
)


def trials_note(run: Run) -> str:
    """How the case figures were chosen, when each case was measured more than once."""
    repeats = int(run.settings.get("repeats", 1))
    if repeats <= 1:
        return ""
    return f"; each case measured {repeats} times between its floors, the trial with the median ratio shown"


def sections(run: Run) -> list[str]:
    """The tables of one run, shared by results.md and docs/benchmarks.md."""
    results = Results(run)
    items = run.settings.get("items", 0)
    threads_items = f"{items:,} items, the jsonl export, as many segments as threads"
    return [
        f"**Formats** ({items:,} items, 4 threads over 4 segments; `hook.scan` is serial{trials_note(run)}):",
        "",
        *formats_table(results),
        "",
        f"**Threads** ({threads_items}; each ÷ the floor measured around it{trials_note(run)}):",
        "",
        *threads_table(results),
        "",
        "**Memory** (the jsonl and Parquet exports at the operator's default settings):",
        "",
        *memory_table(results),
        "",
        "**Mapped tasks** (the jsonl export of one segment per process; start-up = from starting the process to "
        "the task's first request: the interpreter, Airflow and the package imported, the operator, hook and client "
        "set up; the N processes start measuring together once all are set up):",
        "",
        *mapped_table(results),
        "",
        "**Targets**:",
        "",
        *targets_table(results),
    ]


def markdown(run: Run) -> str:
    lines = ["# Benchmark results", "", *describe(run), "", NOTES, "", *sections(run), ""]
    failures = [result for result in run.results if "error" in result]
    if failures:
        lines += ["## Failures", ""]
        lines += [f"- {result['group']} {result['key']}: {result['error'][-500:]}" for result in failures]
        lines.append("")
    return "\n".join(lines)


def generated_block(run: Run) -> list[str]:
    return [BLOCK_START, *describe(run), "", *sections(run), BLOCK_END]


def replace_generated_block(run: Run, page: Path = BENCHMARKS_PAGE) -> None:
    """Replace what ``page`` holds between the markers by this run's tables; the markers must be there."""
    text = page.read_text()
    if BLOCK_START not in text or BLOCK_END not in text:
        raise ValueError(f"{page} has no {BLOCK_START} ... {BLOCK_END} block to replace")
    before, rest = text.split(BLOCK_START, 1)
    after = rest.split(BLOCK_END, 1)[1]
    page.write_text(before + "\n".join(generated_block(run)) + after)


def write(run: Run, folder: Path, *, update_docs: bool = False) -> list[Path]:
    """Write results.json and results.md into ``folder``; optionally the tables of docs/benchmarks.md."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "results.json", folder / "results.md"]
    written[0].write_text(json.dumps(asdict(run), indent=1, default=str) + "\n")
    written[1].write_text(markdown(run))
    if update_docs:
        replace_generated_block(run)
        written.append(BENCHMARKS_PAGE)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.report [results.json] [--docs]``: the report again from a run's measurements."""
    import argparse

    from benchmarks.run import RESULTS, Run

    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", default=str(RESULTS / "results.json"))
    parser.add_argument("--docs", action="store_true", help="also replace the tables of docs/benchmarks.md")
    arguments = parser.parse_args(argv)
    path = Path(arguments.results)
    run = Run(**json.loads(path.read_text()))
    for written in write(run, path.parent, update_docs=arguments.docs):
        print(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
