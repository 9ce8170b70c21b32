"""
Apply a function to every item a scan reads and write what it returns: back in place, or into another table.

The transform sees each item as plain Python values (as :func:`~airflow_dynamoscan.scan.decode.deserialize_item`
gives them) and returns the item to write, or ``None`` to leave the item alone. Nothing here imports Airflow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from airflow_dynamoscan.exceptions import DynamoScanError, InvalidItemError, InvalidScanArgumentError, TransformError
from airflow_dynamoscan.scan.decode import deserialize_item
from airflow_dynamoscan.scan.scanner import ScanPage
from airflow_dynamoscan.storage.checkpoints import ScanCheckpoint, delete_checkpoint, write_checkpoint
from airflow_dynamoscan.storage.destinations import Destination
from airflow_dynamoscan.write.batch import BatchWriter, describe_key, serialize_item
from airflow_dynamoscan.write.conditional import AttributeItem, ConditionalWriter
from airflow_dynamoscan.write.values import values_equal

log = logging.getLogger(__name__)

#: What writes a transform's results: with a condition per item, or in batches (no condition), or nothing (a dry run).
TransformWriter = BatchWriter | ConditionalWriter

#: A transform: takes an item (plain Python values), returns the item to write or ``None`` to skip it.
ItemTransform = Callable[[dict[str, Any]], dict[str, Any] | None]

#: Scan keywords that give partial items or read an index: written back in place, they would drop attributes.
PARTIAL_ITEM_SCAN_KEYWORDS = ("AttributesToGet", "IndexName", "ProjectionExpression", "Select")

_KEY_TYPES = (str, int, Decimal, bytes)


def check_in_place_scan_kwargs(table_name: str, scan_kwargs: Mapping[str, Any]) -> None:
    """
    Refuse scan keywords that would hand an in-place transform partial items.

    :raises InvalidScanArgumentError: naming the table, the refused keywords and what is allowed.
    """
    refused = [
        name
        for name in PARTIAL_ITEM_SCAN_KEYWORDS
        if name in scan_kwargs and not (name == "Select" and scan_kwargs[name] == "ALL_ATTRIBUTES")
    ]
    if refused:
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: scan keyword(s) {', '.join(refused)} read partial items or an index, and "
            "writing those back in place would drop attributes; they are not allowed when the target is the "
            "scanned table. Allowed: FilterExpression, ExpressionAttributeNames, ExpressionAttributeValues, "
            "ConsistentRead, Limit, ReturnConsumedCapacity, Select='ALL_ATTRIBUTES'; or write to another table."
        )


def key_attribute_names(table_description: Mapping[str, Any]) -> list[str]:
    """Return the key attribute names of a DescribeTable ``Table``: the hash key, then the range key if any."""
    schema = sorted(table_description.get("KeySchema", []), key=lambda element: element["KeyType"] != "HASH")
    return [element["AttributeName"] for element in schema]


class TransformRaised(Exception):
    """
    Stands for an exception a transform raised, chained to the TransformError: its type and traceback (where the
    transform failed), not its message, which may quote item data (``int('4111...')`` does).
    """

    def __init__(self, type_name: str) -> None:
        super().__init__(f"{type_name} (its message is withheld: it may quote item data)")
        self.type_name = type_name

    @classmethod
    def of(cls, error: BaseException) -> TransformRaised:
        return cls(type(error).__name__).with_traceback(error.__traceback__)


@dataclass
class TransformCounts:
    """
    What a transform did.

    :param scanned: items read
    :param unchanged: items the transform returned equal to what was read; in place they are not written again,
        into another table they are copied (and counted in ``to_write`` too)
    :param skipped: items the transform returned ``None`` for
    :param to_write: items written, or in a dry run, that would be written
    :param key_changed: items written in place under a new key (``allow_key_change``), their old key deleted
    :param written: items DynamoDB confirmed as put (0 in a dry run)
    :param deleted: old items DynamoDB confirmed as deleted after a key change
    :param conflicts: conditional writes that found the item changed since it was read (each time)
    :param reapplied: items written, or left alone, after the transform was applied again to the item re-read
    :param skipped_conflicts: items left as another writer left them, by policy or after too many conflicts
    :param skipped_uncheckable: items not written because "unchanged since read" does not fit in a condition
    """

    scanned: int = 0
    unchanged: int = 0
    skipped: int = 0
    to_write: int = 0
    key_changed: int = 0
    written: int = 0
    deleted: int = 0
    conflicts: int = 0
    reapplied: int = 0
    skipped_conflicts: int = 0
    skipped_uncheckable: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counts by name."""
        return asdict(self)


