"""DynamoDBTransformOperator: apply a function to every item of a DynamoDB table and write back what changed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_dynamoscan.operators.base import DynamoDBScanBaseOperator
from airflow_dynamoscan.scan.scanner import DEFAULT_MAX_WORKERS
from airflow_dynamoscan.scan.transform import (
    check_in_place_scan_kwargs,
    key_attribute_names,
    transform_items,
)
from airflow_dynamoscan.scan.writer import BatchWriter

if TYPE_CHECKING:
    from airflow.sdk import Context


class DynamoDBTransformOperator(DynamoDBScanBaseOperator):
    """
    Apply ``transform`` to every item of a DynamoDB table and write the results: in place, or into another table.

    Items are read with Scan: the whole table in this task (a parallel scan over ``max_workers`` threads), or one
    segment per mapped task::

        DynamoDBTransformOperator.partial(
            task_id="normalise", table_name="orders", transform=normalise, total_segments=8
        ).expand(segment=list(range(8)))

    In place, an item the transform returns unchanged is not written again, and a changed key is refused unless
    ``allow_key_change``. Writes use BatchWriteItem, 25 items per request; unprocessed items are retried with
    exponential backoff. Errors and logs name items by their key only, never by other item data.

    The transform should give the same result when it meets an item it already transformed: a retried task reads
    the items the failed try wrote.

    :param table_name: the table read (templated)
    :param transform: called with each item as plain Python values (``N`` as ``decimal.Decimal``, ``B`` as
        ``bytes``, sets as ``set``); returns the item to write (a dict; numbers as ``int`` or ``Decimal``, never
        ``float``) or ``None`` to leave the item alone
    :param target_table_name: the table written (templated); default: ``table_name``, an in-place update. Another
        table receives every transformed item, changed or not.
    :param segment: the segment this task reads, from 0 to ``total_segments - 1``; ``None`` for the whole table
    :param total_segments: how many segments the table is split into (1 to 1,000,000), one mapped task each; with
        ``segment=None``, the segments of this task's parallel scan (default: planned from the table's size)
    :param scan_kwargs: further Scan keywords (templated), e.g. ``FilterExpression`` with
        ``ExpressionAttributeNames``/``ExpressionAttributeValues`` to transform only matching items. In place,
        keywords that read partial items (``ProjectionExpression``, ``AttributesToGet``, ``Select``,
        ``IndexName``) are refused: writing partial items back would drop attributes.
    :param dry_run: read, transform and check every item, count what would be written, and write nothing
    :param allow_key_change: in place, write an item whose key the transform changed under its new key and delete
        the old item (after the scan, so the scan never reads a new item); without it, such an item is an error.
        A new key that belongs to another item overwrites it.
    :param max_workers: threads reading the whole table (default: ``min(8, segments)``), and threads writing
        (default 8)
    :param aws_conn_id: The Airflow connection used for AWS credentials. If this is ``None`` or empty then the
        default boto3 behaviour is used.
    :param region_name: AWS region_name. If not specified then the default boto3 behaviour is used.
    :param verify: Whether or not to verify SSL certificates. See:
        https://boto3.amazonaws.com/v1/documentation/api/latest/reference/core/session.html
    :param botocore_config: Configuration dictionary (key-values) for botocore client. See:
        https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html
    :return: (XCom) ``table_name``, ``target_table_name``, ``segment``, ``total_segments`` (both ``None`` for the
        whole table), ``scanned``, ``written``, ``unchanged``, ``skipped``, ``key_changed``, ``dry_run``,
        ``retries`` (reads and writes sent again after throttling or transient errors) and
        ``consumed_read_capacity`` (RCU, ``None`` when not known); a dry run also has ``would_write`` (and
        ``written`` 0).
    """

    template_fields: Sequence[str] = (
        "table_name",
        "target_table_name",
        "scan_kwargs",
        *DynamoDBScanBaseOperator.aws_template_fields,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"scan_kwargs": "json", "botocore_config": "json"}
    ui_color = "#c9e4ff"

    def __init__(
        self,
        *,
        table_name: str,
        transform: Callable[[dict[str, Any]], dict[str, Any] | None],
        target_table_name: str | None = None,
        segment: int | None = None,
        total_segments: int | None = None,
        dry_run: bool = False,
        allow_key_change: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(table_name=table_name, segment=segment, total_segments=total_segments, **kwargs)
        if not callable(transform):
            raise TypeError(
                f"Table {table_name!r}: transform must be a callable taking an item (dict) and returning a dict "
                f"or None; got a {type(transform).__name__}."
            )
        self.transform = transform
        self.target_table_name = target_table_name
        # Not ``self.dry_run``: that name is a method of BaseOperator.
        self.is_dry_run = dry_run
        self.allow_key_change = allow_key_change

    def execute(self, context: Context) -> dict[str, Any]:
        """
        Transform the table (or this task's segment) and return the counts.

        :raises InvalidScanArgumentError: bad segment arguments, ``max_workers`` or scan keywords.
        :raises TableNotFoundError: the table or the target table does not exist.
        :raises TransformError: the transform raised or returned something that cannot be written; the message
            names the item's key and how many items had been written.
        :raises BatchWriteError: DynamoDB rejected a write or left items unprocessed after every retry.
        """
        table_name = self.table_name
        target_table_name = self.target_table_name or table_name
        in_place = target_table_name == table_name
        segment, total_segments = self.validated_segment()
        scan_kwargs = self.validated_scan_kwargs()
        if in_place:
            check_in_place_scan_kwargs(table_name, scan_kwargs)
        key_names = key_attribute_names(self.hook.describe_table(table_name))
        target_key_names = key_names if in_place else key_attribute_names(self.hook.describe_table(target_table_name))
        where = "the whole table" if segment is None else f"segment {segment} of {total_segments}"
        self.log.info(
            "Transforming %s of table %s into %s%s",
            where,
            table_name,
            "itself" if in_place else f"table {target_table_name}",
            " (dry run: nothing is written)" if self.is_dry_run else "",
        )
        with contextlib.ExitStack() as stack:
            writer = (
                None
                if self.is_dry_run
                else stack.enter_context(
                    BatchWriter(
                        self.hook.client,
                        target_table_name,
                        target_key_names,
                        threads=self.max_workers or DEFAULT_MAX_WORKERS,
                        retry_policy=self.hook.retry_policy,
                    )
                )
            )
            counts = transform_items(
                (
                    item
                    for page in self.read_pages(segment, total_segments, scan_kwargs, deserialize=False)
                    for item in page.items
                ),
                self.transform,
                table_name=table_name,
                key_names=key_names,
                writer=writer,
                target_table_name=target_table_name,
                target_key_names=target_key_names,
                allow_key_change=self.allow_key_change,
            )
        self.log.info(
            "Transformed %s of table %s: %s scanned, %s %s, %s unchanged, %s skipped, %s moved to a new key",
            where,
            table_name,
            counts.scanned,
            counts.to_write if self.is_dry_run else counts.written,
            "would be written" if self.is_dry_run else "written",
            counts.unchanged,
            counts.skipped,
            counts.key_changed,
        )
        result: dict[str, Any] = {
            "table_name": table_name,
            "target_table_name": target_table_name,
            "segment": segment,
            "total_segments": total_segments,
            "scanned": counts.scanned,
            "written": counts.written,
            "unchanged": counts.unchanged,
            "skipped": counts.skipped,
            "key_changed": counts.key_changed,
            "dry_run": self.is_dry_run,
            **self.scan_statistics(extra_retries=writer.retries if writer is not None else 0),
        }
        if self.is_dry_run:
            result["would_write"] = counts.to_write
        return result
