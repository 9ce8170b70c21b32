"""
``make bench`` (second part): what conditional writes cost a transform, in items per second.

An in-place ``DynamoDBTransformOperator`` changes every item of a table of sample items (~450 bytes) on the local
DynamoDB server (dynalite) behind the project's latency proxy (:mod:`devtools.dynamodb_proxy`, 10 ms added to
each answer, as a nearby AWS region adds), once per case:

* ``overwrite``: ``on_conflict="overwrite"``, BatchWriteItem with 25 items per request, no condition;
* ``conditional``: the default, one ``UpdateItem`` per item, conditioned on every attribute read, with 8 and 32
  threads;
* ``version``: ``version_attribute="version"``: one ``PutItem`` per item, conditioned on the version alone;
* ``dry run``: the scan and the transform without any write, the floor of all the others.

Each case is timed from the operator's start to its end (the scan included) and reported as items written per
second. The results go to ``benchmarks/results/transform.md`` and ``transform.json`` (``--quick``: under
``benchmarks/results/raw/quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT_ROOT / "benchmarks" / "results"
QUICK_RESULTS = RESULTS / "raw" / "quick"
LATENCY_SECONDS = 0.010

#: name, operator arguments
CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("dry run (scan + transform, no writes)", {"dry_run": True, "max_workers": 8}),
    ("overwrite: BatchWriteItem, 8 threads", {"on_conflict": "overwrite", "max_workers": 8}),
    ("conditional UpdateItem, 8 threads", {"max_workers": 8}),
    ("conditional UpdateItem, 32 threads", {"max_workers": 32}),
    ("version attribute PutItem, 32 threads", {"version_attribute": "version", "max_workers": 32}),
)


def touch(item: dict[str, Any]) -> dict[str, Any]:
    """Change every item: count its transforms."""
    return {**item, "transforms": item.get("transforms", 0) + 1}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def measure(table_name: str, items: int, arguments: dict[str, Any]) -> dict[str, Any]:
    from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator

    operator = DynamoDBTransformOperator(
        task_id="bench", table_name=table_name, transform=touch, total_segments=8, progress_interval=None, **arguments
    )
    started = time.perf_counter()
    result = operator.execute({})  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    done = result["would_write"] if arguments.get("dry_run") else result["written"]
    if done != items:
        raise RuntimeError(f"{arguments}: {done} items transformed, expected {items}")
    return {"items": done, "seconds": round(seconds, 3), "items_per_second": round(done / seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transform_writes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on 2,000 items")
    parser.add_argument("--items", type=int, default=None, help="items of the table (default 10,000; quick 2,000)")
    arguments, _ = parser.parse_known_args(argv)  # make bench passes the export benchmark's options too
    items = arguments.items or (2_000 if arguments.quick else 10_000)
    output = QUICK_RESULTS if arguments.quick else RESULTS
    output.mkdir(parents=True, exist_ok=True)

    from benchmarks.run import background_server
    from devtools.local_dynamodb import running_dynalite
    from devtools.sample_data import create_table, put_items, sample_item

    with tempfile.TemporaryDirectory(prefix="dynamoscan-bench-airflow-") as home, running_dynalite() as endpoint:
        import boto3

        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AIRFLOW_HOME": home,
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            }
        )
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        create_table(client, "bench-transform")
        put_items(client, "bench-transform", (sample_item(number) for number in range(items)), threads=8)
        # The proxy in its own process: its work is not the measured client's.
        proxy_command = [
            sys.executable,
            "-m",
            "devtools.dynamodb_proxy",
            "--upstream",
            endpoint,
            "--latency-ms",
            str(LATENCY_SECONDS * 1000),
        ]
        with background_server(proxy_command) as proxy_endpoint:
            connection = {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": "us-east-1", "endpoint_url": proxy_endpoint},
            }
            os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(connection)
            log(f"Transform of {items:,} items in place, {LATENCY_SECONDS * 1000:.0f} ms added to each answer")
            measure("bench-transform", items, {"dry_run": True, "max_workers": 8})  # imports and clients: warm-up
            results = []
            for name, case in CASES:
                result = {"case": name, "arguments": case, **measure("bench-transform", items, case)}
                results.append(result)
                log(f"  {name:<42} {result['items_per_second']:>8,.0f} items/s ({result['seconds']:.1f} s)")
    load = os.getloadavg()
    write_results(output, items, results, load)
    return 0


def write_results(output: Path, items: int, results: list[dict[str, Any]], load: tuple[float, ...]) -> None:
    """Write transform.json and transform.md: each case's items/s and its ratio to the overwrite case."""
    overwrite = next(result for result in results if result["arguments"].get("on_conflict") == "overwrite")
    run = {
        "items": items,
        "latency_ms": LATENCY_SECONDS * 1000,
        "cores": os.cpu_count(),
        "load_average_at_end": round(load[0], 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "results": results,
    }
    (output / "transform.json").write_text(json.dumps(run, indent=2) + "\n")
    lines = [
        "# Transform writes",
        "",
        f"In-place transform of {items:,} items (~450 bytes), local server + {LATENCY_SECONDS * 1000:.0f} ms latency, "
        f"{os.cpu_count()} cores, load average {load[0]:.1f} at the end; {run['date']}.",
        "",
        "| case | items/s | seconds | vs overwrite |",
        "| --- | ---: | ---: | ---: |",
    ]
    for result in results:
        ratio = result["items_per_second"] / overwrite["items_per_second"]
        lines.append(
            f"| {result['case']} | {result['items_per_second']:,.0f} | {result['seconds']:.1f} | {ratio:.2f}x |"
        )
    (output / "transform.md").write_text("\n".join(lines) + "\n")
    log(f"Wrote {output / 'transform.md'}")


if __name__ == "__main__":
    sys.exit(main())
