from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from airflow_dynamoscan.exceptions import DestinationError, InvalidScanArgumentError
from airflow_dynamoscan.storage.destinations import Destination, LocalDestination, S3Destination, open_destination

BUCKET = "export-bucket"


class Boom(RuntimeError):
    pass


@pytest.fixture
def s3_client() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def s3_keys(client: Any) -> list[str]:
    return sorted(entry["Key"] for entry in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


# --- open_destination -------------------------------------------------------------------------------------------


def test_open_local_directory_and_file_uri(tmp_path: Path) -> None:
    by_path = open_destination(f"{tmp_path}/export/")
    assert isinstance(by_path, LocalDestination)
    assert by_path.uri == f"{tmp_path}/export"
    assert by_path.child_uri("segment-00000-of-00001/part-00000.jsonl") == (
        f"{tmp_path}/export/segment-00000-of-00001/part-00000.jsonl"
    )
    by_uri = open_destination(f"file://{tmp_path}/with%20space")
    assert by_uri.uri == f"{tmp_path}/with space"
    assert open_destination(f"file://localhost{tmp_path}").uri == str(tmp_path)


def test_open_relative_local_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_destination("out/dir").uri == f"{tmp_path}/out/dir"


def test_open_s3(s3_client: Any) -> None:
    destination = open_destination(f"s3://{BUCKET}/exports/orders/", s3_client=s3_client)
    assert isinstance(destination, S3Destination)
    assert destination.uri == f"s3://{BUCKET}/exports/orders"
    assert destination.child_uri("manifest.json") == f"s3://{BUCKET}/exports/orders/manifest.json"
    root = open_destination(f"s3://{BUCKET}", s3_client=s3_client)
    assert root.uri == f"s3://{BUCKET}"
    assert root.child_uri("a/b.json") == f"s3://{BUCKET}/a/b.json"


ALLOWED = "allowed: s3://bucket/prefix, a local directory path, or file:///absolute/path."


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("s3://", "'' is not a bucket name"),
        ("s3:///prefix", "'' is not a bucket name"),
        ("s3://bucket/a/../b", "the key prefix has a '.' or '..' part"),
        ("s3://bucket/./b", "the key prefix has a '.' or '..' part"),
        ("s3:bucket/prefix", "an S3 destination is written s3://bucket/prefix"),
        ("gs://bucket/prefix", "the scheme 'gs' is not supported"),
        ("http://example.com/exports", "the scheme 'http' is not supported"),
        ("file://server/share", "file:// URIs name no host other than localhost, not 'server'"),
        ("file:out/exports", "a file: URI needs an absolute path (file:///path); write a relative path without file:"),
    ],
)
def test_bad_destinations_name_the_parameter(uri: str, reason: str) -> None:
    with pytest.raises(InvalidScanArgumentError) as error:
        open_destination(uri, s3_client=object())  # type: ignore[arg-type]
    assert str(error.value) == f"destination={uri!r} is not allowed: {reason}; {ALLOWED}"


def test_s3_destination_needs_a_client() -> None:
    with pytest.raises(InvalidScanArgumentError) as error:
        open_destination("s3://bucket/prefix")
    assert str(error.value) == (
        "destination='s3://bucket/prefix' is not allowed: an s3:// destination needs an S3 client (s3_client); "
        + ALLOWED
    )


def test_local_destination_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    with pytest.raises(DestinationError) as error:
        open_destination(str(target))
    assert str(error.value) == f"Destination {str(target)!r} exists and is not a directory."


# --- shared behaviour of both destinations ------------------------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Destination]:
    if request.param == "local":
        yield open_destination(str(tmp_path / "export"))
    else:
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket=BUCKET)
            yield open_destination(f"s3://{BUCKET}/exports/run-1", s3_client=client)


def test_part_is_committed_when_the_block_ends(destination: Destination) -> None:
    with destination.open_part("seg/part-00000.jsonl") as part:
        part.write(b"first\n")
        assert not destination.exists("seg/part-00000.jsonl")
        part.write(b"second\n")
    assert destination.exists("seg/part-00000.jsonl")
    assert destination.read_bytes("seg/part-00000.jsonl") == b"first\nsecond\n"
    assert destination.list() == ["seg/part-00000.jsonl"]


