"""
Destinations as DAG authors write them: every spelling, locally and on S3, through the operators and the task group.

Each spelling must export every item exactly once, commit with a manifest, and name the destination in one
normalised form (an absolute path, or ``s3://bucket/prefix`` without a trailing slash) in the manifest and in every
XCom result; the committed destination holds exactly its parts and ``manifest.json``. A destination that is not
allowed is refused with the parameter's name and what is allowed, before the table is even looked up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.export.manifest import MANIFEST_NAME
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator
from airflow_dynamoscan.storage.destinations import normalize_destination
from devtools.sample_data import create_table, put_items
from tests.conftest import aws_connection, fails_task, make_client, unique_table_name
from tests.dags.conftest import airflow_db  # noqa: F401  (the metadata database of dag.test())
from tests.unit.export.readback import json_view, mixed_items, read_jsonl

ALLOWED = "allowed: s3://bucket/prefix, a local directory path, or file:///absolute/path."
BUCKET = "user-exports"
SEGMENTS = 3


def files_under(root: Path) -> list[str]:
    """Every file under ``root``, relative, sorted (folders are not listed; see :func:`entries_under`)."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def entries_under(root: Path) -> list[str]:
    """Every file and folder under ``root``, relative, sorted: an empty folder left behind shows here."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def s3_objects(prefix: str = "") -> dict[str, bytes]:
    s3 = make_client(service="s3")
    keys = [
        entry["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for entry in page.get("Contents", [])
    ]
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def by_pk(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: str(item["pk"]))


def committed_paths(manifest: dict[str, Any]) -> list[str]:
    return [part["path"] for segment in manifest["segments"] for part in segment["parts"]]


def mapped_export(table_name: str, destination: str, total_segments: int = SEGMENTS, **kwargs: Any) -> list[Any]:
    """What ``.partial(...).expand(segment=...)`` runs: one export per segment, each with the text the user wrote."""
    return [
        DynamoDBExportOperator(
            task_id="export",
            table_name=table_name,
            destination=destination,
            segment=segment,
            total_segments=total_segments,
            **kwargs,
        ).execute({})  # type: ignore[arg-type]
        for segment in range(total_segments)
    ]


def commit(results: Any, **kwargs: Any) -> dict[str, Any]:
    return DynamoDBExportManifestOperator(task_id="manifest", results=results, **kwargs).execute({})  # type: ignore[arg-type]


# --- the one normalisation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("s3://bucket/exports/orders", "s3://bucket/exports/orders"),
        ("s3://bucket/exports/orders/", "s3://bucket/exports/orders"),
        ("s3://bucket//exports///orders//", "s3://bucket/exports/orders"),
        ("S3://bucket/exports/orders", "s3://bucket/exports/orders"),
        ("s3://bucket", "s3://bucket"),
        ("s3://bucket/", "s3://bucket"),
        ("  s3://bucket/exports/\n", "s3://bucket/exports"),
        ("/data/exports", "/data/exports"),
        ("/data/exports/", "/data/exports"),
        ("/data//exports//", "/data/exports"),
        ("//data/exports", "/data/exports"),
        ("/data/./exports/daily/..", "/data/exports"),
        ("file:///data/exports/", "/data/exports"),
        ("FILE:///data/exports", "/data/exports"),
        ("file://localhost/data/exports", "/data/exports"),
        ("file:/data/exports", "/data/exports"),
        ("file:///data/with%20space", "/data/with space"),
    ],
)
def test_every_spelling_has_one_normal_form(written: str, normalised: str) -> None:
    assert normalize_destination(written) == normalised
    assert normalize_destination(normalised) == normalised  # normalising again changes nothing


def test_relative_and_home_paths_resolve_where_they_are_normalised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert normalize_destination("out/exports") == f"{tmp_path}/out/exports"
    assert normalize_destination("./out//exports/") == f"{tmp_path}/out/exports"
    assert normalize_destination("~/exports/") == f"{tmp_path}/home/exports"
    assert normalize_destination("~") == f"{tmp_path}/home"


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("", "it is empty"),
        (" \n", "it is empty"),
        ("s3://", "'' is not a bucket name"),
        ("s3:///exports", "'' is not a bucket name"),
        ("s3://bucket/a/../b", "the key prefix has a '.' or '..' part"),
        ("s3:bucket/exports", "an S3 destination is written s3://bucket/prefix"),
        ("http://example.com/exports", "the scheme 'http' is not supported"),
        ("https://bucket.s3.amazonaws.com/exports", "the scheme 'https' is not supported"),
        ("s3a://bucket/exports", "the scheme 's3a' is not supported"),
        ("file://server/share", "file:// URIs name no host other than localhost, not 'server'"),
        ("file:out/exports", "a file: URI needs an absolute path (file:///path); write a relative path without file:"),
    ],
)
def test_bad_destinations_name_the_parameter_and_what_is_allowed(written: str, reason: str) -> None:
    with pytest.raises(InvalidScanArgumentError) as error:
        normalize_destination(written)
    assert str(error.value) == f"destination={written!r} is not allowed: {reason}; {ALLOWED}"


# --- local destinations through the operators ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def user_table(dynalite_client: Any) -> tuple[str, list[dict[str, Any]]]:
    name = unique_table_name("user-dest")
    create_table(dynalite_client, name)
    items = mixed_items(240, padding=20)
    put_items(dynalite_client, name, items)
    return name, items


LOCAL_SPELLINGS = {
    "trailing slash": lambda root: f"{root}/exports/",
    "doubled slashes": lambda root: f"{root}//exports//",
    "file URI": lambda root: f"file://{root}/exports",
    "file URI with trailing slash": lambda root: f"file://{root}/exports/",
    "file: with one slash": lambda root: f"file:{root}/exports",
    "relative": lambda root: "exports",
    "relative with dot and slash": lambda root: "./exports/",
    "home": lambda root: "~/exports",
}


@pytest.mark.usefixtures("aws_connection_env")
@pytest.mark.parametrize("spelling", sorted(LOCAL_SPELLINGS))
def test_local_spellings_through_the_operators(
    spelling: str, user_table: tuple[str, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, items = user_table
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    written = LOCAL_SPELLINGS[spelling](tmp_path)
    root = tmp_path / "exports"

    results = mapped_export(name, written)
    assert [result["destination"] for result in results] == [str(root)] * SEGMENTS
    assert all(part["uri"] == f"{root}/{part['path']}" for result in results for part in result["parts"])
    # The manifest task is given the destination as the user wrote it, and no connection.
    summary = commit(results, destination=written)

    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["destination"] == str(root)
    assert summary["manifest"] == f"{root}/{MANIFEST_NAME}"
    assert summary["items"] == manifest["items"] == len(items)
    lines = [line for path in committed_paths(manifest) for line in read_jsonl((root / path).read_bytes())]
    assert by_pk(lines) == by_pk([json_view(item) for item in items])
    assert files_under(tmp_path) == sorted(f"exports/{path}" for path in [MANIFEST_NAME, *committed_paths(manifest)])


@pytest.mark.usefixtures("aws_connection_env")
def test_unmapped_export_result_is_committed_as_it_is(
    user_table: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    name, items = user_table
    result = DynamoDBExportOperator(
        task_id="export", table_name=name, destination=f"{tmp_path}/whole/", max_workers=2, total_segments=4
    ).execute({})  # type: ignore[arg-type]
    summary = commit(result)  # a single dict, as `results=export.output` of an unmapped export gives it
    manifest = json.loads((tmp_path / "whole" / MANIFEST_NAME).read_text())
    assert (summary["items"], manifest["items"], manifest["total_segments"]) == (len(items), len(items), 1)
    assert manifest["destination"] == f"{tmp_path}/whole"
    assert entries_under(tmp_path / "whole") == sorted(
        [MANIFEST_NAME, "segment-00000-of-00001", *committed_paths(manifest)]
    )


@pytest.mark.usefixtures("aws_connection_env")
@pytest.mark.parametrize("written", ["s3://", "s3:///exports", "http://example.com/exports", "", "file:exports"])
def test_bad_destination_is_refused_before_the_table_is_read(written: str, tmp_path: Path) -> None:
    # The table does not exist: a destination error proves the destination was checked before any request.
    with fails_task(InvalidScanArgumentError, match=r"^destination=.* is not allowed: .*; allowed: s3://bucket"):
        DynamoDBExportOperator(task_id="export", table_name="no-such-table", destination=written).execute({})  # type: ignore[arg-type]
    result = {"table_name": "t", "segment": 0, "total_segments": 1, "items": 0, "bytes": 0, "parts": []}
    with fails_task(InvalidScanArgumentError, match=r"^destination=.* is not allowed"):
        commit([result], destination=written)
    assert files_under(tmp_path) == []


# --- S3 destinations through the operators (moto) ------------------------------------------------------------------


@pytest.fixture
def moto_table(moto_connection_env: str) -> Iterator[list[dict[str, Any]]]:
    with mock_aws():
        make_client(service="s3").create_bucket(Bucket=BUCKET)
        create_table(make_client(), "orders")
        items = mixed_items(90, padding=10)
        put_items(make_client(), "orders", items, threads=1)
        yield items


S3_SPELLINGS = [
    (f"s3://{BUCKET}/daily/2026-11-27", f"s3://{BUCKET}/daily/2026-11-27"),
    (f"s3://{BUCKET}/daily/2026-11-27/", f"s3://{BUCKET}/daily/2026-11-27"),
    (f"s3://{BUCKET}//daily//2026-11-27//", f"s3://{BUCKET}/daily/2026-11-27"),
    (f"S3://{BUCKET}/daily/2026-11-27", f"s3://{BUCKET}/daily/2026-11-27"),
    (f"s3://{BUCKET}", f"s3://{BUCKET}"),
    (f"s3://{BUCKET}/", f"s3://{BUCKET}"),
]


@pytest.mark.parametrize(("written", "normalised"), S3_SPELLINGS)
def test_s3_spellings_through_the_operators(
    written: str, normalised: str, moto_table: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The export names its connections and there is no aws_default: the manifest task, given no connection,
    # must use the export's.
    monkeypatch.setenv("AIRFLOW_CONN_TABLES", aws_connection())
    monkeypatch.setenv("AIRFLOW_CONN_S3_EXPORTS", aws_connection())
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT")
    results = mapped_export("orders", written, aws_conn_id="tables", dest_aws_conn_id="s3_exports")
    assert [result["destination"] for result in results] == [normalised] * SEGMENTS
    summary = commit(results, destination=written)
    prefix = normalised[len(f"s3://{BUCKET}") :].lstrip("/")
    key_prefix = f"{prefix}/" if prefix else ""
    objects = s3_objects(key_prefix)
    manifest = json.loads(objects[f"{key_prefix}{MANIFEST_NAME}"])
    assert manifest["destination"] == normalised
    assert summary["manifest"] == f"{normalised}/{MANIFEST_NAME}"
    assert sorted(objects) == sorted(f"{key_prefix}{path}" for path in [MANIFEST_NAME, *committed_paths(manifest)])
    lines = [line for path in committed_paths(manifest) for line in read_jsonl(objects[f"{key_prefix}{path}"])]
    assert by_pk(lines) == by_pk([json_view(item) for item in moto_table])


# --- through the task group, with dag.test() ------------------------------------------------------------------------
# The example DAG writes under "{{ params.destination }}/{{ params.table_name }}/{{ ds }}": a destination param with a
# trailing slash gives a doubled one, as it does in real DAGs.


def run_parallel_export_dag(table_name: str, destination: str) -> Any:
    from tests.dags.test_example_transform_aggregate_dags import load_dag

    dag = load_dag("example_dynamodb_parallel_export.py", "example_dynamodb_parallel_export")
    return dag.test(run_conf={"table_name": table_name, "destination": destination, "total_segments": SEGMENTS})


@pytest.mark.usefixtures("airflow_db", "aws_connection_env")
@pytest.mark.parametrize("spelling", ["trailing slash", "file URI with trailing slash", "relative"])
def test_task_group_with_local_spellings(
    spelling: str, user_table: tuple[str, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip

    from tests.dags.test_example_transform_aggregate_dags import results_by_map_index

    name, items = user_table
    monkeypatch.chdir(tmp_path)
    run = run_parallel_export_dag(name, LOCAL_SPELLINGS[spelling](tmp_path))
    assert run.state == "success"
    root = tmp_path / "exports" / name / run.logical_date.strftime("%Y-%m-%d")
    results = results_by_map_index(run, "export_orders.export_segment")
    assert sorted(results) == list(range(SEGMENTS))
    assert {results[index]["destination"] for index in results} == {str(root)}
    (summary,) = results_by_map_index(run, "export_orders.write_manifest").values()
    assert summary["manifest"] == f"{root}/{MANIFEST_NAME}"

    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["destination"] == str(root)
    lines = [
        line for path in committed_paths(manifest) for line in read_jsonl(gzip.decompress((root / path).read_bytes()))
    ]
    assert by_pk(lines) == by_pk([json_view(item) for item in items])
    assert files_under(tmp_path / "exports") == sorted(
        str((root / path).relative_to(tmp_path / "exports")) for path in [MANIFEST_NAME, *committed_paths(manifest)]
    )


@pytest.mark.usefixtures("airflow_db")
def test_task_group_with_an_s3_prefix_and_a_trailing_slash(moto_table: list[dict[str, Any]]) -> None:
    import gzip

    from tests.dags.test_example_transform_aggregate_dags import results_by_map_index

    run = run_parallel_export_dag("orders", f"S3://{BUCKET}/exports/")
    assert run.state == "success"
    prefix = f"exports/orders/{run.logical_date.strftime('%Y-%m-%d')}"
    results = results_by_map_index(run, "export_orders.export_segment")
    assert {results[index]["destination"] for index in results} == {f"s3://{BUCKET}/{prefix}"}
    objects = s3_objects(f"{prefix}/")
    manifest = json.loads(objects[f"{prefix}/{MANIFEST_NAME}"])
    assert manifest["destination"] == f"s3://{BUCKET}/{prefix}"
    assert sorted(objects) == sorted(f"{prefix}/{path}" for path in [MANIFEST_NAME, *committed_paths(manifest)])
    lines = [
        line for path in committed_paths(manifest) for line in read_jsonl(gzip.decompress(objects[f"{prefix}/{path}"]))
    ]
    assert by_pk(lines) == by_pk([json_view(item) for item in moto_table])


@pytest.mark.usefixtures("airflow_db", "aws_connection_env")
def test_task_group_refuses_a_bad_destination_in_the_plan(user_table: tuple[str, list[dict[str, Any]]]) -> None:
    from tests.dags.test_example_transform_aggregate_dags import task_states

    name, _ = user_table
    run = run_parallel_export_dag(name, "http://example.com")
    assert run.state == "failed"
    states = {task: state for task, _, state, _ in task_states(run)}
    assert states["export_orders.plan_segments"] == "failed"
    assert states.get("export_orders.export_segment") in (None, "upstream_failed")
