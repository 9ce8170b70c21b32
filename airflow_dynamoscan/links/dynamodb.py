"""
Links from a task instance to the AWS console: the DynamoDB table it read or wrote, and an export's destination.

They follow the Amazon provider's convention: while the task runs, :meth:`ConsoleLink.persist` stores the region,
the console's domain (from the connection's partition: ``aws``, ``aws-cn``, ``aws-us-gov``) and the link's own
fields in an XCom of the task instance under the link's ``key``; the UI's :meth:`ConsoleLink.get_link` formats the
URL from that XCom, so each mapped instance links to its own run. A task that has not run yet shows no link.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from airflow_dynamoscan.compat import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow_dynamoscan.compat import BaseOperator, Context

log = logging.getLogger(__name__)

#: The console of a partition; ``aws_domain`` comes from :func:`console_domain`.
CONSOLE_URL = "https://console.{aws_domain}"

_CONSOLE_DOMAINS = {"aws": "aws.amazon.com", "aws-cn": "amazonaws.cn", "aws-us-gov": "amazonaws-us-gov.com"}


def console_domain(partition: str | None) -> str | None:
    """The domain of the AWS console of ``partition`` (``aws``, ``aws-cn``, ``aws-us-gov``), ``None`` for others."""
    return _CONSOLE_DOMAINS.get(partition or "")


class ConsoleLink(BaseOperatorLink):
    """
    A link to the AWS console whose URL is ``format_str`` filled with the fields the task stored.

    Subclasses set ``name`` (the button), ``key`` (the XCom key) and ``format_str``; a field that is missing, or a
    partition without a console, gives no link (``""``).
    """

    name: ClassVar[str]
    key: ClassVar[str]
    format_str: ClassVar[str]

    def format_link(self, **fields: Any) -> str:
        """The URL for the stored ``fields``, or ``""`` if one it needs is missing or empty."""
        if not fields.get("aws_domain"):
            return ""
        try:
            return self.format_str.format(**fields)
        except KeyError:
            return ""

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        """The URL of this link for the task instance ``ti_key``; ``""`` when it stored none (or cannot be read)."""
        try:
            fields = XCom.get_value(key=self.key, ti_key=ti_key)
        except Exception:  # the UI shows no link rather than an error page
            log.warning("Could not read the %s link of %s", self.name, ti_key, exc_info=True)
            return ""
        return self.format_link(**fields) if isinstance(fields, dict) else ""

    @classmethod
    def persist(
        cls, context: Context, operator: BaseOperator, *, region_name: str | None, aws_partition: str, **fields: Any
    ) -> None:
        """Store the link's fields for this task instance (nothing when the operator does not push XComs)."""
        if not operator.do_xcom_push:
            return
        try:
            context["ti"].xcom_push(
                key=cls.key,
                value={"region_name": region_name, "aws_domain": console_domain(aws_partition), **fields},
            )
        except Exception:  # a link is never worth failing the task for
            log.warning("Could not store the %s link", cls.name, exc_info=True)


class DynamoDBTableLink(ConsoleLink):
    """The DynamoDB table a task reads, in the DynamoDB console (its region and partition)."""

    name = "DynamoDB Table"
    key = "dynamoscan_table"
    format_str = CONSOLE_URL + "/dynamodbv2/home?region={region_name}#table?name={table_name}"

    def format_link(self, **fields: Any) -> str:
        if not fields.get("table_name"):
            return ""
        return super().format_link(**{**fields, "table_name": quote(str(fields["table_name"]), safe="")})


class DynamoDBTargetTableLink(DynamoDBTableLink):
    """The DynamoDB table a transform writes (the table it reads, for an in-place transform)."""

    name = "Target DynamoDB Table"
    key = "dynamoscan_target_table"


class ExportDestinationLink(ConsoleLink):
    """An export's destination in the S3 console, at its prefix; a local destination has no link."""

    name = "Export Destination"
    key = "dynamoscan_destination"
    format_str = CONSOLE_URL + "/s3/buckets/{bucket}?region={region_name}&prefix={prefix}"

    def format_link(self, **fields: Any) -> str:
        destination = str(fields.get("destination") or "")
        if not destination.startswith("s3://"):
            return ""
        bucket, _, prefix = destination[len("s3://") :].partition("/")
        prefix = prefix.strip("/")
        return super().format_link(
            **fields, bucket=quote(bucket, safe=""), prefix=quote(prefix + "/", safe="/") if prefix else ""
        )


def persist_links(
    context: Context, operator: BaseOperator, hook: Any, *links: tuple[type[ConsoleLink], dict[str, Any]]
) -> None:
    """
    Store the fields of ``links`` for this task instance, with the region and partition of ``hook``'s connection.

    :param hook: an ``AwsBaseHook`` (``conn_region_name`` and ``conn_partition``)
    :param links: pairs of a link class and its fields, e.g. ``(DynamoDBTableLink, {"table_name": "orders"})``
    """
    try:
        region_name, partition = hook.conn_region_name, hook.conn_partition
    except Exception as error:  # noqa: BLE001 - a link is never worth failing the task for
        # Stored anyway, without a console (so no URL): Airflow reads each link's XCom when the task ends, and one
        # that was never stored logs an error.
        log.warning("No console links: the connection's region and partition are not known (%s)", error)
        region_name, partition = None, ""
    for link, fields in links:
        link.persist(context, operator, region_name=region_name, aws_partition=partition, **fields)
