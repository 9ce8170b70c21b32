"""
The bad-input matrix, against the local DynamoDB server (dynalite).

Every wrong table, parameter, scan keyword, expression, destination or transform result that the export and
transform operators, the hook and the segment planner can meet: each case asserts the exact error message (which
names the table, the parameter and the allowed values, or surfaces DynamoDB's own message) and the exact files
left at the destination, none or only what was there before. The valid edge cases (an empty table, items at
DynamoDB's 400 KB limit, attribute names with dots, spaces, unicode, ``#`` and ``:``) assert an exact read-back.
S3 destinations (a missing bucket, access denied) are in ``tests/unit/test_export_s3_bad_input.py`` (moto).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import gzip
import io
import json
import random
import string
import sys
import traceback
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from airflow_dynamoscan.compat import AirflowFailException
from airflow_dynamoscan.exceptions import (
    DestinationError,
    InvalidScanArgumentError,
    ScanRequestError,
    TableNotFoundError,
    TransformError,
)
from airflow_dynamoscan.export.manifest import MANIFEST_NAME
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator
from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator
from airflow_dynamoscan.scan.decode import deserialize_item
from airflow_dynamoscan.task_groups import plan_export_segments
from devtools.sample_data import create_table, put_items
from tests.conftest import unique_table_name
from tests.unit.export.readback import json_view, read_dynamodb_json, read_jsonl

pytestmark = pytest.mark.usefixtures("aws_connection_env")

#: DynamoDB's item size limit: attribute names plus values, in UTF-8 bytes.
ITEM_LIMIT_BYTES = 400 * 1024

ALLOWED_DESTINATIONS = "s3://bucket/prefix, a local directory path, or file:///absolute/path"
HOOK_OWNED_HINT = "are set by the scanner and may not be passed; use the table_name, segment and total_segments "

# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------


def files_at(root: Path) -> dict[str, bytes]:
    """Every file under ``root``: ``/``-separated relative path -> content; ``{}`` if ``root`` does not exist."""
    if not root.exists():
        return {}
    if root.is_file():
        return {root.name: root.read_bytes()}
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def export(table_name: str, destination: Path | str, **kwargs: Any) -> dict[str, Any]:
    operator = DynamoDBExportOperator(task_id="export", table_name=table_name, destination=str(destination), **kwargs)
    result: dict[str, Any] = operator.execute({})  # type: ignore[arg-type]
    return result


def commit(results: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = DynamoDBExportManifestOperator(task_id="manifest", results=results).execute({})  # type: ignore[arg-type]
    return summary


def transform(table_name: str, function: Any, **kwargs: Any) -> dict[str, Any]:
    operator = DynamoDBTransformOperator(task_id="transform", table_name=table_name, transform=function, **kwargs)
    result: dict[str, Any] = operator.execute({})  # type: ignore[arg-type]
    return result


def read_table(client: Any, table_name: str, key: str = "pk") -> dict[Any, dict[str, Any]]:
    """Every item of the table by key, read with botocore's own parser (not the code under test)."""
    items: dict[Any, dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=table_name):
        for raw in page["Items"]:
            item = deserialize_item(raw)
            items[item[key]] = item
    return items


def by_key(items: list[dict[str, Any]], key: str = "pk") -> dict[Any, dict[str, Any]]:
    keyed = {item[key]: item for item in items}
    assert len(keyed) == len(items), "an item was exported twice"
    return keyed


def raised(call: Callable[[], Any], error_type: type[BaseException]) -> BaseException:
    """
    Run ``call``, which must raise ``error_type`` (or a subclass of it), or, as an operator does for errors no
    retry can fix, ``AirflowFailException`` with its message, caused by it; return the ``error_type`` error.
    """
    with pytest.raises((error_type, AirflowFailException)) as info:
        call()
    error = info.value
    if isinstance(error, AirflowFailException):
        # An operator ends a task no retry can fix with AirflowFailException: same message, caused by the error.
        assert isinstance(error.__cause__, error_type), repr(error.__cause__)
        assert str(error) == str(error.__cause__)
        return error.__cause__
    return error


