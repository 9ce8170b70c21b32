"""DynamoDBTransformOperator: apply a function to every item of a DynamoDB table and write back what changed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.export.exporter import segment_prefix
from airflow_dynamoscan.links.dynamodb import DynamoDBTableLink, DynamoDBTargetTableLink, persist_links
from airflow_dynamoscan.operators.base import SAME_AS_AWS_CONN_ID, DynamoDBScanBaseOperator
from airflow_dynamoscan.scan.pacing import (
    WriteCapacityPacer,
    validate_max_write_capacity_units,
    validate_write_capacity_fraction,
)
from airflow_dynamoscan.scan.scanner import DEFAULT_MAX_WORKERS
from airflow_dynamoscan.storage.checkpoints import export_fingerprint, plan_resume
from airflow_dynamoscan.write.conditional import (
    DEFAULT_MAX_CONFLICT_RETRIES,
    OVERWRITE,
    REAPPLY,
    validate_conflict_policy,
)
from airflow_dynamoscan.write.transform import (
    TransformCounts,
    TransformProgress,
    TransformWriter,
    check_in_place_scan_kwargs,
    key_attribute_names,
    transform_items,
)

if TYPE_CHECKING:
    from airflow_dynamoscan.compat import Context


class DynamoDBTransformOperator(DynamoDBScanBaseOperator):
    """
    Apply ``transform`` to every item of a DynamoDB table and write the results: in place, or into another table.

    Items are read with Scan: the whole table in this task (a parallel scan over ``max_workers`` threads), or one
    segment per mapped task::

        DynamoDBTransformOperator.partial(
            task_id="normalise", table_name="orders", transform=normalise, total_segments=8
        ).expand(segment=list(range(8)))

    In place, an item the transform returns unchanged is not written again, and a changed key is refused unless
    ``allow_key_change``. Each write happens only if the item is still as the transform read it (a conditional
    write per item, from ``max_workers`` threads), so a table the application keeps writing loses none of its
    writes; an item changed meanwhile is a conflict, handled by ``on_conflict`` (see ``docs/transforms.md``).
    ``on_conflict="overwrite"`` writes with BatchWriteItem, 25 items per request and no condition, as a last
    writer wins. Throttled writes and unprocessed items are retried with exponential backoff. Errors and logs name
    items by their key only, never by other item data.

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
        the old item; without it, such an item is an error. The moves wait until the task has read every segment,
        so the scan never reads an item it moved and every item is transformed exactly once, whatever the segment
        count. That needs one task for the whole table (``segment=None``; ``total_segments`` and ``max_workers``
        still read it in parallel threads): a task of one segment of several (a mapped transform) cannot know
        whether another task has read a moved item's new key yet, so in place it refuses ``allow_key_change``
        before reading anything (a dry run, which moves nothing, and a copy into ``target_table_name`` are
        allowed). The moves are held in the task's memory until they are written. A new key that belongs to
        another item overwrites it.
    :param checkpoint_destination: a local directory or ``s3://bucket/prefix`` where the task records its progress
        (``_checkpoints/transform-...json``) after each page whose writes DynamoDB has confirmed. A retry resumes
        after the last recorded page of each segment, so it transforms and writes again at most the page each
        segment was in when the try failed (up to 1 MB of items), not the whole segment: a transform that is not
        idempotent is re-applied to those items only. Without it (default) a retry starts the segment over. Not
        with ``allow_key_change``; ignored by a dry run. The checkpoint is deleted when the transform ends.
    :param checkpoint_aws_conn_id: the connection of an S3 ``checkpoint_destination`` (default: ``aws_conn_id``)
    :param on_conflict: what happens to an item that changed between the transform's read and its write:
        ``"reapply"`` (default) reads it again, strongly consistent, and applies the transform to what it reads
        (up to ``max_conflict_retries`` times, then the item is skipped; an item deleted meanwhile stays deleted);
        ``"skip"`` leaves it as the other writer left it; both count it and log its key. ``"overwrite"`` writes
        without any condition (BatchWriteItem): what was written meanwhile is lost. The transform may be called
        again, on a writer thread, for an item re-read after a conflict. Into another table, an item is put only
        where its key holds no item (or that very item): an item another writer put there is a conflict, skipped
        by ``"reapply"`` and ``"skip"`` alike, replaced by ``"overwrite"``.
    :param max_conflict_retries: conflicts of one item that ``"reapply"`` re-applies before skipping it (default 3)
    :param version_attribute: the number attribute that holds each item's version, if every writer of the table
        raises it by one on each write (optimistic locking): the write then checks only it and raises it. Without
        it (default), the write checks every attribute the transform read.
    :param write_capacity_fraction: share of the target table's write capacity the whole transform may use,
        ``0 < f <= 1``; a task of one of ``total_segments`` segments uses ``1/total_segments`` of it. Dry runs write
        nothing and use none.
    :param max_write_capacity_units: the most write capacity units per second the whole transform may use;
        required with ``write_capacity_fraction`` for an on-demand table without a maximum write throughput
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
        ``retries`` (reads and writes sent again after throttling or transient errors),
        ``consumed_read_capacity`` (RCU, ``None`` when not known), ``on_conflict``, ``conflicts``, ``reapplied``,
        ``skipped_conflicts``, ``skipped_uncheckable`` and ``consumed_write_capacity`` (WCU, ``None`` without a
        write budget); a dry run also has ``would_write`` (and
        ``written`` 0). A try that resumed from a checkpoint counts only its own work and adds ``resumed_after``:
        ``{"scanned": ..., "written": ...}`` of the tries before it.
    """

    template_fields: Sequence[str] = (
        "table_name",
        "target_table_name",
        "scan_kwargs",
        "checkpoint_destination",
        *DynamoDBScanBaseOperator.aws_template_fields,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"scan_kwargs": "json", "botocore_config": "json"}
    ui_color = "#c9e4ff"
    operator_extra_links = (DynamoDBTableLink(), DynamoDBTargetTableLink())

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
        checkpoint_destination: str | None = None,
        checkpoint_aws_conn_id: str | None = SAME_AS_AWS_CONN_ID,
        on_conflict: str = REAPPLY,
        max_conflict_retries: int = DEFAULT_MAX_CONFLICT_RETRIES,
        version_attribute: str | None = None,
        write_capacity_fraction: float | None = None,
        max_write_capacity_units: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(table_name=table_name, segment=segment, total_segments=total_segments, **kwargs)
        validate_conflict_policy(on_conflict, max_conflict_retries, table_name)
        if version_attribute is not None and (not isinstance(version_attribute, str) or not version_attribute):
            raise InvalidScanArgumentError(
                f"Table {table_name!r}: version_attribute={version_attribute!r} is not allowed; it must name a "
                "number attribute (a non-empty str), or be None."
            )
        self.on_conflict = on_conflict
        self.max_conflict_retries = max_conflict_retries
        self.version_attribute = version_attribute
        self.write_capacity_fraction = validate_write_capacity_fraction(write_capacity_fraction, table_name)
        self.max_write_capacity_units = validate_max_write_capacity_units(max_write_capacity_units, table_name)
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
        self.checkpoint_destination = checkpoint_destination
        self.checkpoint_aws_conn_id = self.connection_or_default(checkpoint_aws_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """
        Transform the table (or this task's segment) and return the counts.

        :raises InvalidScanArgumentError: bad segment arguments, ``max_workers`` or scan keywords;
            ``allow_key_change`` in place in a task of one segment of several.
        :raises TableNotFoundError: the table or the target table does not exist.
        :raises TransformError: the transform raised or returned something that cannot be written; the message
            names the item's key and how many items had been written.
        :raises BatchWriteError: DynamoDB rejected a write or left items unprocessed after every retry.
        """
        target_table_name = self.target_table_name or self.table_name
        in_place = target_table_name == self.table_name
        # First: a task that fails on its arguments still has its links, and Airflow finds the XCom it looks for.
        persist_links(
            context,
            self,
            self.hook,
            (DynamoDBTableLink, {"table_name": self.table_name}),
            (DynamoDBTargetTableLink, {"table_name": target_table_name}),
        )
        segment, total_segments = self.validated_segment()
        scan_kwargs = self.validated_scan_kwargs()
        if in_place:
            check_in_place_scan_kwargs(self.table_name, scan_kwargs)
            self._check_key_change_scope(segment, total_segments)
        key_names = key_attribute_names(self.hook.describe_table(self.table_name))
        target_key_names = key_names if in_place else key_attribute_names(self.hook.describe_table(target_table_name))
        if self.version_attribute in target_key_names:
            raise InvalidScanArgumentError(
                f"Table {target_table_name!r}: version_attribute={self.version_attribute!r} is a key attribute; it "
                "must name a number attribute outside the key."
            )
        pacer = None
        if not self.is_dry_run:
            pacer = self.hook.write_capacity_pacer(
                target_table_name,
                write_capacity_fraction=self.write_capacity_fraction,
                max_write_capacity_units=self.max_write_capacity_units,
                total_segments=1 if segment is None else total_segments or 1,
            )
        where = "the whole table" if segment is None else f"segment {segment} of {total_segments}"
        self.log.info(
            "Transforming %s of table %s into %s%s",
            where,
            self.table_name,
            "itself" if in_place else f"table {target_table_name}",
            " (dry run: nothing is written)" if self.is_dry_run else "",
        )
        with contextlib.ExitStack() as stack:
            writer: TransformWriter | None = None
            if not self.is_dry_run:
                writer = self._writer(target_table_name, target_key_names, pacer)
                stack.push(writer)  # leaving the block flushes it, or on an error waits for what was sent
            progress = self._progress(segment, total_segments, scan_kwargs, target_table_name, writer)
            counts = transform_items(
                progress.items(),
                self.transform,
                table_name=self.table_name,
                key_names=key_names,
                writer=writer,
                target_table_name=target_table_name,
                target_key_names=target_key_names,
                allow_key_change=self.allow_key_change,
            )
        progress.finish()
        result = self._result(where, target_table_name, segment, total_segments, counts, writer, progress)
        result["consumed_write_capacity"] = None if pacer is None else round(pacer.consumed, 1)
        if pacer is not None:
            achieved = pacer.achieved()
            self.log.info(
                "Table %s: the writes consumed %.1f WCU, %s WCU/s against a budget of %.2f WCU/s",
                target_table_name,
                pacer.consumed,
                "-" if achieved is None else f"{achieved:.2f}",
                pacer.units_per_second,
            )
        return result

    def _writer(
        self, target_table_name: str, target_key_names: Sequence[str], pacer: WriteCapacityPacer | None
    ) -> TransformWriter:
        threads = self.max_workers or DEFAULT_MAX_WORKERS
        if self.on_conflict == OVERWRITE:
            return self.hook.batch_writer(target_table_name, target_key_names, threads=threads, pacer=pacer)
        return self.hook.conditional_writer(
            target_table_name,
            target_key_names,
            threads=threads,
            on_conflict=self.on_conflict,
            max_conflict_retries=self.max_conflict_retries,
            version_attribute=self.version_attribute,
            pacer=pacer,
        )

    def _result(
        self,
        where: str,
        target_table_name: str,
        segment: int | None,
        total_segments: int | None,
        counts: TransformCounts,
        writer: TransformWriter | None,
        progress: TransformProgress,
    ) -> dict[str, Any]:
        self.log.info(
            "Transformed %s of table %s: %s scanned, %s %s, %s unchanged, %s skipped, %s moved to a new key",
            where,
            self.table_name,
            counts.scanned,
            counts.to_write if self.is_dry_run else counts.written,
            "would be written" if self.is_dry_run else "written",
            counts.unchanged,
            counts.skipped,
            counts.key_changed,
        )
        if counts.conflicts or counts.skipped_uncheckable:
            self.log.info(
                "Table %s: %s conflict(s) with other writers (on_conflict=%s): %s item(s) re-applied, %s skipped; "
                "%s item(s) too large to check, not written",
                self.table_name,
                counts.conflicts,
                self.on_conflict,
                counts.reapplied,
                counts.skipped_conflicts,
                counts.skipped_uncheckable,
            )
        result: dict[str, Any] = {
            "table_name": self.table_name,
            "target_table_name": target_table_name,
            "segment": segment,
            "total_segments": total_segments,
            "scanned": counts.scanned,
            "written": counts.written,
            "unchanged": counts.unchanged,
            "skipped": counts.skipped,
            "key_changed": counts.key_changed,
            "dry_run": self.is_dry_run,
            "on_conflict": self.on_conflict,
            "conflicts": counts.conflicts,
            "reapplied": counts.reapplied,
            "skipped_conflicts": counts.skipped_conflicts,
            "skipped_uncheckable": counts.skipped_uncheckable,
            **self.scan_statistics(extra_retries=writer.retries if writer is not None else 0),
        }
        if self.is_dry_run:
            result["would_write"] = counts.to_write
        if progress.resumed_from:
            result["resumed_after"] = progress.resumed_from
        return result

    def _check_key_change_scope(self, segment: int | None, total_segments: int | None) -> None:
        # A task that reads one segment cannot know whether another segment's task has read, or will read, the
        # new key of an item it moves: refused, so that no item is ever transformed twice.
        if not self.allow_key_change or self.is_dry_run or segment is None or total_segments == 1:
            return
        raise InvalidScanArgumentError(
            f"Table {self.table_name!r}: allow_key_change=True is not allowed in a task that transforms one segment "
            f"(segment={segment} of total_segments={total_segments}) in place: an item another segment's task "
            "moves can land in this segment and be transformed twice. Change keys in one task over the whole "
            f"table (segment=None, total_segments={total_segments}: its threads read every segment before any "
            "item moves), or write to another table with target_table_name."
        )

    def _progress(
        self,
        segment: int | None,
        total_segments: int | None,
        scan_kwargs: dict[str, Any],
        target_table_name: str,
        writer: TransformWriter | None,
    ) -> TransformProgress:
        if self.checkpoint_destination is None or writer is None:
            return TransformProgress(self.read_pages(segment, total_segments, scan_kwargs, deserialize=False))
        if self.allow_key_change:
            raise InvalidScanArgumentError(
                f"Table {self.table_name!r}: checkpoint_destination cannot be used with allow_key_change=True: "
                "moved items are written after the scan, so a checkpoint taken before would skip them on a retry."
            )
        destination = self.open_destination(self.checkpoint_destination, self.checkpoint_aws_conn_id)
        part = "whole-table" if segment is None else segment_prefix(segment, total_segments)
        fingerprint = export_fingerprint(
            kind="transform",
            table_name=self.table_name,
            target_table_name=target_table_name,
            segment=segment,
            total_segments=total_segments,
            scan_kwargs=scan_kwargs,
            transform=f"{getattr(self.transform, '__module__', '')}.{getattr(self.transform, '__qualname__', '')}",
        )
        plan = plan_resume(
            destination,
            f"transform-{self.table_name}-to-{target_table_name}-{part}",
            fingerprint,
            segment=segment,
            total_segments=total_segments,
            plan_total_segments=lambda: self.planned_total_segments(total_segments),
        )
        progress = TransformProgress(
            self.read_pages(segment, plan.total_segments, scan_kwargs, deserialize=False, start_keys=plan.start_keys),
            writer,
            destination,
            plan.checkpoint,
        )
        if plan.resumed:
            self.log.info(
                "Resuming the transform of table %s from its checkpoint: %s item(s) read and %s written before",
                self.table_name,
                progress.resumed_from.get("scanned", 0),
                progress.resumed_from.get("written", 0),
            )
        return progress
