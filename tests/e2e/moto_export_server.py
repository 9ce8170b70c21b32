"""
A moto server (DynamoDB and S3) whose point-in-time exports behave as DynamoDB's do, for the e2e run.

moto's own ``ExportTableToPointInTime`` finishes at once, names the export ``.../import/...`` and writes one data
file without manifests. Here an export stays ``IN_PROGRESS`` until the file ``--release-file`` exists (so the e2e
check sees the task deferred for as long as it needs, not for a guessed time), then writes the table under AWS's
documented layout (``AWSDynamoDB/{ExportId}/manifest-summary.json``, ``manifest-files.json`` and
``data/*.json.gz``, split into :data:`DATA_FILES` files, by :mod:`tests.native_export_fixture`) and reports
``COMPLETED`` with its ``ExportManifest``, ``ItemCount``, ``BilledSizeBytes``, ``StartTime`` and ``EndTime``.

``python -m tests.e2e.moto_export_server --port PORT --release-file PATH`` serves until it is stopped.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from moto.dynamodb.models import table_export
from moto.server import ThreadedMotoServer

from airflow_dynamoscan.scan.decode import client_item_to_wire_item
from tests.e2e import calendar_exports
from tests.native_export_fixture import ACCOUNT, REGION, new_export_id, write_native_export

#: The data files an export is split into (round robin), so the convert step maps several tasks.
DATA_FILES = 3

#: An export never waits longer than this for its release.
HOLD_LIMIT_SECONDS = 240.0


def hold_exports(endpoint_url: str, release_file: Path) -> None:
    """Make moto's exports wait for ``release_file``, then write AWS's layout through ``endpoint_url``'s S3."""
    original_init = table_export.TableExport.__init__
    original_response = table_export.TableExport.response

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.export_id = new_export_id()
        self.arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self.table.name}/export/{self.export_id}"
        self.started_at, self.finished_at, self.manifest_key = time.time(), None, None

    def run(self: Any) -> None:
        if self.table.name.startswith(calendar_exports.TABLE_PREFIX):
            return  # answered from the change log when the request comes (tests/e2e/calendar_exports.py)
        deadline = time.monotonic() + HOLD_LIMIT_SECONDS
        while not release_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            write(self)
        except Exception as error:
            self.status, self.failure_code, self.failure_message = "FAILED", "E2E", f"{type(error).__name__}: {error}"
            raise

    def write(self: Any) -> None:
        # moto keeps binary values as bytes; DynamoDB JSON has them as base64 text.
        lines = [{"Item": client_item_to_wire_item(item.to_json()["Attributes"])} for item in self.table.all_items()]
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        files = [lines[start::DATA_FILES] for start in range(DATA_FILES)]
        built = write_native_export(
            s3, self.s3_bucket, self.s3_prefix, files, table_name=self.table.name, export_id=self.export_id
        )
        self.item_count, self.processed_bytes = len(lines), built.summary["billedSizeBytes"]
        self.manifest_key, self.finished_at = built.summary_key, time.time()
        self.status = "COMPLETED"

    def response(self: Any) -> dict[str, Any]:
        description: dict[str, Any] = original_response(self)
        description["StartTime"] = self.started_at
        if self.finished_at is not None:
            description.update({"EndTime": self.finished_at, "ExportManifest": self.manifest_key})
        return description

    table_export.TableExport.__init__ = init  # type: ignore[method-assign]
    table_export.TableExport.run = run  # type: ignore[method-assign]
    table_export.TableExport.response = response  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.moto_export_server", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--release-file", type=Path, required=True)
    arguments = parser.parse_args(argv)
    hold_exports(f"http://127.0.0.1:{arguments.port}", arguments.release_file)
    calendar_exports.answer_calendar(f"http://127.0.0.1:{arguments.port}", arguments.release_file)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=arguments.port, verbose=False)
    server.start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