def test_failed_block_leaves_nothing_and_keeps_an_older_file(destination: Destination) -> None:
    with pytest.raises(Boom), destination.open_part("seg/part-00000.jsonl") as part:
        part.write(b"half a part")
        raise Boom
    assert not destination.exists("seg/part-00000.jsonl")
    assert destination.list() == []
    destination.write_bytes("seg/part-00000.jsonl", b"committed")
    with pytest.raises(Boom), destination.open_part("seg/part-00000.jsonl") as part:
        part.write(b"replacement")
        raise Boom
    assert destination.read_bytes("seg/part-00000.jsonl") == b"committed"
    assert destination.list() == ["seg/part-00000.jsonl"]


def test_retry_overwrites(destination: Destination) -> None:
    destination.write_bytes("manifest.json", b"{}")
    destination.write_bytes("manifest.json", b'{"items": 3}')
    assert destination.read_bytes("manifest.json") == b'{"items": 3}'
    with destination.open_part("manifest.json") as part:
        part.write(b"[]")
    assert destination.read_bytes("manifest.json") == b"[]"


def test_list_is_by_text_prefix_and_delete_skips_missing(destination: Destination) -> None:
    for name in ["segment-00000-of-00002/part-00000.csv", "segment-00000-of-00002/part-00001.csv"]:
        destination.write_bytes(name, b"x")
    destination.write_bytes("segment-00001-of-00002/part-00000.csv", b"y")
    destination.write_bytes("manifest.json", b"{}")
    assert destination.list("segment-00000-of-00002/") == [
        "segment-00000-of-00002/part-00000.csv",
        "segment-00000-of-00002/part-00001.csv",
    ]
    assert destination.list("segment-") == [
        "segment-00000-of-00002/part-00000.csv",
        "segment-00000-of-00002/part-00001.csv",
        "segment-00001-of-00002/part-00000.csv",
    ]
    assert destination.list("nothing/") == []
    destination.delete(["segment-00000-of-00002/part-00000.csv", "segment-00000-of-00002/never-written.csv"])
    assert destination.list() == [
        "manifest.json",
        "segment-00000-of-00002/part-00001.csv",
        "segment-00001-of-00002/part-00000.csv",
    ]


def test_read_missing_file(destination: Destination) -> None:
    with pytest.raises(FileNotFoundError):
        destination.read_bytes("manifest.json")
    assert destination.exists("manifest.json") is False


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", "a//b", "./a", "a/", "a\\b"])
def test_bad_relative_names(destination: Destination, name: str) -> None:
    with pytest.raises(InvalidScanArgumentError, match="is not a valid file name"):
        destination.child_uri(name)
    with pytest.raises(InvalidScanArgumentError, match="is not a valid file name"):
        destination.write_bytes(name, b"x")


# --- local specifics --------------------------------------------------------------------------------------------


def test_local_part_is_written_aside_in_the_same_directory(tmp_path: Path) -> None:
    destination = open_destination(str(tmp_path))
    with destination.open_part("seg/part-00000.jsonl") as part:
        part.write(b"data")
        aside = files_under(tmp_path)
        assert len(aside) == 1
        assert aside[0].startswith("seg/.part-00000.jsonl.")
        assert aside[0].endswith(".tmp")
    assert files_under(tmp_path) == ["seg/part-00000.jsonl"]
    assert (tmp_path / "seg" / "part-00000.jsonl").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_local_interrupted_write_is_listed_so_a_retry_can_delete_it(tmp_path: Path) -> None:
    (tmp_path / "seg").mkdir()
    (tmp_path / "seg" / ".part-00000.jsonl.0123.tmp").write_bytes(b"left by a killed worker")
    destination = open_destination(str(tmp_path))
    assert destination.list("seg/") == ["seg/.part-00000.jsonl.0123.tmp"]
    destination.delete(destination.list("seg/"))
    assert files_under(tmp_path) == []


