"""What every operator of this package shares: the AWS connection parameters and the scan hook."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook


class DynamoDBScanBaseOperator(BaseOperator):
    """
    Base of the operators that scan a DynamoDB table.

    :param table_name: the DynamoDB table to read (templated)
    :param aws_conn_id: the Airflow connection of the DynamoDB table; ``None`` uses boto3's default credentials
    :param region_name: AWS region; default: the connection's
    :param verify: whether to verify SSL certificates, or a CA bundle path; default: the connection's
    :param botocore_config: a dict of ``botocore.config.Config`` options, e.g. ``{"retries": {"max_attempts": 10}}``
    :param fast_decoding: read Scan responses with the fast decoder (default) rather than botocore's parser
    """

    aws_template_fields: Sequence[str] = ("aws_conn_id", "region_name", "verify", "botocore_config")

    def __init__(
        self,
        *,
        table_name: str,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        fast_decoding: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table_name = table_name
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.fast_decoding = fast_decoding

    @cached_property
    def hook(self) -> DynamoDBScanHook:
        """The scan hook built from this operator's connection parameters."""
        return DynamoDBScanHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
            fast_decoding=self.fast_decoding,
        )