@contextlib.contextmanager
def csv_fields_of_any_size() -> Iterator[None]:
    # Python's csv reader refuses fields above 128 KiB by default; a 400 KB item has larger cells.
    previous = csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def read_csv_rows(data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    with csv_fields_of_any_size():
        reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def csv_cell(value: Any) -> str:
    """The exact CSV text of a scalar value (see ``export/formats.py``)."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def exported_items(root: Path, result: dict[str, Any], file_format: str, compression: str | None) -> list[Any]:
    """
    The items of every part of an export result, read back independently of the encoders.

    CSV and Parquet parts all have the export's one schema; nothing here overflows, so the extra column is empty in
    every row and left out, and the rows are compared with the items' columns, a missing cell being ``""`` (CSV)
    or ``None`` (Parquet).
    """
    items: list[Any] = []
    for part in result["parts"]:
        data = (root / part["path"]).read_bytes()
        if compression == "gzip" and file_format != "parquet":
            data = gzip.decompress(data)
        if file_format == "jsonl":
            items.extend(read_jsonl(data))
        elif file_format == "dynamodb_json":
            items.extend(read_dynamodb_json(data))
        elif file_format == "csv":
            items.extend(read_csv_rows(data)[1])
        else:
            items.extend(pq.read_table(root / part["path"]).to_pylist())
    if file_format in ("csv", "parquet"):
        assert {item.pop("_extra") for item in items} <= {"", None}
        columns = sorted({name for item in items for name in item})
        missing = "" if file_format == "csv" else None
        items = [{name: item.get(name, missing) for name in columns} for item in items]
    return items


# ---------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------


def small_items() -> list[dict[str, Any]]:
    return [{"pk": f"t#{number}", "status": "new", "amount": Decimal(number) + Decimal("0.25")} for number in range(4)]


@pytest.fixture(scope="module")
def small_table(dynalite_client: Any) -> str:
    """Four small items; no test changes them (the transform cases assert the table is exactly as before)."""
    name = unique_table_name("matrix")
    create_table(dynalite_client, name)
    put_items(dynalite_client, name, small_items())
    return name


@pytest.fixture(scope="module")
def empty_export_table(dynalite_client: Any) -> str:
    name = unique_table_name("matrix-empty")
    create_table(dynalite_client, name)
    return name


def largest_items() -> list[dict[str, Any]]:
    """
    Three items of exactly 400 KB (ASCII text, two-byte UTF-8 text, binary) and a small one.

    The values are pseudo-random, so that gzip cannot shrink them below the part size.
    """
    rng = random.Random(400)
    text_room = ITEM_LIMIT_BYTES - len("pk") - len("big#0") - len("payload")
    binary_room = ITEM_LIMIT_BYTES - len("pk") - len("big#2") - len("blob")
    return [
        {"pk": "big#0", "payload": "".join(rng.choices(string.ascii_letters + string.digits, k=text_room))},
        {"pk": "big#1", "payload": "".join(rng.choices("àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿ", k=text_room // 2))},
        {"pk": "big#2", "blob": rng.randbytes(binary_room)},
        {"pk": "big#3", "payload": "small", "blob": b"\x00"},
    ]


def item_size(item: dict[str, Any]) -> int:
    def value_size(value: Any) -> int:
        return len(value) if isinstance(value, bytes) else len(str(value).encode("utf-8"))

    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


@pytest.fixture(scope="module")
def largest_items_table(dynalite_client: Any) -> tuple[str, list[dict[str, Any]]]:
    name = unique_table_name("matrix-400kb")
    create_table(dynalite_client, name)
    items = largest_items()
    assert [item_size(item) for item in items[:3]] == [ITEM_LIMIT_BYTES] * 3
    put_items(dynalite_client, name, items, threads=1)
    # The items really are at the limit: one byte more is refused.
    with pytest.raises(ClientError, match="Item size has exceeded the maximum allowed size"):
        dynalite_client.put_item(
            TableName=name, Item={"pk": {"S": "big#9"}, "payload": {"S": items[0]["payload"] + "a"}}
        )
    return name, items


#: The hash key of the odd-names table, and attribute names an expression cannot use without placeholders.
ODD_KEY = "id.#: ü 🔑"
ODD_NAMES = ("a.b", "with space", "ünïcødé 😀", "#hash", ":colon", "a.b#c:d e", "comma,name", 'quote"name')


def odd_items() -> list[dict[str, Any]]:
    """
    Six items keyed by ``ODD_KEY``: attribute ``ODD_NAMES[j]`` of item ``i`` is missing when ``(i + j) % 4 == 3``,
    else ``"match"`` when ``(i + j) % 3 == 0``, else a value of its own; ``"n.um"`` is a number.
    """
    items = []
    for number in range(6):
        item: dict[str, Any] = {ODD_KEY: f"k{number}", "n.um": Decimal(number)}
        for index, name in enumerate(ODD_NAMES):
            if (number + index) % 4 != 3:  # every name is missing from some items
                item[name] = "match" if (number + index) % 3 == 0 else f"v{number}-{index}"
        items.append(item)
    return items


@pytest.fixture(scope="module")
def odd_names_table(dynalite_client: Any) -> tuple[str, list[dict[str, Any]]]:
    name = unique_table_name("matrix-names")
    create_table(dynalite_client, name, hash_key=ODD_KEY)
    items = odd_items()
    put_items(dynalite_client, name, items)
    return name, items


# ---------------------------------------------------------------------------------------------------------------
# Missing table
# ---------------------------------------------------------------------------------------------------------------

#: The operators and the segment planner look the table up first (DescribeTable); the hook's scans just scan.
DESCRIBED = "Requested resource not found: Table: {table} not found"
SCANNED = "Requested resource not found"
MISSING_TABLE_CALLS: dict[str, tuple[Callable[[str, Path], Any], str]] = {
    "export-whole-table": (lambda name, out: export(name, out), DESCRIBED),
    "export-segment": (lambda name, out: export(name, out, segment=1, total_segments=4), DESCRIBED),
    "hook-scan": (lambda name, out: list(DynamoDBScanHook().scan(name)), SCANNED),
    "hook-parallel-scan": (lambda name, out: list(DynamoDBScanHook().parallel_scan(name, total_segments=4)), SCANNED),
    "hook-parallel-scan-planned": (lambda name, out: list(DynamoDBScanHook().parallel_scan(name)), DESCRIBED),
    "hook-scan-segment": (lambda name, out: list(DynamoDBScanHook().scan_segment(name, 1, 2)), SCANNED),
    "hook-count": (lambda name, out: DynamoDBScanHook().count(name, total_segments=3), SCANNED),
    "transform": (lambda name, out: transform(name, lambda item: item), DESCRIBED),
    "plan-export-segments-auto": (lambda name, out: plan_export_segments(name, "auto"), DESCRIBED),
    "plan-export-segments-fixed": (lambda name, out: plan_export_segments(name, 4), DESCRIBED),
}


@pytest.mark.parametrize(
    ("call", "dynamodb_message"), list(MISSING_TABLE_CALLS.values()), ids=list(MISSING_TABLE_CALLS)
)
def test_missing_table_is_named_and_nothing_is_written(
    call: Callable[[str, Path], Any], dynamodb_message: str, dynalite_endpoint: str, tmp_path: Path
) -> None:
    missing = unique_table_name("no-such-table")
    error = raised(lambda: call(missing, tmp_path / "out"), TableNotFoundError)
    assert str(error) == (
        f"Table {missing!r} was not found (region 'us-east-1', endpoint {dynalite_endpoint!r}): "
        + dynamodb_message.format(table=missing)
    )
    assert files_at(tmp_path) == {}


def test_missing_target_table_of_a_transform_is_named_and_the_source_is_unchanged(
    small_table: str, dynalite_client: Any, dynalite_endpoint: str
) -> None:
    missing = unique_table_name("no-such-target")
    error = raised(lambda: transform(small_table, lambda item: item, target_table_name=missing), TableNotFoundError)
    assert str(error) == (
        f"Table {missing!r} was not found (region 'us-east-1', endpoint {dynalite_endpoint!r}): "
        + DESCRIBED.format(table=missing)
    )
    assert read_table(dynalite_client, small_table) == by_key(small_items())


# ---------------------------------------------------------------------------------------------------------------
# Segments, workers and other parameters of the export operator
# ---------------------------------------------------------------------------------------------------------------


def total_segments_message(value: Any) -> str:
    return f"total_segments={value!r} is not allowed; it must be an integer from 1 to 1,000,000."


def segment_message(value: Any, total: int) -> str:
    return f"segment={value!r} is not allowed with total_segments={total}; it must be an integer from 0 to {total - 1}."


SEGMENT_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "segment-without-total": (
        {"segment": 1},
        "segment=1 needs total_segments, which is None; give both (one task per segment, e.g. "
        ".partial(total_segments=4).expand(segment=[0, 1, 2, 3])) or neither.",
    ),
    "segment-equal-to-total": ({"segment": 4, "total_segments": 4}, segment_message(4, 4)),
    "segment-above-total": ({"segment": 7, "total_segments": 4}, segment_message(7, 4)),
    "segment-negative": ({"segment": -1, "total_segments": 4}, segment_message(-1, 4)),
    "segment-text": ({"segment": "1", "total_segments": 4}, segment_message("1", 4)),
    "segment-float": ({"segment": 1.0, "total_segments": 4}, segment_message(1.0, 4)),
    "segment-bool": ({"segment": True, "total_segments": 4}, segment_message(True, 4)),
    "total-zero-whole-table": ({"total_segments": 0}, total_segments_message(0)),
    "total-zero-with-segment": ({"segment": 0, "total_segments": 0}, total_segments_message(0)),
    "total-negative": ({"total_segments": -3}, total_segments_message(-3)),
    "total-above-1000000": ({"total_segments": 1_000_001}, total_segments_message(1_000_001)),
    "total-above-1000000-with-segment": (
        {"segment": 0, "total_segments": 1_000_001},
        total_segments_message(1_000_001),
    ),
    "total-text": ({"segment": 0, "total_segments": "4"}, total_segments_message("4")),
    "total-float": ({"total_segments": 2.5}, total_segments_message(2.5)),
    "max-workers-zero": ({"max_workers": 0}, "max_workers=0 is not allowed; it must be an integer >= 1."),
    "max-workers-text": ({"max_workers": "2"}, "max_workers='2' is not allowed; it must be an integer >= 1."),
}


@pytest.mark.parametrize(("kwargs", "message"), list(SEGMENT_CASES.values()), ids=list(SEGMENT_CASES))
def test_export_refuses_bad_segment_arguments(
    small_table: str, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    error = raised(lambda: export(small_table, tmp_path / "out", **kwargs), InvalidScanArgumentError)
    assert str(error) == f"Table {small_table!r}: {message}"
    assert files_at(tmp_path) == {}


def test_transform_refuses_bad_segment_arguments_and_leaves_the_table(small_table: str, dynalite_client: Any) -> None:
    error = raised(
        lambda: transform(small_table, lambda item: {**item, "status": "x"}, segment=2, total_segments=2),
        InvalidScanArgumentError,
    )
    assert str(error) == f"Table {small_table!r}: {segment_message(2, 2)}"
    assert read_table(dynalite_client, small_table) == by_key(small_items())


HOOK_SEGMENT_CASES: dict[str, tuple[Callable[[DynamoDBScanHook, str], Any], str]] = {
    "scan-segment-equal-to-total": (lambda hook, name: hook.scan_segment(name, 4, 4), segment_message(4, 4)),
    "scan-segment-without-total": (
        lambda hook, name: hook.scan_segment_pages(name, 1, None),
        total_segments_message(None),
    ),
    "parallel-scan-total-zero": (
        lambda hook, name: hook.parallel_scan(name, total_segments=0),
        total_segments_message(0),
    ),
    "parallel-scan-total-above-1000000": (
        lambda hook, name: hook.parallel_scan(name, total_segments=1_000_001),
        total_segments_message(1_000_001),
    ),
    "parallel-scan-pages-total-text": (
        lambda hook, name: hook.parallel_scan_pages(name, total_segments="8"),  # type: ignore[arg-type]
        total_segments_message("8"),
    ),
    "count-total-zero": (lambda hook, name: hook.count(name, total_segments=0), total_segments_message(0)),
    "parallel-scan-max-workers-zero": (
        lambda hook, name: hook.parallel_scan(name, total_segments=2, max_workers=0),
        "max_workers=0 is not allowed; it must be an integer >= 1.",
    ),
}


@pytest.mark.parametrize(("call", "message"), list(HOOK_SEGMENT_CASES.values()), ids=list(HOOK_SEGMENT_CASES))
def test_hook_refuses_bad_segment_arguments_before_any_request(
    small_table: str, call: Callable[[DynamoDBScanHook, str], Any], message: str
) -> None:
    # Raised when the scan is set up, before the first item is asked for: no request reaches DynamoDB.
    error = raised(lambda: call(DynamoDBScanHook(), small_table), InvalidScanArgumentError)
    assert str(error) == f"Table {small_table!r}: {message}"


@pytest.mark.parametrize(
    ("total_segments", "message"),
    [
        ("0", total_segments_message(0)),
        ("-1", total_segments_message("-1")),
        ("many", total_segments_message("many")),
        (1_000_001, total_segments_message(1_000_001)),
    ],
    ids=["text-zero", "text-negative", "text", "above-1000000"],
)
def test_plan_export_segments_refuses_bad_counts(small_table: str, total_segments: Any, message: str) -> None:
    error = raised(lambda: plan_export_segments(small_table, total_segments), InvalidScanArgumentError)
    assert str(error) == f"Table {small_table!r}: {message}"


# ---------------------------------------------------------------------------------------------------------------
# File format, compression, columns, part size
# ---------------------------------------------------------------------------------------------------------------

TEXT_COMPRESSIONS = "None (or 'none'), 'gzip'"
PARQUET_COMPRESSIONS = "'snappy' (the default, also for None), 'zstd', 'gzip', 'none'"
FORMAT_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "format-unknown": (
        {"file_format": "xml"},
        "Table {table!r}: file_format='xml' is not allowed; allowed: jsonl, dynamodb_json, csv, parquet.",
    ),
    "format-upper-case": (
        {"file_format": "JSONL"},
        "Table {table!r}: file_format='JSONL' is not allowed; allowed: jsonl, dynamodb_json, csv, parquet.",
    ),
    "format-none": (
        {"file_format": None},
        "Table {table!r}: file_format=None is not allowed; allowed: jsonl, dynamodb_json, csv, parquet.",
    ),
    "compression-unknown-jsonl": (
        {"compression": "bz2"},
        f"Table {{table!r}}: compression='bz2' is not allowed with file_format='jsonl'; allowed: {TEXT_COMPRESSIONS}.",
    ),
    "compression-parquet-only-with-csv": (
        {"file_format": "csv", "compression": "snappy"},
        f"Table {{table!r}}: compression='snappy' is not allowed with file_format='csv'; allowed: {TEXT_COMPRESSIONS}.",
    ),
    "compression-unknown-dynamodb-json": (
        {"file_format": "dynamodb_json", "compression": "zstd"},
        "Table {table!r}: compression='zstd' is not allowed with file_format='dynamodb_json'; "
        f"allowed: {TEXT_COMPRESSIONS}.",
    ),
    "compression-unknown-parquet": (
        {"file_format": "parquet", "compression": "lz4"},
        f"Table {{table!r}}: compression='lz4' is not allowed with file_format='parquet'; "
        f"allowed: {PARQUET_COMPRESSIONS}.",
    ),
    "columns-with-jsonl": (
        {"columns": ["pk"]},
        "columns=['pk'] is not allowed with file_format='jsonl'; it applies to csv and parquet only "
        "(use a ProjectionExpression to choose attributes).",
    ),
    "columns-empty": (
        {"file_format": "csv", "columns": []},
        "columns=[] is not allowed; it must be a non-empty list of attribute names.",
    ),
    "columns-duplicated": (
        {"file_format": "parquet", "columns": ["pk", "status", "pk"]},
        "columns=['pk', 'status', 'pk'] is not allowed; it names ['pk'] more than once.",
    ),
    "max-file-bytes-zero": (
        {"max_file_bytes": 0},
        "max_file_bytes=0 is not allowed; it must be None or an integer >= 1.",
    ),
}


@pytest.mark.parametrize(("kwargs", "message"), list(FORMAT_CASES.values()), ids=list(FORMAT_CASES))
def test_export_refuses_bad_format_arguments(
    small_table: str, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    error = raised(lambda: export(small_table, tmp_path / "out", **kwargs), InvalidScanArgumentError)
    assert str(error) == message.format(table=small_table)
    assert files_at(tmp_path) == {}


# ---------------------------------------------------------------------------------------------------------------
# Scan keywords: expressions DynamoDB rejects, keywords the scanner owns, malformed keywords
# ---------------------------------------------------------------------------------------------------------------

EXPRESSION_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "value-not-defined": (
        {"FilterExpression": "pk = :missing"},
        "Invalid FilterExpression: An expression attribute value used in expression is not defined; "
        "attribute value: :missing",
    ),
    # dynalite's wording of a syntax error; DynamoDB's differs ("Syntax error; token: ..."): either is surfaced as is.
    "syntax-error": (
        {"FilterExpression": "pk ==== :v", "ExpressionAttributeValues": {":v": {"S": "t#1"}}},
        'Invalid FilterExpression: Syntax error; Expected "#", "(", ":", "_", or [a-zA-Z] but "=" found.',
    ),
    "value-unused": (
        {
            "FilterExpression": "pk = :v",
            "ExpressionAttributeValues": {":v": {"S": "t#1"}, ":x": {"S": "unused"}},
        },
        "Value provided in ExpressionAttributeValues unused in expressions: keys: {:x}",
    ),
    "name-not-defined": (
        {"FilterExpression": "#n = :v", "ExpressionAttributeValues": {":v": {"S": "new"}}},
        "Invalid FilterExpression: An expression attribute name used in the document path is not defined; "
        "attribute name: #n",
    ),
    "values-without-expression": (
        {"ExpressionAttributeValues": {":v": {"S": "new"}}},
        "ExpressionAttributeValues can only be specified when using expressions: FilterExpression is null",
    ),
}

SCAN_CALLERS: dict[str, Callable[[str, Path, dict[str, Any]], Any]] = {
    "export-whole-table": lambda name, out, scan_kwargs: export(
        name, out, scan_kwargs=scan_kwargs, total_segments=3, max_workers=3
    ),
    "export-segment": lambda name, out, scan_kwargs: export(
        name, out, scan_kwargs=scan_kwargs, segment=1, total_segments=3, file_format="parquet"
    ),
    "transform": lambda name, out, scan_kwargs: transform(
        name, lambda item: {**item, "status": "changed"}, scan_kwargs=scan_kwargs
    ),
    "hook-scan": lambda name, out, scan_kwargs: list(DynamoDBScanHook().scan(name, **scan_kwargs)),
    "hook-count": lambda name, out, scan_kwargs: DynamoDBScanHook().count(name, total_segments=2, **scan_kwargs),
}


def caller_cases(cases: dict[str, Any], others: dict[str, str]) -> list[Any]:
    """Every case through a whole-table export, and the case ``others[caller]`` through each other caller."""
    combinations = [("export-whole-table", case) for case in cases] + list(others.items())
    return [pytest.param(caller, *cases[case], id=f"{caller}-{case}") for caller, case in combinations]


@pytest.mark.parametrize(
    ("caller", "scan_kwargs", "dynamodb_message"),
    caller_cases(
        EXPRESSION_CASES,
        {
            "export-segment": "value-not-defined",
            "transform": "syntax-error",
            "hook-scan": "value-unused",
            "hook-count": "name-not-defined",
        },
    ),
)
def test_invalid_expression_surfaces_dynamodb_message(
    small_table: str,
    dynalite_client: Any,
    tmp_path: Path,
    caller: str,
    scan_kwargs: dict[str, Any],
    dynamodb_message: str,
) -> None:
    error = raised(lambda: SCAN_CALLERS[caller](small_table, tmp_path / "out", scan_kwargs), ScanRequestError)
    assert str(error) == f"Table {small_table!r}: DynamoDB rejected the request: {dynamodb_message}"
    assert isinstance(error.__cause__, ClientError)
    assert error.__cause__.response["Error"]["Code"] == "ValidationException"
    assert files_at(tmp_path) == {}
    assert read_table(dynalite_client, small_table) == by_key(small_items())


HOOK_OWNED_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "TableName": ({"TableName": "another-table"}, "TableName"),
    "Segment": ({"Segment": 0}, "Segment"),
    "TotalSegments": ({"TotalSegments": 2}, "TotalSegments"),
    "ExclusiveStartKey": ({"ExclusiveStartKey": {"pk": {"S": "t#1"}}}, "ExclusiveStartKey"),
    "several": ({"TotalSegments": 2, "Segment": 0, "TableName": "x", "Limit": 1}, "Segment, TableName, TotalSegments"),
}


@pytest.mark.parametrize(
    ("caller", "scan_kwargs", "named"),
    caller_cases(
        HOOK_OWNED_CASES,
        {
            "export-segment": "ExclusiveStartKey",
            "transform": "Segment",
            "hook-scan": "TableName",
            "hook-count": "several",
        },
    ),
)
def test_hook_owned_scan_keywords_are_refused(
    small_table: str,
    dynalite_client: Any,
    tmp_path: Path,
    caller: str,
    scan_kwargs: dict[str, Any],
    named: str,
) -> None:
    error = raised(lambda: SCAN_CALLERS[caller](small_table, tmp_path / "out", scan_kwargs), InvalidScanArgumentError)
    assert str(error) == f"Table {small_table!r}: scan keyword(s) {named} {HOOK_OWNED_HINT}parameters instead."
    assert files_at(tmp_path) == {}
    assert read_table(dynalite_client, small_table) == by_key(small_items())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda hook, name: hook.count(name, Select="COUNT"),
            f"scan keyword(s) Select {HOOK_OWNED_HINT}parameters instead.",
        ),
        (
            lambda hook, name: hook.count(name, total_segments=2, Select="ALL_ATTRIBUTES"),
            f"scan keyword(s) Select {HOOK_OWNED_HINT}parameters instead.",
        ),
        (
            lambda hook, name: hook.scan(name, Select="COUNT"),
            "Select='COUNT' returns no items; call count() to count them.",
        ),
        (
            lambda hook, name: hook.parallel_scan(name, total_segments=2, Select="COUNT"),
            "Select='COUNT' returns no items; call count() to count them.",
        ),
    ],
    ids=["count-select-count", "count-select-all", "scan-select-count", "parallel-scan-select-count"],
)
def test_hook_refuses_select_where_it_owns_or_defeats_it(
    small_table: str, call: Callable[[DynamoDBScanHook, str], Any], message: str
) -> None:
    error = raised(lambda: call(DynamoDBScanHook(), small_table), InvalidScanArgumentError)
    assert str(error) == f"Table {small_table!r}: {message}"


SELECT_COUNT_MESSAGE = "Select='COUNT' returns no items; call count() to count them."


@pytest.mark.parametrize("segment", [None, 0], ids=["whole-table", "segment"])
def test_export_refuses_select_count(small_table: str, tmp_path: Path, segment: int | None) -> None:
    segments = {} if segment is None else {"segment": segment, "total_segments": 1}
    error = raised(
        lambda: export(small_table, tmp_path / "out", scan_kwargs={"Select": "COUNT"}, **segments),
        InvalidScanArgumentError,
    )
    assert str(error) == f"Table {small_table!r}: {SELECT_COUNT_MESSAGE}"
    assert files_at(tmp_path) == {}


def test_transform_into_another_table_refuses_select_count(small_table: str, dynalite_client: Any) -> None:
    target = unique_table_name("matrix-copy")
    create_table(dynalite_client, target)
    error = raised(
        lambda: transform(small_table, lambda item: item, target_table_name=target, scan_kwargs={"Select": "COUNT"}),
        InvalidScanArgumentError,
    )
    assert str(error) == f"Table {small_table!r}: {SELECT_COUNT_MESSAGE}"
    assert read_table(dynalite_client, target) == {}


def test_in_place_transform_refuses_select(small_table: str, dynalite_client: Any) -> None:
    error = raised(
        lambda: transform(small_table, lambda item: item, scan_kwargs={"Select": "SPECIFIC_ATTRIBUTES"}),
        InvalidScanArgumentError,
    )
    assert str(error) == (
        f"Table {small_table!r}: scan keyword(s) Select read partial items or an index, and writing those back in "
        "place would drop attributes; they are not allowed when the target is the scanned table. Allowed: "
        "FilterExpression, ExpressionAttributeNames, ExpressionAttributeValues, ConsistentRead, Limit, "
        "ReturnConsumedCapacity, Select='ALL_ATTRIBUTES'; or write to another table."
    )
    assert read_table(dynalite_client, small_table) == by_key(small_items())


def test_misspelt_scan_keyword_names_the_allowed_keywords(small_table: str, tmp_path: Path) -> None:
    error = raised(
        lambda: export(small_table, tmp_path / "out", scan_kwargs={"FilterExpresion": "pk = :v"}),
        InvalidScanArgumentError,
    )
    assert str(error) == (
        f"Table {small_table!r}: 'FilterExpresion' is not a Scan keyword. Did you mean 'FilterExpression'? Allowed "
        "in scan_kwargs: AttributesToGet, ConditionalOperator, ConsistentRead, ExpressionAttributeNames, "
        "ExpressionAttributeValues, FilterExpression, IndexName, Limit, ProjectionExpression, "
        "ReturnConsumedCapacity, ScanFilter, Select."
    )
    assert files_at(tmp_path) == {}


@pytest.mark.parametrize(
    ("scan_kwargs", "type_name"),
    [('{"Limit": 10}', "str"), ([("Limit", 10)], "list")],
    ids=["rendered-json-text", "list-of-pairs"],
)
def test_scan_kwargs_that_are_not_a_dict_are_refused(
    small_table: str, tmp_path: Path, scan_kwargs: Any, type_name: str
) -> None:
    error = raised(lambda: export(small_table, tmp_path / "out", scan_kwargs=scan_kwargs), InvalidScanArgumentError)
    assert str(error) == f"Table {small_table!r}: scan_kwargs must be a dict of Scan keywords; got a {type_name}."
    assert files_at(tmp_path) == {}


# ---------------------------------------------------------------------------------------------------------------
# Local destinations
# ---------------------------------------------------------------------------------------------------------------

BLOCKER = b"a regular file, not a directory\n"


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_destination_under_a_regular_file_is_a_clear_error(small_table: str, tmp_path: Path, as_uri: bool) -> None:
    # As root, permissions deny nothing; a regular file where a directory must be is refused for every user.
    (tmp_path / "blocker").write_bytes(BLOCKER)
    target = tmp_path / "blocker" / "export"
    destination = f"file://{target}" if as_uri else str(target)
    error = raised(lambda: export(small_table, destination), DestinationError)
    assert str(error) == (
        f"Destination {str(target)!r}: cannot list its files: Not a directory "
        f"([Errno 20] Not a directory: {str(target)!r})."
    )
    assert files_at(tmp_path) == {"blocker": BLOCKER}


def test_destination_that_is_a_regular_file_is_refused(small_table: str, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(BLOCKER)
    error = raised(lambda: export(small_table, tmp_path / "blocker"), DestinationError)
    assert str(error) == f"Destination {str(tmp_path / 'blocker')!r} exists and is not a directory."
    assert files_at(tmp_path) == {"blocker": BLOCKER}


def test_manifest_to_a_destination_under_a_regular_file_is_a_clear_error(small_table: str, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(BLOCKER)
    target = tmp_path / "blocker" / "export"
    result = {
        "table_name": small_table,
        "segment": 0,
        "total_segments": 1,
        "items": 0,
        "bytes": 0,
        "parts": [],
        "destination": str(target),
        "file_format": "jsonl",
        "compression": None,
    }
    error = raised(lambda: commit([result]), DestinationError)
    assert str(error) == (
        f"Destination {str(target)!r}: cannot list its files: Not a directory "
        f"([Errno 20] Not a directory: {str(target)!r})."
    )
    assert files_at(tmp_path) == {"blocker": BLOCKER}


@pytest.mark.parametrize(
    ("destination", "reason"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("ftp://host/exports", "the scheme 'ftp' is not supported"),
        ("file://otherhost/exports", "file:// URIs name no host other than localhost, not 'otherhost'"),
        ("s3://bad_bucket!/exports", "'bad_bucket!' is not a bucket name"),
        ("s3://bucket/exports/../other", "the key prefix has a '.' or '..' part"),
    ],
    ids=["empty", "blank", "scheme", "file-host", "bucket-name", "dot-dot"],
)
def test_malformed_destination_is_refused(small_table: str, tmp_path: Path, destination: str, reason: str) -> None:
    error = raised(lambda: export(small_table, destination), InvalidScanArgumentError)
    assert str(error) == f"destination={destination!r} is not allowed: {reason}; allowed: {ALLOWED_DESTINATIONS}."
    assert files_at(tmp_path) == {}


# ---------------------------------------------------------------------------------------------------------------
# A destination that already holds a complete export
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def complete_export(small_table: str, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A finished whole-table jsonl export of the small table (a part and the manifest), and its files."""
    destination = tmp_path / "export"
    commit([export(small_table, destination)])
    files = files_at(destination)
    assert sorted(files) == [MANIFEST_NAME, "segment-00000-of-00001/part-00000.jsonl"]
    return destination, files


def complete_export_message(table: str, destination: Path) -> str:
    return (
        f"Table {table!r}: destination {destination} already holds a complete export of table {table!r} as jsonl, "
        "1 segment (manifest.json is there); choose another destination or pass overwrite=True to replace it."
    )


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"segment": 0, "total_segments": 2}, {"file_format": "csv"}],
    ids=["same-export", "mapped-segment", "other-format"],
)
def test_complete_export_is_not_overwritten_without_overwrite(
    small_table: str, complete_export: tuple[Path, dict[str, bytes]], kwargs: dict[str, Any]
) -> None:
    destination, before = complete_export
    error = raised(lambda: export(small_table, destination, **kwargs), DestinationError)
    assert str(error) == complete_export_message(small_table, destination)
    assert files_at(destination) == before


