"""The default of a second connection parameter reads as its name, and stays the one default when copied."""

from __future__ import annotations

import copy
import inspect
import pickle
import pydoc

import pytest

from airflow_dynamoscan.native_task_groups import dynamodb_native_export_to_files, dynamodb_table_export
from airflow_dynamoscan.operators.base import SAME_AS_AWS_CONN_ID
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator
from airflow_dynamoscan.operators.dynamodb_native_export import DynamoDBNativeExportConvertOperator
from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator
from airflow_dynamoscan.task_groups import dynamodb_parallel_export


def test_help_shows_the_default_by_name() -> None:
    text = pydoc.render_doc(DynamoDBExportOperator, renderer=pydoc.plaintext)
    assert "dest_aws_conn_id: 'str | None' = SAME_AS_AWS_CONN_ID" in text
    # The package's own parameters (Airflow 2.11's BaseOperator shows its own defaults by address).
    signature = str(inspect.signature(DynamoDBExportOperator.__init__))
    assert "dest_aws_conn_id: 'str | None' = SAME_AS_AWS_CONN_ID" in signature
    assert "object at 0x" not in signature


@pytest.mark.parametrize(
    ("target", "parameter"),
    [
        (DynamoDBExportOperator, "dest_aws_conn_id"),
        (DynamoDBExportManifestOperator, "dest_aws_conn_id"),
        (DynamoDBTransformOperator, "checkpoint_aws_conn_id"),
        (dynamodb_parallel_export, "dest_aws_conn_id"),
        (DynamoDBNativeExportConvertOperator, "dest_aws_conn_id"),
        (dynamodb_native_export_to_files, "dest_aws_conn_id"),
        (dynamodb_table_export, "dest_aws_conn_id"),
    ],
)
def test_every_second_connection_shows_the_same_default(target: object, parameter: str) -> None:
    default = inspect.signature(target).parameters[parameter].default  # type: ignore[arg-type]
    assert default is SAME_AS_AWS_CONN_ID
    assert repr(default) == "SAME_AS_AWS_CONN_ID"


def test_copies_and_pickles_are_the_default_itself() -> None:
    assert copy.copy(SAME_AS_AWS_CONN_ID) is SAME_AS_AWS_CONN_ID
    assert copy.deepcopy({"conn": SAME_AS_AWS_CONN_ID})["conn"] is SAME_AS_AWS_CONN_ID
    assert pickle.loads(pickle.dumps(SAME_AS_AWS_CONN_ID)) is SAME_AS_AWS_CONN_ID


def test_the_default_resolves_to_the_operator_connection() -> None:
    export = DynamoDBExportOperator(
        task_id="export", table_name="orders", destination="s3://bucket/orders", aws_conn_id="dynamodb_prod"
    )
    assert export.dest_aws_conn_id == "dynamodb_prod"
    manifest = DynamoDBExportManifestOperator(task_id="manifest", results=[], aws_conn_id="dynamodb_prod")
    assert (manifest.connection_from_results, manifest.dest_aws_conn_id) == (True, None)
    given = DynamoDBExportOperator(
        task_id="given", table_name="orders", destination="s3://b/o", aws_conn_id="a", dest_aws_conn_id=None
    )
    assert given.dest_aws_conn_id is None
