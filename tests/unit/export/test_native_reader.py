"""Reading DynamoDB native exports laid out as AWS documents them, from moto S3: items, change records, checks."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.export.native import (
    ChangeRecord,
    NativeDataFile,
    NativeExportError,
    batch_data_files,
    check_incremental_window,
    export_folder,
    export_id_from_arn,
    fold_changes,
    read_changes,
    read_data_files,
    read_items,
    read_summary,
    split_export_window,
    summary_key,
)
from airflow_dynamoscan.export.strategy import choose_export_method, estimate_costs
from tests.conftest import make_client
from tests.native_export_fixture import (
    FILES_FIELDS,
    FULL_SUMMARY_FIELDS,
    INCREMENTAL_SUMMARY_FIELDS,
    change_line,
    full_line,
    write_native_export,
)

BUCKET = "native-exports"

ITEMS = [
    {
        "pk": "order#1",
        "amount": Decimal("12345678901234567890.123456789"),
        "count": Decimal(3),
        "raw": b"\x00\xff",
        "tags": {"a", "b"},
        "scores": {Decimal("1.5"), Decimal(2)},
        "blobs": {b"\x01", b"\x02"},
        "flag": True,
        "nothing": None,
        "nested": {"list": [Decimal("1.10"), "x", {"deep": b"\x07"}]},
    },
    {"pk": "order#2", "amount": Decimal("-0.5"), "count": Decimal(-7), "text": "ünïcødé ✓"},
    {"pk": "order#3", "amount": Decimal(0), "count": Decimal(0)},
]


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = make_client(service="s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_fixture_follows_the_documented_layout(s3: Any) -> None:
    built = write_native_export(s3, BUCKET, "exports/orders", [[full_line(ITEMS[0])], [full_line(ITEMS[1])]])
    keys = sorted(entry["Key"] for entry in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    folder = f"exports/orders/AWSDynamoDB/{built.export_id}/"
    assert folder == export_folder("exports/orders/", built.export_id)
    assert keys == sorted(
        [f"{folder}{name}" for name in ("manifest-summary.json", "manifest-summary.md5")]
        + [f"{folder}{name}" for name in ("manifest-files.json", "manifest-files.md5")]
        + built.data_keys
    )
    assert all(key.startswith(f"{folder}data/") and key.endswith(".json.gz") for key in built.data_keys)
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key=built.summary_key)["Body"].read())
    assert tuple(summary) == FULL_SUMMARY_FIELDS
    lines = s3.get_object(Bucket=BUCKET, Key=built.files_key)["Body"].read().splitlines()
    assert [tuple(json.loads(line)) for line in lines] == [FILES_FIELDS, FILES_FIELDS]
    assert summary_key("exports/orders", built.export_arn) == built.summary_key
    assert export_id_from_arn(built.export_arn) == built.export_id
    incremental = write_native_export(s3, BUCKET, "", [[]], incremental=True)
    assert incremental.summary_key == f"AWSDynamoDB/{incremental.export_id}/manifest-summary.json"
    assert tuple(incremental.summary) == FULL_SUMMARY_FIELDS + INCREMENTAL_SUMMARY_FIELDS


def test_full_export_items_read_back_exactly(s3: Any) -> None:
    built = write_native_export(s3, BUCKET, "p", [[full_line(ITEMS[0]), full_line(ITEMS[1])], [full_line(ITEMS[2])]])
    summary = read_summary(s3, BUCKET, built.summary_key)
    assert (summary.export_arn, summary.export_type, summary.item_count, summary.incremental) == (
        built.export_arn,
        "FULL_EXPORT",
        3,
        False,
    )
    files = read_data_files(s3, summary)
    assert [(data_file.key, data_file.item_count) for data_file in files] == [
        (built.data_keys[0], 2),
        (built.data_keys[1], 1),
    ]
    items = [item for data_file in files for item in read_items(s3, BUCKET, data_file, verify_md5=True)]
    assert items == ITEMS
    client_shape = next(read_items(s3, BUCKET, files[0], deserialize=False))
    assert client_shape["raw"] == {"B": b"\x00\xff"}
    assert client_shape["amount"] == {"N": "12345678901234567890.123456789"}


def test_incremental_changes_and_fold_last_write_wins(s3: Any) -> None:
    first = [
        change_line({"pk": "a"}, 1_000, {"pk": "a", "v": Decimal(1)}),
        change_line({"pk": "b"}, 2_000, {"pk": "b", "v": Decimal(2)}),
        change_line({"pk": "c"}, 3_000, None, {"pk": "c", "v": Decimal(3)}),
    ]
    second = [
        change_line({"pk": "a"}, 5_000, None, {"pk": "a", "v": Decimal(1)}),
        change_line({"pk": "b"}, 1_500, {"pk": "b", "v": Decimal(99)}),  # older than the first file's: loses
        change_line({"pk": "d"}, 4_000, {"pk": "d", "raw": b"\x01"}, {"pk": "d", "raw": b"\x00"}),
    ]
    built = write_native_export(s3, BUCKET, "inc", [first, second], incremental=True)
    summary = read_summary(s3, BUCKET, built.summary_key)
    assert (summary.incremental, summary.output_view) == (True, "NEW_AND_OLD_IMAGES")
    records = [record for data_file in read_data_files(s3, summary) for record in read_changes(s3, BUCKET, data_file)]
    assert records[2] == ChangeRecord({"pk": "c"}, None, {"pk": "c", "v": Decimal(3)}, 3_000)
    assert records[5] == ChangeRecord({"pk": "d"}, {"pk": "d", "raw": b"\x01"}, {"pk": "d", "raw": b"\x00"}, 4_000)
    assert [record.operation for record in records] == ["upsert", "upsert", "delete", "delete", "upsert", "upsert"]
    folded = fold_changes(records)
    assert sorted(folded.upserts, key=lambda item: item["pk"]) == [
        {"pk": "b", "v": Decimal(2)},
        {"pk": "d", "raw": b"\x01"},
    ]
    assert sorted(folded.deletes, key=lambda keys: keys["pk"]) == [{"pk": "a"}, {"pk": "c"}]
    # The order of the records does not matter, only their write times.
    assert sorted(fold_changes(reversed(records)).deletes, key=lambda keys: keys["pk"]) == [{"pk": "a"}, {"pk": "c"}]


def test_item_count_mismatch_names_the_file(s3: Any) -> None:
    built = write_native_export(s3, BUCKET, "p", [[full_line(ITEMS[0]), full_line(ITEMS[1])]])
    files = read_data_files(s3, read_summary(s3, BUCKET, built.summary_key))
    wrong = NativeDataFile(key=files[0].key, item_count=3)
    with pytest.raises(NativeExportError, match=r"holds 2 records, but the manifest of files says itemCount=3"):
        list(read_items(s3, BUCKET, wrong))


def test_manifest_total_disagreeing_with_summary(s3: Any) -> None:
    built = write_native_export(s3, BUCKET, "p", [[full_line(ITEMS[0])]])
    summary = dict(built.summary, itemCount=5)
    s3.put_object(Bucket=BUCKET, Key=built.summary_key, Body=json.dumps(summary).encode())
    with pytest.raises(NativeExportError, match=r"lists 1 items in 1 files, but .* says itemCount=5"):
        read_data_files(s3, read_summary(s3, BUCKET, built.summary_key))


def test_md5_mismatch_and_damaged_gzip(s3: Any) -> None:
    built = write_native_export(s3, BUCKET, "p", [[full_line(ITEMS[0])]])
    data_file = read_data_files(s3, read_summary(s3, BUCKET, built.summary_key))[0]
    assert len(list(read_items(s3, BUCKET, data_file, verify_md5=True))) == 1
    s3.put_object(
        Bucket=BUCKET, Key=data_file.key, Body=gzip.compress(json.dumps(full_line(ITEMS[1])).encode() + b"\n")
    )
    assert list(read_items(s3, BUCKET, data_file)) == [ITEMS[1]]  # counts match; MD5 not asked for
    with pytest.raises(NativeExportError, match="MD5 does not match md5Checksum"):
        list(read_items(s3, BUCKET, data_file, verify_md5=True))
    s3.put_object(Bucket=BUCKET, Key=data_file.key, Body=b"not gzip")
    with pytest.raises(NativeExportError, match="is not a complete gzip file"):
        list(read_items(s3, BUCKET, data_file))


def test_ion_export_is_refused(s3: Any) -> None:
    built = write_native_export(s3, BUCKET, "p", [[full_line(ITEMS[0])]], output_format="ION")
    with pytest.raises(NativeExportError, match=r"is in the ION format; only DYNAMODB_JSON exports can be read"):
        read_summary(s3, BUCKET, built.summary_key)


def test_missing_manifests_and_data_files(s3: Any) -> None:
    with pytest.raises(
        NativeExportError, match=r"manifest summary s3://native-exports/p/AWSDynamoDB/x/.* does not exist"
    ):
        read_summary(s3, BUCKET, "p/AWSDynamoDB/x/manifest-summary.json")
    built = write_native_export(s3, BUCKET, "p", [[full_line(ITEMS[0])]])
    s3.delete_object(Bucket=BUCKET, Key=built.data_keys[0])
    data_file = read_data_files(s3, read_summary(s3, BUCKET, built.summary_key))[0]
    with pytest.raises(NativeExportError, match="listed in the manifest does not exist"):
        list(read_items(s3, BUCKET, data_file))
    s3.delete_object(Bucket=BUCKET, Key=built.files_key)
    with pytest.raises(NativeExportError, match=r"manifest of files .* does not exist"):
        read_data_files(s3, read_summary(s3, BUCKET, built.summary_key))


def test_full_and_incremental_lines_are_not_mixed_up(s3: Any) -> None:
    full = write_native_export(s3, BUCKET, "f", [[full_line(ITEMS[0])]])
    incremental = write_native_export(s3, BUCKET, "i", [[change_line({"pk": "a"}, 1, None)]], incremental=True)
    full_file = read_data_files(s3, read_summary(s3, BUCKET, full.summary_key))[0]
    change_file = read_data_files(s3, read_summary(s3, BUCKET, incremental.summary_key))[0]
    with pytest.raises(NativeExportError, match="is it a full export"):
        list(read_changes(s3, BUCKET, full_file))
    with pytest.raises(NativeExportError, match="is it an incremental export"):
        list(read_items(s3, BUCKET, change_file))


def test_windows_are_checked_and_split_in_order() -> None:
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    check_incremental_window(start, start + timedelta(minutes=15), table_name="orders")
    check_incremental_window(start, start + timedelta(hours=24), table_name="orders")
    with pytest.raises(InvalidScanArgumentError, match=r"Table 'orders': .* lasts 0:14:59; DynamoDB needs at least 15"):
        check_incremental_window(start, start + timedelta(minutes=14, seconds=59), table_name="orders")
    with pytest.raises(InvalidScanArgumentError, match=r"at most 24 hours\. Split it .*split_export_window"):
        check_incremental_window(start, start + timedelta(hours=24, seconds=1), table_name="orders")
    windows = split_export_window(start, "2026-11-03T12:00:00Z")
    assert windows == [
        {"export_from_time": "2026-11-01T00:00:00+00:00", "export_to_time": "2026-11-01T20:00:00+00:00"},
        {"export_from_time": "2026-11-01T20:00:00+00:00", "export_to_time": "2026-11-02T16:00:00+00:00"},
        {"export_from_time": "2026-11-02T16:00:00+00:00", "export_to_time": "2026-11-03T12:00:00+00:00"},
    ]
    assert split_export_window(start, start + timedelta(hours=24)) == [
        {"export_from_time": "2026-11-01T00:00:00+00:00", "export_to_time": "2026-11-02T00:00:00+00:00"}
    ]
    with pytest.raises(InvalidScanArgumentError, match="at least 15 minutes"):
        split_export_window(start, start + timedelta(minutes=10))


def test_batches_of_files() -> None:
    files = [NativeDataFile(key=f"k{number}", item_count=number) for number in range(5)]
    assert [[data_file.key for data_file in batch] for batch in batch_data_files(files, 2)] == [
        ["k0", "k1"],
        ["k2", "k3"],
        ["k4"],
    ]
    assert batch_data_files([], 4) == [[]]
    assert [len(batch) for batch in batch_data_files(files, 1, max_batches=2)] == [3, 2]
    assert [len(batch) for batch in batch_data_files(files, 4, max_batches=2)] == [4, 1]
    with pytest.raises(InvalidScanArgumentError, match="files_per_task=0"):
        batch_data_files(files, 0)
    with pytest.raises(InvalidScanArgumentError, match="max_batches=0"):
        batch_data_files(files, 1, max_batches=0)


def test_method_choice_and_cost_model() -> None:
    gib = 1024**3
    costs = estimate_costs(10 * gib)
    assert costs["scan_read_units"] == 10 * 1024 * 128
    assert costs["scan_usd"] == pytest.approx(10 * 1024 * 128 / 1_000_000 * 0.125)
    assert costs["native_usd"] == pytest.approx(1.0)
    assert estimate_costs(gib, consistent_read=True)["scan_read_units"] == 1024 * 256
    choose = choose_export_method
    assert choose("auto", table_name="t", table_size_bytes=2 * gib, point_in_time_recovery=True).method == "native"
    assert choose("auto", table_name="t", table_size_bytes=gib - 1, point_in_time_recovery=True).method == "scan"
    assert choose("auto", table_name="t", table_size_bytes=50 * gib, point_in_time_recovery=False).method == "scan"
    assert choose("auto", table_name="t", table_size_bytes=None, point_in_time_recovery=True).method == "scan"
    assert choose("scan", table_name="t", table_size_bytes=50 * gib, point_in_time_recovery=True).method == "scan"
    with pytest.raises(InvalidScanArgumentError, match=r"Table 't': method='native' needs point-in-time recovery"):
        choose("native", table_name="t", table_size_bytes=0, point_in_time_recovery=False)
    with pytest.raises(InvalidScanArgumentError, match=r"method='fast' is not allowed; allowed: scan, native, auto"):
        choose("fast", table_name="t", table_size_bytes=0, point_in_time_recovery=True)
