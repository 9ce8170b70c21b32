"""
An export owns its destination: what a DAG author meets when two exports meet in one place.

Another table's, format's, segment count's or run's export is refused before the scan unless ``overwrite=True``
(and left exactly as it was); files that are no export's are refused whatever ``overwrite`` says; the mapped tasks
of one export, a retried task and a re-run of the same Airflow run recognise their own parts and resume; an
overwrite keeps the complete export until its first page arrives, and once committed the destination holds exactly
the new export's parts and manifest. Tasks run as Airflow runs them: each with the context of its task instance.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_dynamoscan.exceptions import DestinationError
from airflow_dynamoscan.export.manifest import MANIFEST_NAME
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator
from airflow_dynamoscan.storage.ownership import MARKER_NAME
from devtools.sample_data import create_table, put_items
from tests.conftest import fails_task, unique_table_name
from tests.dags.conftest import airflow_db  # noqa: F401  (the metadata database of dag.test())
from tests.integration.test_export_resume import ScanFailure, count_scans
from tests.integration.test_user_destinations import by_pk, committed_paths, entries_under, files_under
from tests.unit.export.readback import json_view, read_jsonl

pytestmark = pytest.mark.usefixtures("aws_connection_env")

PAGE_ITEMS = 25


@pytest.fixture(scope="module")
def tables(dynalite_client: Any) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Two tables of distinct items: ``a`` (200 items) and ``b`` (120 items)."""
    made = {}
    for label, count in (("a", 200), ("b", 120)):
        name = unique_table_name(f"owner-{label}")
        create_table(dynalite_client, name)
        items = [{"pk": f"{label}#{number:04d}", "n": number, "pad": "x" * 100} for number in range(count)]
        put_items(dynalite_client, name, items)
        made[label] = (name, items)
    return made


def ignore(*args: Any, **kwargs: Any) -> None:
    """A task instance's ``xcom_push`` whose values (the console links) these tests do not read."""


def context(run_id: str = "r1", task_id: str = "export_orders.export_segment") -> dict[str, Any]:
    """The part of an Airflow task's context the export reads: its task instance's DAG, run and task ids."""
    return {"ti": SimpleNamespace(dag_id="exports", run_id=run_id, task_id=task_id, xcom_push=ignore)}


def operator(table_name: str, destination: Path, segment: int, total_segments: int, **kwargs: Any) -> Any:
    return DynamoDBExportOperator(
        task_id="export_segment",
        table_name=table_name,
        destination=str(destination),
        segment=segment,
        total_segments=total_segments,
        **kwargs,
    )


def export_segments(
    table_name: str, destination: Path, total_segments: int, segments: Any = None, *, run_id: str = "r1", **kwargs: Any
) -> list[dict[str, Any]]:
    return [
        operator(table_name, destination, segment, total_segments, **kwargs).execute(context(run_id))
        for segment in (range(total_segments) if segments is None else segments)
    ]


def commit(results: list[dict[str, Any]]) -> dict[str, Any]:
    return DynamoDBExportManifestOperator(task_id="write_manifest", results=results).execute(context())


def snapshot(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in files_under(root)}


def read_back(root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    lines = [line for path in committed_paths(manifest) for line in read_jsonl((root / path).read_bytes())]
    return manifest, by_pk(lines)


def assert_committed_holds_only_its_own(root: Path, manifest: dict[str, Any]) -> None:
    """After the commit: exactly the manifest's parts, their segment folders and the manifest; nothing else."""
    folders = {path.split("/")[0] for path in committed_paths(manifest)}
    assert entries_under(root) == sorted([MANIFEST_NAME, *folders, *committed_paths(manifest)])


# --- refused before the scan ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "total_segments", "kwargs", "run_id", "described"),
    [
        ("b", 3, {}, "r1", "another table"),
        ("a", 3, {"file_format": "csv"}, "r1", "another format"),
        ("a", 3, {"compression": "gzip"}, "r1", "another compression"),
        ("a", 5, {}, "r1", "another segment count"),
        ("a", 3, {}, "r2", "another run"),
    ],
)
def test_unfinished_export_of_another_kind_is_refused_and_left_as_it_was(
    tables: dict[str, tuple[str, list[dict[str, Any]]]],
    tmp_path: Path,
    table: str,
    total_segments: int,
    kwargs: dict[str, Any],
    run_id: str,
    described: str,
) -> None:
    name_a, _ = tables["a"]
    export_segments(name_a, tmp_path, 3, segments=[0, 2])  # segment 1 has not run yet: no manifest
    before = snapshot(tmp_path)
    intruder = operator(tables[table][0], tmp_path, 0, total_segments, **kwargs)
    sent = count_scans(intruder)
    with fails_task(DestinationError) as error:
        intruder.execute(context(run_id))
    message = str(error.value)
    assert f"destination {tmp_path} holds the unfinished export of table {name_a!r} as jsonl, 3 segments" in message
    assert "run 'exports/r1/export_orders.export_segment'" in message
    assert "(2 part file(s))" in message and "overwrite=True" in message, described
    assert sent[0] == 0  # refused before any Scan request
    assert snapshot(tmp_path) == before