class _Transformer:
    def __init__(
        self,
        transform: ItemTransform,
        *,
        table_name: str,
        key_names: Sequence[str],
        target_table_name: str,
        target_key_names: Sequence[str],
        writer: TransformWriter | None,
        allow_key_change: bool,
    ) -> None:
        self.transform = transform
        self.table_name = table_name
        self.key_names = tuple(key_names)
        self.target_table_name = target_table_name
        self.in_place = target_table_name == table_name
        self.target_key_names = self.key_names if self.in_place else tuple(target_key_names)
        self.writer = writer
        self.allow_key_change = allow_key_change
        self.counts = TransformCounts()
        # In place, a new key may lie ahead in the scan: key changes wait until the scan is over, so that the scan
        # never reads an item it wrote. New key -> (new item, old key as AttributeValues, old key as Python values,
        # the old item as read).
        self.moves: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any], dict[str, Any], AttributeItem]] = {}

    def failure(self, message: str) -> TransformError:
        """Return a TransformError whose message also says what was written before the failing item."""
        if self.writer is None:
            return TransformError(f"{message} Dry run: nothing was written.")
        try:
            self.writer.flush()
            state = "every item transformed before it"
        except DynamoScanError as error:
            state = f"writing the items transformed before it failed as well: {error}"
        return TransformError(
            f"{message} {self.writer.written} item(s) had been written to table {self.target_table_name!r} ({state})."
        )

    def process(self, attributes: dict[str, Any]) -> None:
        counts = self.counts
        counts.scanned += 1
        original = deserialize_item(attributes)
        key = {name: original.get(name) for name in self.key_names}
        withheld: TransformRaised | None = None
        try:
            # A fresh copy: a transform that edits its argument must not edit what the result is compared with.
            result = self.transform(deserialize_item(attributes))
        except Exception as error:  # noqa: BLE001 - raised below, as a TransformError
            withheld = TransformRaised.of(error)
        if withheld is not None:
            # Raised outside the except block, so the transform's own exception (whose message may quote item
            # data) is not chained as the context; the traceback still shows where the transform failed.
            raise self.failure(
                f"Table {self.table_name!r}: the transform raised {withheld.type_name} on the item with key "
                f"{describe_key(key)}."
            ) from withheld
        if result is None:
            counts.skipped += 1
            return
        if not isinstance(result, dict):
            raise self.failure(
                f"Table {self.table_name!r}: the transform returned a {type(result).__name__} for the item with key "
                f"{describe_key(key)}; it must return a dict (the item to write) or None (leave the item alone)."
            )
        if values_equal(result, original):
            counts.unchanged += 1
            if self.in_place:
                return
        self.check_target_key(result, key)
        try:
            serialized = serialize_item(
                result,
                table_name=self.target_table_name,
                item_description=f"the transform's result for the item with key {describe_key(key)}",
            )
        except InvalidItemError as error:
            raise self.failure(str(error)) from None
        counts.to_write += 1
        if self.in_place:
            changed = [name for name in self.key_names if not values_equal(result[name], original[name])]
            if changed:
                self.defer_move(serialized, attributes, key, result, changed[0])
                return
        if isinstance(self.writer, ConditionalWriter):
            if self.in_place:
                self.writer.update(attributes, serialized, self.redo)
            else:
                self.writer.copy(serialized)
        elif self.writer is not None:
            self.writer.put(serialized)

    def redo(self, attributes: AttributeItem) -> AttributeItem | None:
        """
        Apply the transform again to an item re-read after a conflict (on a writer thread); return the item to write,
        or ``None`` to leave the item as it is.

        :raises TransformError: as for the first application, without flushing the writer (whose thread this is).
        """
        original = deserialize_item(attributes)
        key = {name: original.get(name) for name in self.key_names}
        withheld: TransformRaised | None = None
        try:
            result = self.transform(deserialize_item(attributes))
        except Exception as error:  # noqa: BLE001 - raised below, as a TransformError
            withheld = TransformRaised.of(error)
        if withheld is not None:
            raise TransformError(
                f"Table {self.table_name!r}: the transform raised {withheld.type_name} on the item with key "
                f"{describe_key(key)}, read again after a conflict."
            ) from withheld
        if result is None or (isinstance(result, dict) and values_equal(result, original)):
            return None
        if not isinstance(result, dict):
            raise TransformError(
                f"Table {self.table_name!r}: the transform returned a {type(result).__name__} for the item with key "
                f"{describe_key(key)}; it must return a dict (the item to write) or None (leave the item alone)."
            )
        self.check_target_key(result, key, fail=TransformError)
        return serialize_item(
            result,
            table_name=self.target_table_name,
            item_description=f"the transform's result for the item with key {describe_key(key)}",
        )

    def check_target_key(
        self, result: Mapping[str, Any], key: Mapping[str, Any], fail: Callable[[str], Exception] | None = None
    ) -> None:
        fail = fail or self.failure
        for name in self.target_key_names:
            if name not in result:
                raise fail(
                    f"Table {self.table_name!r}: the transform's result for the item with key {describe_key(key)} "
                    f"lacks the key attribute {name!r}; items of table {self.target_table_name!r} need the key "
                    f"attributes {', '.join(self.target_key_names)}."
                )
            value = result[name]
            if not isinstance(value, _KEY_TYPES) or isinstance(value, bool):
                raise fail(
                    f"Table {self.table_name!r}: the transform's result for the item with key {describe_key(key)} "
                    f"has a key attribute {name!r} of type {type(value).__name__}; key attributes must be str, "
                    "int, decimal.Decimal or bytes."
                )

    def defer_move(
        self,
        serialized: dict[str, Any],
        attributes: Mapping[str, Any],
        key: dict[str, Any],
        result: Mapping[str, Any],
        changed_name: str,
    ) -> None:
        new_key = {name: result[name] for name in self.key_names}
        if not self.allow_key_change:
            raise self.failure(
                f"Table {self.table_name!r}: the transform changed the key attribute {changed_name!r} of the item "
                f"with key {describe_key(key)} (new key {describe_key(new_key)}); written in place, that would add "
                "a second item instead of replacing this one. Keep the key, write to another table "
                "(target_table_name), or pass allow_key_change=True to write the new item and delete the old one."
            )
        new_key_values = tuple(new_key.values())
        if new_key_values in self.moves:
            other = self.moves[new_key_values][2]
            raise self.failure(
                f"Table {self.table_name!r}: the transform gave the items with keys {describe_key(other)} and "
                f"{describe_key(key)} the same new key {describe_key(new_key)}; one would overwrite the other."
            )
        old_key = {name: attributes[name] for name in self.key_names}
        self.moves[new_key_values] = (serialized, old_key, key, dict(attributes))
        self.counts.key_changed += 1

    def apply_moves(self) -> None:
        if self.writer is None or not self.moves:
            return
        log.info("Table %s: writing %s item(s) under their new keys", self.table_name, len(self.moves))
        if isinstance(self.writer, ConditionalWriter):
            # A new key holds nothing, or the item read there when that item moves away too (keys swapped).
            read_at = {tuple(old_key_values.values()): read for _, _, old_key_values, read in self.moves.values()}
            self.writer.move(
                [(read, new_item, read_at.get(new_key)) for new_key, (new_item, _, _, read) in self.moves.items()],
                self.redo,
            )
            return
        for new_item, _, _, _ in self.moves.values():
            self.writer.put(new_item)
        # Every new item is stored before any old one goes; an old key that is also a new key (keys swapped
        # between items) now holds a new item and stays.
        self.writer.flush()
        new_keys = set(self.moves)
        for _, old_key, old_key_values, _ in self.moves.values():
            if tuple(old_key_values.values()) not in new_keys:
                self.writer.delete(old_key)
        self.writer.flush()


