"""A failed or killed export task, retried, continues from its checkpoint: the table exactly once, little re-read."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportOperator
from airflow_dynamoscan.storage.checkpoints import CHECKPOINT_FOLDER, checkpoint_path
from airflow_dynamoscan.storage.ownership import MARKER_NAME
from devtools.sample_data import create_table, put_items
from tests.conftest import PROJECT_ROOT, unique_table_name
from tests.unit.export.readback import read_jsonl

pytestmark = pytest.mark.usefixtures("aws_connection_env")

PAGE_ITEMS = 40
# Every item is one 229-byte JSON line ({"pk":"item#00000","pad":"x..."} and a newline), so a part of this many
# bytes holds exactly one full page: the part ends where the page ends.
PAGE_BYTES = PAGE_ITEMS * 229


class ScanFailure(RuntimeError):
    """Stands for the task dying in the middle of its work."""


@pytest.fixture(scope="module")
def resume_table(dynalite_client: Any) -> tuple[str, set[str]]:
    name = unique_table_name("resume")
    create_table(dynalite_client, name)
    keys = {f"item#{number:05d}" for number in range(1200)}
    put_items(dynalite_client, name, [{"pk": key, "pad": "x" * 200} for key in keys])
    return name, keys


def exporter(table_name: str, destination: Path, **kwargs: Any) -> DynamoDBExportOperator:
    # A part holds one page's items: "one part's worth" of pages is one page.
    return DynamoDBExportOperator(
        task_id="export",
        table_name=table_name,
        destination=str(destination),
        max_file_bytes=PAGE_BYTES,
        scan_kwargs={"Limit": PAGE_ITEMS},
        **kwargs,
    )


def count_scans(operator: DynamoDBExportOperator, fail_after: int | None = None) -> list[int]:
    """Count the Scan requests the operator sends; raise in the request after ``fail_after`` of them."""
    sent = [0]

    def on_send(**_: Any) -> None:
        if fail_after is not None and sent[0] >= fail_after:
            raise ScanFailure(f"the task died after {fail_after} Scan requests")
        sent[0] += 1

    operator.hook._scan_client.meta.events.register("before-send.dynamodb.Scan", on_send)
    return sent


def exported_keys(destination: Path, result: dict[str, Any]) -> list[str]:
    return [line["pk"] for part in result["parts"] for line in read_jsonl((destination / part["path"]).read_bytes())]


def test_whole_table_export_resumes_every_segment_from_its_checkpoint(
    resume_table: tuple[str, set[str]], tmp_path: Path
) -> None:
    name, keys = resume_table
    pages_per_run = len(keys) // PAGE_ITEMS + 4  # each of the 4 segments ends with one more (short) page
    failing = exporter(name, tmp_path, total_segments=4, max_workers=2)
    count_scans(failing, fail_after=12)
    with pytest.raises(ScanFailure):
        failing.execute({})  # type: ignore[arg-type]
    checkpoint = json.loads((tmp_path / checkpoint_path("segment-00000-of-00001")).read_text())
    committed = len(checkpoint["parts"])
    assert 1 <= committed <= 12

    retry = exporter(name, tmp_path, total_segments=4, max_workers=2)
    sent = count_scans(retry)
    result = retry.execute({})  # type: ignore[arg-type]
    exported = exported_keys(tmp_path, result)
    assert sorted(exported) == sorted(keys)  # every item, none twice
    # The retry reads what the committed parts do not hold, plus at most the pages in flight when the task died.
    assert sent[0] <= pages_per_run - committed + 4, (sent[0], committed)
    print(f"\nwhole table: {committed} parts kept, retry sent {sent[0]} of ~{pages_per_run} Scan requests")
    assert [part["path"] for part in result["parts"]] == [
        f"segment-00000-of-00001/part-{number:05d}.jsonl" for number in range(len(result["parts"]))
    ]
    assert not (tmp_path / CHECKPOINT_FOLDER).exists()  # the checkpoint, and its folder, go once the export is done


def test_changed_export_does_not_resume_from_another_exports_checkpoint(
    resume_table: tuple[str, set[str]], tmp_path: Path
) -> None:
    name, _ = resume_table
    failing = exporter(name, tmp_path, segment=1, total_segments=2)
    count_scans(failing, fail_after=3)
    with pytest.raises(ScanFailure):
        failing.execute({})  # type: ignore[arg-type]
    # Same destination and segment, but another filter: a different export, read from the start.
    scan_kwargs = {"Limit": PAGE_ITEMS, "FilterExpression": "attribute_exists(pk)"}
    retry = DynamoDBExportOperator(
        task_id="export",
        table_name=name,
        destination=str(tmp_path),
        segment=1,
        total_segments=2,
        max_file_bytes=PAGE_BYTES,
        scan_kwargs=scan_kwargs,
    )
    result = retry.execute({})  # type: ignore[arg-type]
    segment_keys = exported_keys(tmp_path, result)
    assert len(segment_keys) == len(set(segment_keys))
    assert result["parts"][0]["path"] == "segment-00001-of-00002/part-00000.jsonl"
    files = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    assert files == sorted([MARKER_NAME] + [part["path"] for part in result["parts"]])


KILLED_EXPORT = """
import sys, time
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportOperator
operator = DynamoDBExportOperator(
    task_id="export", table_name=sys.argv[1], destination=sys.argv[2], segment=0, total_segments=1,
    max_file_bytes=int(sys.argv[3]) * 229, scan_kwargs={"Limit": int(sys.argv[3])},
)
sent = [0]
def pace(**_):
    # Slow enough to be killed between any two pages; after HELD_AFTER pages the task stays alive until killed,
    # however late a loaded machine lets the test look at the checkpoint.
    sent[0] += 1
    time.sleep(0.05 if sent[0] <= int(sys.argv[4]) else 3600)