def test_complete_export_is_refused_naming_what_it_holds(
    tables: dict[str, tuple[str, list[dict[str, Any]]]], tmp_path: Path
) -> None:
    name_a, _ = tables["a"]
    name_b, _ = tables["b"]
    commit(export_segments(name_a, tmp_path, 2))
    before = snapshot(tmp_path)
    with fails_task(DestinationError) as error:
        export_segments(name_b, tmp_path, 2, segments=[0], run_id="r2")
    assert str(error.value) == (
        f"Table {name_b!r}: destination {tmp_path} already holds a complete export of table {name_a!r} as jsonl, "
        f"2 segments ({MANIFEST_NAME} is there); choose another destination or pass overwrite=True to replace it."
    )
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_files_that_are_no_exports_are_never_overwritten(
    tables: dict[str, tuple[str, list[dict[str, Any]]]], tmp_path: Path, overwrite: bool
) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "q3.csv").write_text("revenue\n42\n")
    (tmp_path / "README").write_text("hands off")
    before = snapshot(tmp_path)
    with fails_task(DestinationError) as error:
        export_segments(tables["a"][0], tmp_path, 2, segments=[0], overwrite=overwrite)
    assert f"destination {tmp_path} holds 2 file(s) that are not part of an export ('README', 'reports/q3.csv')" in (
        str(error.value)
    )
    assert snapshot(tmp_path) == before


def test_export_files_that_name_no_owner_are_refused(
    tables: dict[str, tuple[str, list[dict[str, Any]]]], tmp_path: Path
) -> None:
    # Parts without a marker or manifest (e.g. written by an older version): whose they are is unknown.
    (tmp_path / "segment-00000-of-00002").mkdir()
    (tmp_path / "segment-00000-of-00002" / "part-00000.jsonl").write_text('{"pk": "old"}\n')
    with fails_task(DestinationError, match=r"unfinished export that names no owner .*overwrite=True"):
        export_segments(tables["a"][0], tmp_path, 2, segments=[0])
    assert files_under(tmp_path) == ["segment-00000-of-00002/part-00000.jsonl"]


# --- one export's own tasks ----------------------------------------------------------------------------------------


