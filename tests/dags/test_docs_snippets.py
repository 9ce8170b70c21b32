"""
Every Python block of README.md and docs/*.md works as written.

A block is one of:

- a complete DAG file (no marker): loaded from a file of its own and run with ``dag.test()`` against the local
  DynamoDB server (a fresh table ``orders``) and an S3 bucket ``my-bucket`` (moto), on every Airflow the tests run
  with (3.x in ``make test``, 2.11 in ``make matrix-lowest``); ``<!-- airflow-3-only -->`` right before the block
  runs it on Airflow 3 only;
- ``<!-- parse-only: why -->``: a complete DAG file that needs AWS to run (a native export): loaded, not run;
- ``<!-- fragment -->`` (or ``<!-- fragment: why -->``): part of a file: compiled, and each of its imports run.

Pages are found by name, so a new page's blocks are tested without changing this file.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from airflow_dynamoscan.scan.decode import deserialize_item
from benchmarks import report
from devtools.sample_data import create_table, put_items, sample_item
from tests.conftest import PROJECT_ROOT
from tests.dags.test_example_transform_aggregate_dags import results_by_map_index

PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
TABLE = "orders"
BUCKET = "my-bucket"
ITEMS = 120
KINDS = ("run", "airflow-3-only", "parse-only", "fragment")
_MARKER = re.compile(r"^<!--\s*([a-z0-9-]+)\s*(?::.*)?-->$")


@dataclass(frozen=True)
class Snippet:
    """One ```python block of a page."""

    page: Path
    line: int  # of the opening fence, counted from 1
    kind: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(PROJECT_ROOT)}:{self.line}"


def page_snippets(page: Path) -> list[Snippet]:
    """The ```python blocks of ``page``, each with the kind its marker (the line before the fence) gives."""
    lines = page.read_text().splitlines()
    found = []
    number = 0
    while number < len(lines):
        if lines[number].strip() == "```python":
            start = number
            end = next(index for index in range(start + 1, len(lines)) if lines[index].strip() == "```")
            before = lines[start - 1].strip() if start else ""
            marker = _MARKER.match(before)
            kind = marker.group(1) if marker else "run"
            assert kind in KINDS, f"{page.name}:{start + 1}: unknown snippet marker {before!r}; use one of {KINDS}"
            found.append(Snippet(page, start + 1, kind, "\n".join(lines[start + 1 : end]) + "\n"))
            number = end
        number += 1
    return found


SNIPPETS = [snippet for page in PAGES for snippet in page_snippets(page)]


def of_kind(*kinds: str) -> list[Any]:
    return [pytest.param(snippet, id=snippet.name) for snippet in SNIPPETS if snippet.kind in kinds]


def airflow_major() -> int:
    from airflow import __version__

    return int(__version__.split(".")[0])


def load_dags(snippet: Snippet, folder: Path) -> dict[str, Any]:
    """The DAGs of the snippet, loaded by Airflow from a file holding exactly the block."""
    from airflow.models import DagBag

    path = folder / f"snippet_{snippet.page.stem.replace('-', '_')}_{snippet.line}.py"
    path.write_text(snippet.code)
    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}, f"{snippet.name}: {bag.import_errors}"
    assert bag.dags, f"{snippet.name} defines no DAG"
    return dict(bag.dags)


# The sample table: every third order's status in capitals, for the transform to change.
def order(number: int) -> dict[str, Any]:
    item = sample_item(number, padding=10)
    if number % 3 == 0:
        item["status"] = item["status"].upper()
    return item


def table_items(client: Any) -> dict[str, dict[str, Any]]:
    pages = client.get_paginator("scan").paginate(TableName=TABLE)
    return {item["pk"]: item for page in pages for item in map(deserialize_item, page["Items"])}


@pytest.fixture
def orders_table(dynalite_client: Any) -> Iterator[dict[str, dict[str, Any]]]:
    """A fresh table ``orders`` on the local server; yields its items by key."""
    if TABLE in dynalite_client.list_tables()["TableNames"]:
        dynalite_client.delete_table(TableName=TABLE)
    create_table(dynalite_client, TABLE)
    items = [order(number) for number in range(ITEMS)]
    put_items(dynalite_client, TABLE, items)
    yield {item["pk"]: item for item in items}
    dynalite_client.delete_table(TableName=TABLE)


@pytest.fixture
def aws(dynalite_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``aws_default`` with DynamoDB on the local server and S3 on moto, bucket ``my-bucket``; yields an S3 client."""
    import boto3
    from moto import mock_aws

    extra = {"region_name": "us-east-1", "service_config": {"dynamodb": {"endpoint_url": dynalite_endpoint}}}
    connection = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield s3