def test_unwritable_local_destination_names_it(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    destination = open_destination(str(tmp_path / "blocker" / "export"))
    with pytest.raises(DestinationError) as error:
        destination.write_bytes("seg/part-00000.jsonl", b"x")
    message = str(error.value)
    assert message.startswith(
        f"Destination '{tmp_path}/blocker/export': cannot write 'seg/part-00000.jsonl': Not a directory"
    )
    assert isinstance(error.value, OSError)
    assert isinstance(error.value.__cause__, NotADirectoryError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_local_destination_names_it(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        destination = open_destination(str(tmp_path))
        with pytest.raises(DestinationError, match=f"Destination '{tmp_path}': cannot write 'part.csv': Permission"):
            destination.write_bytes("part.csv", b"x")
    finally:
        tmp_path.chmod(0o700)


# --- S3 specifics -----------------------------------------------------------------------------------------------


def test_s3_part_is_uploaded_only_at_the_end(s3_client: Any) -> None:
    destination = open_destination(f"s3://{BUCKET}/exports", s3_client=s3_client)
    with destination.open_part("seg/part-00000.jsonl.gz") as part:
        part.write(b"x" * (9 * 1024 * 1024))  # above boto3's multipart threshold
        assert s3_keys(s3_client) == []
    assert s3_keys(s3_client) == ["exports/seg/part-00000.jsonl.gz"]
    body = s3_client.get_object(Bucket=BUCKET, Key="exports/seg/part-00000.jsonl.gz")["Body"].read()
    assert body == b"x" * (9 * 1024 * 1024)


def test_s3_failed_block_uploads_nothing(s3_client: Any) -> None:
    destination = open_destination(f"s3://{BUCKET}/exports", s3_client=s3_client)
    with pytest.raises(Boom), destination.open_part("seg/part-00000.jsonl") as part:
        part.write(b"half")
        raise Boom
    assert s3_keys(s3_client) == []


def test_s3_listing_ignores_keys_beside_the_prefix(s3_client: Any) -> None:
    s3_client.put_object(Bucket=BUCKET, Key="exports-old/seg/part-00000.jsonl", Body=b"other export")
    s3_client.put_object(Bucket=BUCKET, Key="exports/seg/part-00000.jsonl", Body=b"ours")
    destination = open_destination(f"s3://{BUCKET}/exports", s3_client=s3_client)
    assert destination.list() == ["seg/part-00000.jsonl"]
    destination.delete(destination.list())
    assert s3_keys(s3_client) == ["exports-old/seg/part-00000.jsonl"]


class RecordingS3Client:
    """Just enough of an S3 client to see how deletes are batched, and to report keys S3 refused to delete."""

    def __init__(self, refused: frozenset[str] = frozenset()) -> None:
        self.batches: list[list[str]] = []
        self.refused = refused

    def delete_objects(self, *, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:
        keys = [entry["Key"] for entry in Delete["Objects"]]
        assert Bucket == BUCKET
        assert Delete["Quiet"] is True
        self.batches.append(keys)
        return {"Errors": [{"Key": key, "Code": "AccessDenied"} for key in keys if key in self.refused]}


def test_s3_delete_in_batches_of_a_thousand() -> None:
    client = RecordingS3Client()
    destination = S3Destination(BUCKET, "many", client)  # type: ignore[arg-type]
    names = [f"seg/part-{number:05d}.json" for number in range(2005)]
    destination.delete(names)
    assert [len(batch) for batch in client.batches] == [1000, 1000, 5]
    assert [key for batch in client.batches for key in batch] == [f"many/{name}" for name in names]


def test_s3_delete_reports_refused_keys() -> None:
    client = RecordingS3Client(refused=frozenset({"many/seg/b.json"}))
    destination = S3Destination(BUCKET, "many", client)  # type: ignore[arg-type]
    with pytest.raises(DestinationError) as error:
        destination.delete(["seg/a.json", "seg/b.json"])
    assert str(error.value) == (
        f"Destination 's3://{BUCKET}/many': cannot delete 1 file(s): many/seg/b.json (AccessDenied)"
    )


def test_s3_missing_bucket_names_the_destination(s3_client: Any) -> None:
    destination = open_destination("s3://no-such-bucket/exports", s3_client=s3_client)
    with pytest.raises(DestinationError) as upload_error, destination.open_part("seg/part-00000.jsonl") as part:
        part.write(b"x")
    assert str(upload_error.value).startswith(
        "Destination 's3://no-such-bucket/exports': cannot upload 'seg/part-00000.jsonl': "
    )
    assert "NoSuchBucket" in str(upload_error.value)
    with pytest.raises(DestinationError, match=r"^Destination 's3://no-such-bucket/exports': cannot list 'seg/'"):
        destination.list("seg/")
    with pytest.raises(DestinationError, match=r"^Destination 's3://no-such-bucket/exports': cannot write 'm\.json'"):
        destination.write_bytes("m.json", b"{}")