def test_mapped_segments_recognise_each_other_and_a_retry_resumes(
    tables: dict[str, tuple[str, list[dict[str, Any]]]], tmp_path: Path
) -> None:
    name, items = tables["a"]
    paging = {"max_file_bytes": 1, "scan_kwargs": {"Limit": PAGE_ITEMS}}  # one part per item
    first = export_segments(name, tmp_path, 3, segments=[0], **paging)
    failing = operator(name, tmp_path, 1, 3, **paging)
    count_scans(failing, fail_after=2)
    with pytest.raises(ScanFailure):
        failing.execute(context())  # try 1 of segment 1 dies after its second page
    kept = sorted(name for name in files_under(tmp_path) if name.startswith("segment-00001-of-00003/"))
    # The part of page 2's last item was still open when the request for page 3 failed: it is not kept.
    assert kept == [f"segment-00001-of-00003/part-{index:05d}.jsonl" for index in range(2 * PAGE_ITEMS - 1)]
    third = export_segments(name, tmp_path, 3, segments=[2], **paging)  # a sibling, meanwhile: not refused
    retry = operator(name, tmp_path, 1, 3, **paging)
    sent = count_scans(retry)
    second = retry.execute(context())  # try 2 of the same task instance
    # It kept the parts try 1 committed and read only the rest: page 2 again (for its last item), the pages after
    # it, and at most one empty last page.
    assert [part["path"] for part in second["parts"][: len(kept)]] == kept
    pages_left = 1 + -(-(len(second["parts"]) - 2 * PAGE_ITEMS) // PAGE_ITEMS)
    assert pages_left <= sent[0] <= pages_left + 1

    manifest, lines = read_back_after(commit([*first, second, *third]), tmp_path)
    assert lines == by_pk([json_view(item) for item in items])
    assert_committed_holds_only_its_own(tmp_path, manifest)


def read_back_after(summary: dict[str, Any], root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    manifest, lines = read_back(root)
    assert summary["items"] == manifest["items"] == len(lines)
    return manifest, lines


def test_rerun_of_the_same_run_replaces_its_own_parts(
    tables: dict[str, tuple[str, list[dict[str, Any]]]], tmp_path: Path
) -> None:
    name, items = tables["a"]
    export_segments(name, tmp_path, 2)
    results = export_segments(name, tmp_path, 2)  # the DAG run cleared and run again, before its manifest
    assert sorted(files_under(tmp_path)) == sorted([MARKER_NAME, *(p["path"] for r in results for p in r["parts"])])
    with fails_task(DestinationError, match=r"holds the unfinished export of .* run 'exports/r1/"):
        export_segments(name, tmp_path, 2, segments=[0], run_id="r3")  # a new DAG run is another export
    manifest, lines = read_back_after(commit(results), tmp_path)
    assert lines == by_pk([json_view(item) for item in items])
    assert_committed_holds_only_its_own(tmp_path, manifest)


# --- overwrite -----------------------------------------------------------------------------------------------------


def test_overwrite_with_fewer_segments_leaves_only_the_new_export(
    tables: dict[str, tuple[str, list[dict[str, Any]]]], tmp_path: Path
) -> None:
    name_a, _ = tables["a"]
    name_b, items_b = tables["b"]
    commit(export_segments(name_a, tmp_path, 5))
    results = export_segments(name_b, tmp_path, 3, run_id="r2", overwrite=True)
    # Not complete again until committed: the old manifest went with the first page, its parts are still there.
    assert not (tmp_path / MANIFEST_NAME).exists()
    assert sorted(path.name for path in tmp_path.glob("segment-*-of-00005")) == [
        f"segment-0000{n}-of-00005" for n in range(5)
    ]
    manifest, lines = read_back_after(commit(results), tmp_path)
    assert (manifest["table_name"], manifest["total_segments"]) == (name_b, 3)
    assert lines == by_pk([json_view(item) for item in items_b])
    assert_committed_holds_only_its_own(tmp_path, manifest)  # no segment-*-of-00005/, no marker, no _checkpoints/


def test_overwrite_of_another_tables_unfinished_export(
    tables: dict[str, tuple[str, list[dict[str, Any]]]], tmp_path: Path
) -> None:
    name_a, _ = tables["a"]
    name_b, items_b = tables["b"]
    export_segments(name_a, tmp_path, 4, segments=[0, 1, 3])
    results = export_segments(name_b, tmp_path, 2, run_id="r2", overwrite=True)
    manifest, lines = read_back_after(commit(results), tmp_path)
    assert lines == by_pk([json_view(item) for item in items_b])
    assert_committed_holds_only_its_own(tmp_path, manifest)


def test_failed_overwrite_keeps_the_complete_export(
    tables: dict[str, tuple[str, list[dict[str, Any]]]], tmp_path: Path
) -> None:
    name_a, items_a = tables["a"]
    name_b, _ = tables["b"]
    commit(export_segments(name_a, tmp_path, 3))
    before = snapshot(tmp_path)
    with pytest.raises(Exception, match="expression attribute value used in expression is not defined"):
        export_segments(
            name_b, tmp_path, 2, run_id="r2", overwrite=True, scan_kwargs={"FilterExpression": "pk = :missing"}
        )
    assert snapshot(tmp_path) == before  # DynamoDB refused the first page: the complete export is untouched
    manifest, lines = read_back(tmp_path)
    assert (manifest["table_name"], lines) == (name_a, by_pk([json_view(item) for item in items_a]))


# --- in Airflow: the task group's mapped tasks, a re-run of the same DAG run, a new DAG run -------------------------


@pytest.mark.usefixtures("airflow_db")
def test_dag_rerun_resumes_its_own_parts_and_a_new_run_is_refused(
    tables: dict[str, tuple[str, list[dict[str, Any]]]], tmp_path: Path
) -> None:
    from datetime import datetime, timedelta, timezone

    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    from tests.dags.test_example_transform_aggregate_dags import load_dag, task_states

    name, items = tables["a"]
    dag = load_dag("example_dynamodb_parallel_export.py", "example_dynamodb_parallel_export")
    conf = {"table_name": name, "destination": str(tmp_path), "total_segments": 3, "file_format": "jsonl"}
    when = datetime(2026, 11, 27, 6, tzinfo=timezone.utc)
    root = tmp_path / name / "2026-11-27"
    # An earlier attempt of this very DAG run exported segment 1, then the run was cleared and run again.
    run_id = DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=when, run_after=when)
    earlier = DynamoDBExportOperator(
        task_id="export_segment",
        table_name=name,
        destination=str(root),
        segment=1,
        total_segments=3,
        compression="gzip",
    ).execute(
        {
            "ti": SimpleNamespace(
                dag_id=dag.dag_id, run_id=run_id, task_id="export_orders.export_segment", xcom_push=ignore
            )
        }
    )

    run = dag.test(logical_date=when, run_after=when, run_conf=conf)
    assert run.state == "success" and run.run_id == run_id
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["segments"][1]["parts"][0]["path"] == earlier["parts"][0]["path"]
    lines = [
        line for path in committed_paths(manifest) for line in read_jsonl(gzip.decompress((root / path).read_bytes()))
    ]
    assert by_pk(lines) == by_pk([json_view(item) for item in items])
    assert_committed_holds_only_its_own(root, manifest)

    # A new DAG run on the same day writes into the same destination: refused, the committed export untouched.
    before = snapshot(root)
    later = when + timedelta(hours=1)
    refused = dag.test(logical_date=later, run_after=later, run_conf=conf)
    assert refused.state == "failed"
    states = {(task, map_index): state for task, map_index, state, _ in task_states(refused)}
    assert {states[("export_orders.export_segment", n)] for n in range(3)} == {"failed"}
    assert states[("export_orders.write_manifest", -1)] == "upstream_failed"
    assert snapshot(root) == before


# --- on S3 ----------------------------------------------------------------------------------------------------------


def test_s3_prefix_is_owned_too(moto_connection_env: str) -> None:
    from moto import mock_aws

    from tests.conftest import make_client
    from tests.integration.test_user_destinations import BUCKET, s3_objects

    with mock_aws():
        make_client(service="s3").create_bucket(Bucket=BUCKET)
        for table, count in (("orders", 60), ("customers", 40)):
            create_table(make_client(), table)
            put_items(make_client(), table, [{"pk": f"{table}#{n:03d}", "n": n} for n in range(count)], threads=1)
        destination = f"s3://{BUCKET}/exports/daily/"

        def run(table: str, total_segments: int, run_id: str, **kwargs: Any) -> list[dict[str, Any]]:
            return [
                DynamoDBExportOperator(
                    task_id="export_segment",
                    table_name=table,
                    destination=destination,
                    segment=segment,
                    total_segments=total_segments,
                    **kwargs,
                ).execute(context(run_id))
                for segment in range(total_segments)
            ]

        commit(run("orders", 5, "r1"))
        before = s3_objects("exports/daily/")
        with fails_task(DestinationError) as error:
            run("customers", 3, "r2")
        assert str(error.value).startswith(
            f"Table 'customers': destination s3://{BUCKET}/exports/daily already holds a complete export of table "
            "'orders' as jsonl, 5 segments"
        )
        assert s3_objects("exports/daily/") == before

        summary = commit(run("customers", 3, "r2", overwrite=True))
        objects = s3_objects("exports/daily/")
        manifest = json.loads(objects[f"exports/daily/{MANIFEST_NAME}"])
        assert sorted(objects) == sorted(
            f"exports/daily/{path}" for path in [MANIFEST_NAME, *committed_paths(manifest)]
        )
        assert all(path.split("/")[0].endswith("-of-00003") for path in committed_paths(manifest))
        lines = [line for path in committed_paths(manifest) for line in read_jsonl(objects[f"exports/daily/{path}"])]
        assert sorted(line["pk"] for line in lines) == [f"customers#{n:03d}" for n in range(40)]
        assert summary["items"] == 40