# What the runnable snippets of the README do, checked exactly. A runnable snippet of another page needs only to
# succeed; one of the README must have its check here.
def manifest_and_rows(s3: Any, prefix: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The manifest under ``prefix`` (the only one) and every row of its parts."""
    import pyarrow.parquet as pq

    keys = [entry["Key"] for entry in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    (manifest_key,) = [key for key in keys if key.endswith("/manifest.json")]
    root = manifest_key.rsplit("/", 1)[0]
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    rows: list[dict[str, Any]] = []
    for segment in manifest["segments"]:
        for part in segment["parts"]:
            body = s3.get_object(Bucket=BUCKET, Key=f"{root}/{part['path']}")["Body"].read()
            if part["path"].endswith(".parquet"):
                rows += pq.read_table(io.BytesIO(body)).to_pylist()
            else:
                text = gzip.decompress(body) if part["path"].endswith(".gz") else body
                rows += [json.loads(line, parse_float=Decimal) for line in text.splitlines()]
    assert sorted(keys) == sorted(
        [manifest_key] + [f"{root}/{part['path']}" for segment in manifest["segments"] for part in segment["parts"]]
    ), "a committed export holds only its parts and manifest.json"
    return manifest, rows


def check_export_orders(run: Any, s3: Any, items: dict[str, dict[str, Any]], client: Any) -> None:
    manifest, rows = manifest_and_rows(s3, f"exports/orders/{run.run_id}/")
    assert (manifest["table_name"], manifest["file_format"], manifest["items"]) == (TABLE, "jsonl", ITEMS)
    # The README names the first part (the local server reports a table size of 0: one segment is planned).
    assert manifest["segments"][0]["parts"][0]["path"] == "segment-00000-of-00001/part-00000.jsonl"
    assert sorted(row["pk"] for row in rows) == sorted(items)
    assert all(row["precise"] == items[row["pk"]]["precise"] for row in rows)  # every digit


def check_orders_to_parquet(run: Any, s3: Any, items: dict[str, dict[str, Any]], client: Any) -> None:
    manifest, rows = manifest_and_rows(s3, f"parquet/orders/{run.run_id}/")
    assert (manifest["file_format"], manifest["items"]) == ("parquet", ITEMS)
    assert sorted(row["pk"] for row in rows) == sorted(items)
    assert {row["pk"]: row["amount"] for row in rows} == {pk: item["amount"] for pk, item in items.items()}


def check_lower_order_status(run: Any, s3: Any, items: dict[str, dict[str, Any]], client: Any) -> None:
    changed = {pk for pk, item in items.items() if item["status"] != item["status"].lower()}
    dry_run = results_by_map_index(run, "dry_run")
    assert sum(result["would_write"] for result in dry_run.values()) == len(changed) == ITEMS // 3
    written = results_by_map_index(run, "write")
    assert sorted(written) == [0, 1, 2, 3]
    assert sum(result["written"] for result in written.values()) == len(changed)
    expected = {pk: {**item, "status": item["status"].lower()} for pk, item in items.items()}
    assert table_items(client) == expected


def check_paid_orders_total(run: Any, s3: Any, items: dict[str, dict[str, Any]], client: Any) -> None:
    totals = results_by_map_index(run, "paid_total")
    assert sorted(totals) == [0, 1, 2, 3]
    paid = sum((item["amount"] for item in items.values() if item["status"] == "paid"), Decimal(0))
    assert paid > 0
    # The test reads XCom through the metadata database, where a number-like text may come back as a number.
    assert sum((Decimal(str(total)) for total in totals.values()), Decimal(0)) == paid


CHECKS: dict[str, Callable[[Any, Any, dict[str, dict[str, Any]], Any], None]] = {
    "export_orders": check_export_orders,
    "orders_to_parquet": check_orders_to_parquet,
    "lower_order_status": check_lower_order_status,
    "paid_orders_total": check_paid_orders_total,
}


def task_instance_states(run: Any) -> list[tuple[str, int, str]]:
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance

    with settings.Session() as session:
        instances = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        return sorted((ti.task_id, ti.map_index, str(ti.state)) for ti in instances)


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("snippet", of_kind("run", "airflow-3-only"))
def test_dag_snippet_runs(
    snippet: Snippet,
    orders_table: dict[str, dict[str, Any]],
    aws: Any,
    dynalite_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if snippet.kind == "airflow-3-only" and airflow_major() < 3:
        pytest.skip("the page says this snippet needs Airflow 3")
    # Airflow 3's dag.test() runs what the DAGs folder holds, as a deployment would.
    from airflow import settings

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(tmp_path))
    for dag_id, dag in load_dags(snippet, tmp_path).items():
        run = dag.test()
        states = task_instance_states(run)
        assert run.state == "success", f"{snippet.name}: {states}"
        assert states and all(state == "success" for _, _, state in states), f"{snippet.name}: {states}"
        check = CHECKS.get(dag_id)
        if snippet.page.name == "README.md":
            assert check is not None, f"{snippet.name}: add what DAG {dag_id!r} must do to CHECKS"
        if check is not None:
            check(run, aws, orders_table, dynalite_client)


@pytest.mark.parametrize("snippet", of_kind("parse-only"))
def test_parse_only_snippet_loads(snippet: Snippet, tmp_path: Path) -> None:
    dags = load_dags(snippet, tmp_path)
    assert all(dag.task_ids for dag in dags.values()), snippet.name


@pytest.mark.parametrize("snippet", of_kind("fragment"))
def test_fragment_compiles_and_its_imports_resolve(snippet: Snippet) -> None:
    tree = compile(snippet.code, snippet.name, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    compile(tree, snippet.name, "exec")
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    for node in imports:
        exec(compile(ast.Module(body=[node], type_ignores=[]), snippet.name, "exec"), {})


def test_the_snippets_are_found() -> None:
    readme = [snippet for snippet in SNIPPETS if snippet.page.name == "README.md"]
    assert sorted({snippet.kind for snippet in readme}) == ["parse-only", "run"]
    assert {snippet.page.name for snippet in SNIPPETS} >= {"README.md", "hook.md", "native-exports.md"}


def test_the_first_dag_is_about_ten_lines() -> None:
    first = next(snippet for snippet in SNIPPETS if snippet.page.name == "README.md")
    lines = [line for line in first.code.splitlines() if line.strip()]
    assert len(lines) <= 12, first.code
    assert "from airflow import DAG" in first.code  # the one import path of DAG valid on Airflow 2.11 and 3.x


def test_the_readme_stays_short() -> None:
    assert len((PROJECT_ROOT / "README.md").read_text().splitlines()) <= 255


def test_every_relative_link_of_the_pages_exists() -> None:
    # Pages written alongside this one may land later: a link to them is allowed when the page is named here.
    coming = {"docs/iceberg.md"}
    missing = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", page.read_text()):
            path = (page.parent / target).resolve()
            if not path.exists() and str(path.relative_to(PROJECT_ROOT)) not in coming:
                missing.append(f"{page.name} -> {target}")
    assert missing == []


def test_the_benchmarks_page_holds_the_generated_tables() -> None:
    text = report.BENCHMARKS_PAGE.read_text()
    assert text.count(report.BLOCK_START) == text.count(report.BLOCK_END) == 1
    assert report.BLOCK_START not in (PROJECT_ROOT / "README.md").read_text()