def transform_items(
    items: Iterable[dict[str, Any]],
    transform: ItemTransform,
    *,
    table_name: str,
    key_names: Sequence[str],
    writer: TransformWriter | None,
    target_table_name: str | None = None,
    target_key_names: Sequence[str] | None = None,
    allow_key_change: bool = False,
) -> TransformCounts:
    """
    Apply ``transform`` to every item of ``items`` and write the results that need writing.

    In place (``target_table_name`` is ``None`` or ``table_name``), a result equal to the item read is not written
    again, and a result with another key is refused unless ``allow_key_change``: then the new items are written
    after the last item is read, and the old ones deleted after that. Into another table, every result is written.
    The transform should give the same result when it meets an item it already transformed: a retried task reads
    items written by the failed try, and with ``allow_key_change`` and several tasks, other segments' tasks may
    read new items. A new key that belongs to another item overwrites that item.

    :param items: the items read, as AttributeValue dicts (a scan with ``deserialize=False``); closed if they are
        a generator, also on error
    :param transform: called with each item as plain Python values; returns the item to write or ``None``
    :param table_name: the table read
    :param key_names: its key attribute names (:func:`key_attribute_names`)
    :param writer: writes to the target table; ``None`` for a dry run, which checks and counts but writes nothing
    :param target_table_name: the table written; ``None`` means ``table_name``
    :param target_key_names: the key attribute names of the target table; ``None`` means ``key_names``
    :param allow_key_change: in place, move items whose key the transform changes instead of refusing them
    :raises TransformError: the transform raised or returned something other than a dict or ``None``, its result
        cannot be stored (a float, an empty set, a missing key attribute...), or it changed a key where that is
        not allowed. The message names the table and the item's key, never other item data, and says how many
        items had been written.
    :raises BatchWriteError: DynamoDB rejected a batch or left items unprocessed after every retry.
    """
    target = target_table_name or table_name
    if writer is not None and writer.table_name != target:
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: the writer writes to {writer.table_name!r}, not to the target table {target!r}."
        )
    transformer = _Transformer(
        transform,
        table_name=table_name,
        key_names=key_names,
        target_table_name=target,
        target_key_names=target_key_names or key_names,
        writer=writer,
        allow_key_change=allow_key_change,
    )
    counts = transformer.counts
    try:
        # Progress is the scan's to report (ScanProgress, every progress_interval seconds): one reporter.
        for attributes in items:
            transformer.process(attributes)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
    transformer.apply_moves()
    if writer is not None:
        writer.flush()
        counts.written = writer.written
        counts.deleted = writer.deleted
        if isinstance(writer, ConditionalWriter):
            counts.conflicts = writer.counts["conflicts"]
            counts.reapplied = writer.counts["reapplied"]
            counts.skipped_conflicts = writer.counts["skipped_conflicts"]
            counts.skipped_uncheckable = writer.counts["skipped_uncheckable"]
    return counts


