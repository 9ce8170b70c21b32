"""
`make demo`: start the local DynamoDB server, fill a sample table, and read it back through DynamoDBScanHook.

Prints a serial and a parallel scan of the same table with their times, and checks that both return exactly
the items written.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import boto3

from devtools.local_dynamodb import running_dynalite
from devtools.sample_data import load_sample_table

ITEM_COUNT = int(os.environ.get("DEMO_ITEMS", "20000"))
TABLE = "orders"


def main() -> int:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="dynamoscan-demo-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    with running_dynalite() as endpoint_url:
        print(f"Local DynamoDB (dynalite) at {endpoint_url}")
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
            {
                "conn_type": "aws",
                "login": "demo-access-key",
                "password": "demo-secret-key",
                "extra": {"region_name": "us-east-1", "endpoint_url": endpoint_url},
            }
        )
        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="demo",
            aws_secret_access_key="demo",
        )
        started = time.monotonic()
        written = load_sample_table(client, TABLE, ITEM_COUNT)
        print(f"Loaded {len(written):,} items into table {TABLE!r} in {time.monotonic() - started:.1f} s")

        from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook

        hook = DynamoDBScanHook(aws_conn_id="aws_default")
        expected = {item["pk"] for item in written}
        ok = True
        runs = [
            ("serial scan", lambda: hook.scan(TABLE)),
            (
                "parallel scan, 8 segments, 4 workers",
                lambda: hook.parallel_scan(TABLE, total_segments=8, max_workers=4),
            ),
        ]
        for label, scan in runs:
            started = time.monotonic()
            keys = [item["pk"] for item in scan()]
            seconds = time.monotonic() - started
            exact = len(keys) == len(set(keys)) and set(keys) == expected
            ok &= exact
            print(
                f"{label:<40} {len(keys):>7,} items in {seconds:5.2f} s "
                f"({len(keys) / seconds:,.0f} items/s) - {'exactly the items written' if exact else 'MISMATCH'}"
            )
        print(f"count (4 segments): {hook.count(TABLE, total_segments=4):,}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
