"""
The S3 cases of the bad-input matrix, with moto's in-process DynamoDB, S3 and IAM.

A missing bucket, and S3 refusing access for real: moto 5 checks IAM permissions when
``moto.core.enable_iam_authentication()`` is on, so the export runs as an IAM user whose policy allows DynamoDB and
reading the bucket but not writing to it (or nothing on S3 at all), and S3 answers AccessDenied as it would in AWS
(moto evaluates the user's policy; nothing is stubbed). Each case asserts the error message and the exact objects
in the bucket afterwards: none, or only those that were there before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws
from moto.core import enable_iam_authentication

from airflow_dynamoscan.compat import AirflowFailException
from airflow_dynamoscan.exceptions import DestinationError
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator
from devtools.sample_data import load_sample_table
from tests.conftest import make_client

TABLE = "orders"
BUCKET = "exports-bucket"
BEFORE = {"earlier/kept.txt": b"an object that was there before"}


def connection(login: str, password: str) -> str:
    return json.dumps({"conn_type": "aws", "login": login, "password": password, "extra": {"region_name": "us-east-1"}})


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto with a 5-item table, the bucket holding ``BEFORE``, and ``aws_default`` on moto's test credentials."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", connection("testing", "testing"))
    with mock_aws():
        s3 = make_client(service="s3")
        s3.create_bucket(Bucket=BUCKET)
        for key, body in BEFORE.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        load_sample_table(make_client(), TABLE, 5, padding=10)
        yield


def bucket_objects(bucket: str = BUCKET) -> dict[str, bytes]:
    s3 = make_client(service="s3")
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {entry["Key"]: s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read() for entry in listed}


def iam_user_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, actions: list[str]) -> None:
    """Create an IAM user allowed exactly ``actions`` and point the Airflow connection ``conn_id`` at its keys."""
    iam = make_client(service="iam")
    user = f"user-{conn_id}"
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="exports", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection(key["AccessKeyId"], key["SecretAccessKey"]))


def export(destination: str, **kwargs: Any) -> dict[str, Any]:
    operator = DynamoDBExportOperator(task_id="export", table_name=TABLE, destination=destination, **kwargs)
    result: dict[str, Any] = operator.execute({})  # type: ignore[arg-type]
    return result


def raised(call: Any, error_type: type[BaseException]) -> BaseException:
    with pytest.raises((error_type, AirflowFailException)) as info:
        call()
    error = info.value
    if isinstance(error, AirflowFailException):
        # An operator ends a task no retry can fix with AirflowFailException: same message, caused by the error.
        assert isinstance(error.__cause__, error_type), repr(error.__cause__)
        assert str(error) == str(error.__cause__)
    return error


@pytest.mark.usefixtures("moto_aws")
def test_missing_bucket_is_named_and_nothing_is_created() -> None:
    error = raised(lambda: export("s3://no-such-bucket/daily", segment=1, total_segments=3), DestinationError)
    # The first request is the listing that checks what the destination holds.
    assert str(error) == (
        "Destination 's3://no-such-bucket/daily': cannot list its files: the bucket 'no-such-bucket' does not exist "
        "(NoSuchBucket); create it, or give a destination in an existing bucket (destination='s3://bucket/prefix')."
    )
    assert [bucket["Name"] for bucket in make_client(service="s3").list_buckets()["Buckets"]] == [BUCKET]
    assert bucket_objects() == BEFORE


@pytest.mark.usefixtures("moto_aws")
def test_manifest_to_a_missing_bucket_is_named() -> None:
    result = {
        "table_name": TABLE,
        "segment": 0,
        "total_segments": 1,
        "items": 0,
        "bytes": 0,
        "parts": [],
        "destination": "s3://no-such-bucket/daily",
        "file_format": "jsonl",
        "compression": None,
    }
    error = raised(
        lambda: DynamoDBExportManifestOperator(task_id="manifest", results=[result]).execute({}),  # type: ignore[arg-type]
        DestinationError,
    )
    # Committing starts by listing what is not the export's own.
    assert str(error) == (
        "Destination 's3://no-such-bucket/daily': cannot list its files: the bucket 'no-such-bucket' does not exist "
        "(NoSuchBucket); create it, or give a destination in an existing bucket (destination='s3://bucket/prefix')."
    )
    assert [bucket["Name"] for bucket in make_client(service="s3").list_buckets()["Buckets"]] == [BUCKET]


@pytest.mark.usefixtures("moto_aws")
def test_access_denied_on_write_is_named_and_leaves_the_bucket_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    # AWS authorises ListObjectsV2 as s3:ListBucket and HeadObject as s3:GetObject; moto from 5.2.6 on checks each
    # call's own name. The policy grants both spellings of "may list and read", and still no write.
    reads = ["s3:ListBucket", "s3:ListObjectsV2", "s3:GetObject", "s3:HeadObject"]
    iam_user_connection(monkeypatch, "aws_default", ["dynamodb:*", *reads])
    with enable_iam_authentication():
        error = raised(lambda: export(f"s3://{BUCKET}/denied", file_format="csv", compression="gzip"), DestinationError)
    # The user may list and read the bucket, so the export gets as far as its first write: its marker.
    assert str(error) == (
        f"Destination 's3://{BUCKET}/denied': cannot write '_export.json': "
        "An error occurred (AccessDenied) when calling the PutObject operation: Access Denied"
    )
    assert bucket_objects() == BEFORE


@pytest.mark.usefixtures("moto_aws")
def test_no_s3_permission_at_all_is_named_and_nothing_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    iam_user_connection(monkeypatch, "aws_default", ["dynamodb:*"])
    with enable_iam_authentication():
        error = raised(lambda: export(f"s3://{BUCKET}/denied"), DestinationError)
    assert str(error) == (
        f"Destination 's3://{BUCKET}/denied': cannot list its files: An error occurred (AccessDenied) when "
        "calling the ListObjectsV2 operation: Access Denied"
    )
    assert bucket_objects() == BEFORE


@pytest.mark.usefixtures("moto_aws")
def test_complete_s3_export_is_not_overwritten_without_overwrite() -> None:
    destination = f"s3://{BUCKET}/daily"
    DynamoDBExportManifestOperator(task_id="manifest", results=[export(destination)]).execute({})  # type: ignore[arg-type]
    before = bucket_objects()
    assert sorted(before) == sorted([*BEFORE, "daily/manifest.json", "daily/segment-00000-of-00001/part-00000.jsonl"])
    error = raised(lambda: export(destination, segment=0, total_segments=2), DestinationError)
    assert str(error) == (
        f"Table {TABLE!r}: destination {destination} already holds a complete export of table {TABLE!r} as jsonl, "
        "1 segment (manifest.json is there); choose another destination or pass overwrite=True to replace it."
    )
    assert bucket_objects() == before


@pytest.mark.usefixtures("moto_aws")
def test_s3_credential_errors_name_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """An S3 destination whose connection holds keys AWS does not know: the error quotes neither key."""
    iam_user_connection(monkeypatch, "aws_default", ["dynamodb:*", "s3:*"])
    login, password = "AKIASECRETLOGIN123", "very-secret-password-xyz"
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEST", connection(login, password))
    with enable_iam_authentication():
        error = raised(lambda: export(f"s3://{BUCKET}/x", dest_aws_conn_id="aws_dest"), DestinationError)
    assert str(error) == (
        f"Destination 's3://{BUCKET}/x': cannot list its files: An error occurred (InvalidAccessKeyId) when "
        "calling the ListObjectsV2 operation: The AWS Access Key Id you provided does not exist in our records."
    )
    chain = [error, error.__cause__]
    assert all(secret not in text for secret in (login, password) for item in chain for text in (str(item), repr(item)))
    assert bucket_objects() == BEFORE