class TransformProgress:
    """
    Feed a transform the items of its pages and, with a checkpoint, record each page once its writes are confirmed.

    A page is recorded after every item of it has been transformed and the writer has flushed, so a retry that
    resumes from the checkpoint (:func:`~airflow_dynamoscan.storage.checkpoints.plan_resume`) transforms again at
    most the page each segment was in when the task failed.

    :param pages: the scan's pages (AttributeValue items)
    :param writer: the transform's writer; without it (a dry run) nothing is recorded
    :param destination: where the checkpoint is written; without it nothing is recorded
    :param checkpoint: the checkpoint to record in; its ``counts`` are those of the attempts before this one
    """

    def __init__(
        self,
        pages: Iterator[ScanPage],
        writer: TransformWriter | None = None,
        destination: Destination | None = None,
        checkpoint: ScanCheckpoint | None = None,
    ) -> None:
        self.pages = pages
        self.writer = writer
        self.destination = destination
        self.checkpoint = checkpoint
        #: ``{"scanned": ..., "written": ...}`` of the attempts before this one (empty if none).
        self.resumed_from: dict[str, int] = dict(checkpoint.counts) if checkpoint is not None else {}

    def items(self) -> Iterator[dict[str, Any]]:
        """The items of every page, recording each page in the checkpoint once its writes are confirmed."""
        scanned = self.resumed_from.get("scanned", 0)
        written_before = self.resumed_from.get("written", 0)
        try:
            for page in self.pages:
                yield from page.items
                if self.checkpoint is None or self.writer is None or self.destination is None:
                    continue
                self.writer.flush()
                scanned += len(page.items)
                self.checkpoint.record_page(page.segment, page.last_evaluated_key)
                self.checkpoint.counts = {"scanned": scanned, "written": written_before + self.writer.written}
                write_checkpoint(self.destination, self.checkpoint)
        finally:
            close = getattr(self.pages, "close", None)
            if close is not None:
                close()

    def finish(self) -> None:
        """The transform is complete: its checkpoint has served."""
        if self.checkpoint is not None and self.destination is not None:
            delete_checkpoint(self.destination, self.checkpoint.prefix)