operator.hook._scan_client.meta.events.register("before-send.dynamodb.Scan", pace)
operator.execute({})
"""
# The killed task has committed at least KILLED_AFTER parts and sent at most HELD_AFTER Scan requests.
KILLED_AFTER = 8
HELD_AFTER = 12


def test_killed_mapped_task_retried_reads_at_most_one_more_part(
    resume_table: tuple[str, set[str]], tmp_path: Path
) -> None:
    name, keys = resume_table
    total_pages = len(keys) // PAGE_ITEMS + 1
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_EXPORT, name, str(tmp_path), str(PAGE_ITEMS), str(HELD_AFTER)],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
    )
    checkpoint_file = tmp_path / checkpoint_path("segment-00000-of-00001")
    deadline = time.monotonic() + 200  # the child imports Airflow first: seconds, or more on a loaded machine
    committed = 0
    while committed < KILLED_AFTER and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.02)
        if checkpoint_file.exists():
            try:
                committed = len(json.loads(checkpoint_file.read_text())["parts"])
            except ValueError:
                continue
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the export must be killed while it runs"
    committed = len(json.loads(checkpoint_file.read_text())["parts"])
    assert KILLED_AFTER <= committed <= HELD_AFTER < total_pages

    retry = exporter(name, tmp_path, segment=0, total_segments=1)
    sent = count_scans(retry)
    result = retry.execute({})  # type: ignore[arg-type]
    exported = exported_keys(tmp_path, result)
    assert sorted(exported) == sorted(keys)
    assert len(exported) == len(set(exported))
    # Pages left after the committed parts, plus at most one part's worth (one page) read again.
    assert total_pages - committed <= sent[0] <= total_pages - committed + 1, (sent[0], committed, total_pages)
    print(f"\nkilled after {committed} parts of {total_pages}; the retry sent {sent[0]} Scan requests")
    files = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))
    # No temp file, no checkpoint (nor its folder): the parts, and the marker of the export until it is committed.
    assert files == sorted([MARKER_NAME, "segment-00000-of-00001"] + [part["path"] for part in result["parts"]])