def test_overwrite_replaces_a_complete_export(small_table: str, complete_export: tuple[Path, dict[str, bytes]]) -> None:
    destination, _ = complete_export
    result = export(small_table, destination, overwrite=True, file_format="csv")
    summary = commit([result])
    files = files_at(destination)
    assert sorted(files) == [MANIFEST_NAME, "segment-00000-of-00001/part-00000.csv"]
    header, rows = read_csv_rows(files["segment-00000-of-00001/part-00000.csv"])
    assert header == ["amount", "pk", "status", "_extra"]
    assert sorted(rows, key=lambda row: row["pk"]) == [
        {"amount": str(item["amount"]), "pk": item["pk"], "status": item["status"], "_extra": ""}
        for item in small_items()
    ]
    manifest = json.loads(files[MANIFEST_NAME])
    assert (manifest["file_format"], manifest["items"], summary["items"]) == ("csv", 4, 4)
    assert [part["path"] for part in manifest["segments"][0]["parts"]] == ["segment-00000-of-00001/part-00000.csv"]


def test_overwrite_does_not_leave_a_manifest_that_lists_deleted_parts(
    small_table: str, complete_export: tuple[Path, dict[str, bytes]]
) -> None:
    destination, _ = complete_export
    export(small_table, destination, overwrite=True, file_format="csv")
    # The export is not complete again until the manifest task commits it: no manifest may claim otherwise. Its
    # marker names it as the destination's owner until then.
    assert sorted(files_at(destination)) == ["_export.json", "segment-00000-of-00001/part-00000.csv"]


def test_failed_overwrite_leaves_the_complete_export_as_it_was(
    small_table: str, complete_export: tuple[Path, dict[str, bytes]]
) -> None:
    destination, before = complete_export
    error = raised(
        lambda: export(small_table, destination, overwrite=True, scan_kwargs={"FilterExpression": "pk = :missing"}),
        ScanRequestError,
    )
    assert str(error).endswith("attribute value: :missing")
    assert files_at(destination) == before


# ---------------------------------------------------------------------------------------------------------------
# Transforms that raise, return something that is not an item, or change a key
# ---------------------------------------------------------------------------------------------------------------

FAILING_KEY = "t#2"


def on_failing_item(result: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """A transform that returns every item unchanged (nothing to write) except ``FAILING_KEY``'s."""

    def function(item: dict[str, Any]) -> Any:
        return result(item) if item["pk"] == FAILING_KEY else item

    return function


def fail(item: dict[str, Any]) -> Any:
    raise ValueError("cannot normalise this order")


NOTHING_WRITTEN = "0 item(s) had been written to table {table!r} (every item transformed before it)."
TRANSFORM_CASES: dict[str, tuple[Callable[[dict[str, Any]], Any], dict[str, Any], str]] = {
    "returns-list": (
        lambda item: [item],
        {},
        "the transform returned a list for the item with key pk='t#2'; it must return a dict (the item to write) "
        "or None (leave the item alone). " + NOTHING_WRITTEN,
    ),
    "returns-text": (
        lambda item: "t#2",
        {},
        "the transform returned a str for the item with key pk='t#2'; it must return a dict (the item to write) "
        "or None (leave the item alone). " + NOTHING_WRITTEN,
    ),
    "returns-true": (
        lambda item: True,
        {},
        "the transform returned a bool for the item with key pk='t#2'; it must return a dict (the item to write) "
        "or None (leave the item alone). " + NOTHING_WRITTEN,
    ),
    "raises": (fail, {}, "the transform raised ValueError on the item with key pk='t#2'. " + NOTHING_WRITTEN),
    "raises-in-dry-run": (
        fail,
        {"dry_run": True},
        "the transform raised ValueError on the item with key pk='t#2'. Dry run: nothing was written.",
    ),
    "changes-the-key": (
        lambda item: {**item, "pk": "t#2-renamed"},
        {},
        "the transform changed the key attribute 'pk' of the item with key pk='t#2' (new key pk='t#2-renamed'); "
        "written in place, that would add a second item instead of replacing this one. Keep the key, write to "
        "another table (target_table_name), or pass allow_key_change=True to write the new item and delete the "
        "old one. " + NOTHING_WRITTEN,
    ),
    "drops-the-key": (
        lambda item: {"status": "done"},
        {},
        "the transform's result for the item with key pk='t#2' lacks the key attribute 'pk'; items of table "
        "{table!r} need the key attributes pk. " + NOTHING_WRITTEN,
    ),
    "key-of-wrong-type": (
        lambda item: {**item, "pk": True},
        {},
        "the transform's result for the item with key pk='t#2' has a key attribute 'pk' of type bool; key "
        "attributes must be str, int, decimal.Decimal or bytes. " + NOTHING_WRITTEN,
    ),
    "float-value": (
        lambda item: {**item, "amount": 2.5},
        {},
        "attribute 'amount' of the transform's result for the item with key pk='t#2' holds a float; DynamoDB "
        "numbers must be int or decimal.Decimal: use Decimal(str(value)). " + NOTHING_WRITTEN,
    ),
}


TRANSFORM_CASES["raises-in-a-mapped-segment"] = (
    fail,
    {"segment": 0, "total_segments": 1},
    TRANSFORM_CASES["raises"][2],
)


@pytest.mark.parametrize(("result", "kwargs", "message"), list(TRANSFORM_CASES.values()), ids=list(TRANSFORM_CASES))
def test_failing_transform_names_the_item_key_and_writes_nothing(
    small_table: str,
    dynalite_client: Any,
    result: Callable[[dict[str, Any]], Any],
    kwargs: dict[str, Any],
    message: str,
) -> None:
    error = raised(lambda: transform(small_table, on_failing_item(result), **kwargs), TransformError)
    assert str(error) == f"Table {small_table!r}: " + message.format(table=small_table)
    if result is fail:
        # The chained cause leads to the line of the transform that raised.
        assert error.__cause__ is not None
        assert traceback.extract_tb(error.__cause__.__traceback__)[-1].name == "fail"
    assert read_table(dynalite_client, small_table) == by_key(small_items())


def test_transform_that_is_not_callable_is_refused(small_table: str) -> None:
    error = raised(lambda: transform(small_table, "str.upper"), TypeError)
    assert str(error) == (
        f"Table {small_table!r}: transform must be a callable taking an item (dict) and returning a dict or None; "
        "got a str."
    )


# ---------------------------------------------------------------------------------------------------------------
# Valid edge cases: an empty table, items at the 400 KB limit, attribute names that need placeholders
# ---------------------------------------------------------------------------------------------------------------

EMPTY_PARTS = {
    ("jsonl", None): "part-00000.jsonl",
    ("jsonl", "gzip"): "part-00000.jsonl.gz",
    ("dynamodb_json", None): "part-00000.json",
    ("csv", None): "part-00000.csv",
    ("parquet", None): "part-00000.parquet",
}


@pytest.mark.parametrize(("file_format", "compression"), list(EMPTY_PARTS), ids=[f"{f}-{c}" for f, c in EMPTY_PARTS])
def test_empty_table_gives_an_empty_export_with_a_manifest(
    empty_export_table: str, tmp_path: Path, file_format: str, compression: str | None
) -> None:
    result = export(empty_export_table, tmp_path, file_format=file_format, compression=compression, total_segments=3)
    summary = commit([result])
    part = f"segment-00000-of-00001/{EMPTY_PARTS[(file_format, compression)]}"
    files = files_at(tmp_path)
    assert sorted(files) == [MANIFEST_NAME, part]
    assert (result["items"], [p["path"] for p in result["parts"]], result["parts"][0]["items"]) == (0, [part], 0)
    assert result["bytes"] == result["parts"][0]["bytes"] == len(files[part])
    if file_format == "parquet":
        table = pq.read_table(tmp_path / part)
        # The schema planned from an empty sample: the table's key attribute and the extra column.
        assert (table.num_rows, table.column_names) == (0, ["pk", "_extra"])
    elif compression == "gzip":
        assert gzip.decompress(files[part]) == (b"pk,_extra\r\n" if file_format == "csv" else b"")
    elif file_format == "csv":
        assert files[part] == b"pk,_extra\r\n"
    else:
        assert files[part] == b""
    manifest = json.loads(files[MANIFEST_NAME])
    assert (manifest["items"], manifest["part_count"], manifest["total_segments"]) == (0, 1, 1)
    assert (summary["items"], summary["parts"]) == (0, 1)


def test_empty_table_scans_and_counts_to_nothing(empty_export_table: str) -> None:
    hook = DynamoDBScanHook()
    assert list(hook.scan(empty_export_table)) == []
    assert list(hook.parallel_scan(empty_export_table, total_segments=4, max_workers=2)) == []
    assert [page.count for page in hook.scan_segment_pages(empty_export_table, None, None)] == [0]
    assert hook.count(empty_export_table) == hook.count(empty_export_table, total_segments=3) == 0


def test_items_at_the_size_limit_scan_exactly(largest_items_table: tuple[str, list[dict[str, Any]]]) -> None:
    name, items = largest_items_table
    hook = DynamoDBScanHook()
    assert by_key(list(hook.scan(name))) == by_key(items)
    assert by_key(list(hook.parallel_scan(name, total_segments=2, max_workers=2))) == by_key(items)
    assert by_key(list(DynamoDBScanHook(fast_decoding=False).scan(name))) == by_key(items)
    # One item a page: each page is resumed from the LastEvaluatedKey of a page holding a 400 KB item.
    pages = list(hook.scan_segment_pages(name, None, None, Limit=1))
    assert [len(page.items) for page in pages][:4] == [1, 1, 1, 1]
    assert by_key([item for page in pages for item in page.items]) == by_key(items)


def expected_rows(items: list[dict[str, Any]], file_format: str, key: str = "pk") -> dict[Any, dict[str, Any]]:
    """What :func:`exported_items` reads back for ``items``, by key."""
    columns = sorted({name for item in items for name in item})
    if file_format == "jsonl":
        rows = [{name: json_view(value) for name, value in item.items()} for item in items]
    elif file_format == "csv":
        rows = [{name: csv_cell(item.get(name)) for name in columns} for item in items]
    elif file_format == "parquet":
        # Integral numbers become an int64 column; everything else here is a string or binary column.
        rows = [
            {name: int(value) if isinstance(value := item.get(name), Decimal) else value for name in columns}
            for item in items
        ]
    else:
        rows = items
    return by_key(rows, key)


@pytest.mark.parametrize(
    ("file_format", "compression"),
    [("jsonl", None), ("jsonl", "gzip"), ("dynamodb_json", "gzip"), ("csv", None), ("parquet", "zstd")],
    ids=["jsonl", "jsonl-gzip", "dynamodb_json-gzip", "csv", "parquet-zstd"],
)
def test_items_at_the_size_limit_export_exactly(
    largest_items_table: tuple[str, list[dict[str, Any]]], tmp_path: Path, file_format: str, compression: str | None
) -> None:
    name, items = largest_items_table
    # One item a page, and a new part once a part holds 300 KB: the items spread over several parts.
    result = export(
        name,
        tmp_path,
        file_format=file_format,
        compression=compression,
        total_segments=2,
        max_file_bytes=300_000,
        scan_kwargs={"Limit": 1},
    )
    assert len(result["parts"]) >= 2
    assert result["items"] == len(items) == sum(part["items"] for part in result["parts"])
    # The parts, and the export's marker until a manifest commits it.
    assert sorted(files_at(tmp_path)) == sorted(["_export.json", *(part["path"] for part in result["parts"])])
    assert [part["bytes"] for part in result["parts"]] == [
        (tmp_path / part["path"]).stat().st_size for part in result["parts"]
    ]
    read = exported_items(tmp_path, result, file_format, compression)
    assert by_key(read) == expected_rows(items, file_format)


def test_odd_attribute_names_scan_and_filter_exactly(odd_names_table: tuple[str, list[dict[str, Any]]]) -> None:
    name, items = odd_names_table
    hook = DynamoDBScanHook()
    assert by_key(list(hook.scan(name)), ODD_KEY) == by_key(items, ODD_KEY)
    assert by_key(list(hook.parallel_scan(name, total_segments=3, Limit=1)), ODD_KEY) == by_key(items, ODD_KEY)
    for attribute in ODD_NAMES:
        matching = [item for item in items if item.get(attribute) == "match"]
        by_value = {
            "FilterExpression": "#a = :v",
            "ExpressionAttributeNames": {"#a": attribute},
            "ExpressionAttributeValues": {":v": {"S": "match"}},
        }
        assert by_key(list(hook.scan(name, **by_value)), ODD_KEY) == by_key(matching, ODD_KEY), attribute
        assert hook.count(name, total_segments=2, **by_value) == len(matching), attribute
        present = {"FilterExpression": "attribute_exists(#a)", "ExpressionAttributeNames": {"#a": attribute}}
        assert hook.count(name, **present) == sum(1 for item in items if attribute in item), attribute


@pytest.mark.parametrize("file_format", ["jsonl", "csv", "parquet", "dynamodb_json"])
def test_odd_attribute_names_export_exactly(
    odd_names_table: tuple[str, list[dict[str, Any]]], tmp_path: Path, file_format: str
) -> None:
    name, items = odd_names_table
    # Limit=2: several pages per segment, each resumed from a LastEvaluatedKey whose attribute name is odd too.
    result = export(name, tmp_path, file_format=file_format, total_segments=2, scan_kwargs={"Limit": 2})
    # The parts, and the export's marker until a manifest commits it.
    assert sorted(files_at(tmp_path)) == sorted(["_export.json", *(part["path"] for part in result["parts"])])
    read = exported_items(tmp_path, result, file_format, None)
    assert by_key(read, ODD_KEY) == expected_rows(items, file_format, ODD_KEY)
    if file_format in ("csv", "parquet"):
        (part,) = result["parts"]
        data = (tmp_path / part["path"]).read_bytes()
        header = read_csv_rows(data)[0] if file_format == "csv" else pq.read_schema(tmp_path / part["path"]).names
        assert header == [*sorted({attribute for item in items for attribute in item}), "_extra"]


# Every name goes through ExpressionAttributeNames in test_odd_attribute_names_scan_and_filter_exactly; these two
# (all the awkward characters between them) go through a whole export, filtered and projected.
@pytest.mark.parametrize("attribute", ["a.b#c:d e", "ünïcødé 😀"])
def test_odd_attribute_names_work_through_expression_attribute_names_in_an_export(
    odd_names_table: tuple[str, list[dict[str, Any]]], tmp_path: Path, attribute: str
) -> None:
    name, items = odd_names_table
    scan_kwargs = {
        "FilterExpression": "#a = :v",
        "ProjectionExpression": "#k, #a",
        "ExpressionAttributeNames": {"#a": attribute, "#k": ODD_KEY},
        "ExpressionAttributeValues": {":v": {"S": "match"}},
    }
    expected = {
        item[ODD_KEY]: {ODD_KEY: item[ODD_KEY], attribute: "match"} for item in items if item.get(attribute) == "match"
    }
    assert expected  # every name matches some items and not others
    assert len(expected) < len(items)
    result = export(name, tmp_path, total_segments=2, scan_kwargs=scan_kwargs)
    assert by_key(exported_items(tmp_path, result, "jsonl", None), ODD_KEY) == expected
