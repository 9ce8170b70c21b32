"""
Write a transform's results only where the item is still as the transform read it: conditional writes, one item
per request, from a pool of threads, with a policy for items another writer changed meanwhile.

BatchWriteItem carries no condition, so a transform that writes with it replaces whatever the application wrote
between the transform's read and its write. Here every in-place write is an ``UpdateItem`` (or ``DeleteItem``)
whose ``ConditionExpression`` says "unchanged since read":

* with a **version attribute** (``version_attribute="version"``): the version is what was read (or absent, if the
  item had none), and the write sets it one higher. Every writer of the table must then raise it on each write, as
  optimistic locking asks (DynamoDBMapper's ``@DynamoDBVersionAttribute`` does).
* without one: ``attribute_exists`` of the hash key, and every attribute read compared with its value; a map or a
  list by its ``size()`` and each element by its path (``#a.#b[2] = :v``), so the check is exact for documents too,
  also where a server compares only scalars. An attribute the application *added* meanwhile cannot be named in a
  condition (DynamoDB has no "no other attribute" test, nor a hash function): the write returns the item as it was
  (``ReturnValues="ALL_OLD"``), an added attribute shows there, and the write, an ``UpdateItem`` that changes only
  what the transform changed, has kept it. The transform is then applied again to that exact earlier item when its
  result could differ (``reapply``), or the item is put back as it was (``skip``).

A condition is one expression of at most 4 KB (DynamoDB's limit on an expression's text; the values go in
``ExpressionAttributeValues``, which may hold up to 2 MB, so a 400 KB item is checked like any other). An item with
so many attributes and elements that its condition cannot be written in 4 KB is not written: it is counted as
``skipped_uncheckable`` and logged by key (a version attribute has no such limit).

Nothing here imports Airflow.
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any

from botocore.exceptions import ClientError

from airflow_dynamoscan.exceptions import InvalidScanArgumentError, TransformError
from airflow_dynamoscan.scan.decode import deserialize_attribute_value
from airflow_dynamoscan.scan.pacing import WriteCapacityPacer
from airflow_dynamoscan.scan.retry import RetryPolicy
from airflow_dynamoscan.scan.scanner import call_dynamodb
from airflow_dynamoscan.write.batch import WRITE_RETRY_POLICY, describe_key
from airflow_dynamoscan.write.values import values_equal

log = logging.getLogger(__name__)

#: Re-read the item (strongly consistent) and apply the transform again, up to ``max_conflict_retries`` times.
REAPPLY = "reapply"
#: Leave an item that changed since it was read as the other writer left it, and report it.
SKIP = "skip"
#: Write with BatchWriteItem, no condition: the last writer wins and changes made meanwhile are lost.
OVERWRITE = "overwrite"
CONFLICT_POLICIES = (REAPPLY, SKIP, OVERWRITE)

#: Conflicts an item may meet before it is skipped, by default.
DEFAULT_MAX_CONFLICT_RETRIES = 3

#: The longest expression DynamoDB accepts, in bytes.
MAX_EXPRESSION_BYTES = 4096

#: An attribute-value item, as the low-level client sends and returns it.
AttributeItem = dict[str, dict[str, Any]]

#: Applies the transform to an item read again: returns the item to write, or ``None`` to leave the item as it is.
Redo = Callable[[AttributeItem], "AttributeItem | None"]


class Uncheckable(Exception):
    """The condition "unchanged since read" of an item does not fit in one expression."""


class _ConditionFailed(Exception):
    def __init__(self, resent: bool) -> None:
        super().__init__("ConditionalCheckFailedException")
        # Sent more than once: an earlier attempt may have been applied, its answer lost.
        self.resent = resent


def validate_conflict_policy(on_conflict: object, max_conflict_retries: object, table_name: str | None) -> None:
    """
    Check ``on_conflict`` and ``max_conflict_retries``.

    :raises InvalidScanArgumentError: naming the table, the parameter and what is allowed.
    """
    where = f"Table {table_name!r}: " if table_name else ""
    if on_conflict not in CONFLICT_POLICIES:
        raise InvalidScanArgumentError(
            f"{where}on_conflict={on_conflict!r} is not allowed; allowed: 'reapply' (re-read the item and apply the "
            "transform again), 'skip' (leave it and report it) or 'overwrite' (no condition: writes made meanwhile "
            "are lost)."
        )
    if not isinstance(max_conflict_retries, int) or isinstance(max_conflict_retries, bool) or max_conflict_retries < 0:
        raise InvalidScanArgumentError(
            f"{where}max_conflict_retries={max_conflict_retries!r} is not allowed; it must be an integer >= 0."
        )


class _Expression:
    """Placeholders of one request's expressions, shared by its condition and its update."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        placeholder = self.names.get(attribute)
        if placeholder is None:
            placeholder = self.names[attribute] = f"#{len(self.names):x}"
        return placeholder

    def value(self, attribute_value: Any) -> str:
        placeholder = f":{len(self.values):x}"
        self.values[placeholder] = attribute_value
        return placeholder

    def request(self) -> dict[str, Any]:
        request: dict[str, Any] = {"ExpressionAttributeNames": {value: key for key, value in self.names.items()}}
        if self.values:
            request["ExpressionAttributeValues"] = self.values
        return request


def _compare(expression: _Expression, path: str, value: Mapping[str, Any], parts: list[str]) -> None:
    ((tag, inner),) = value.items()
    if tag in ("M", "L"):
        if not inner:
            parts.append(f"attribute_type({path}, {expression.value({'S': tag})})")
        parts.append(f"size({path}) = {expression.value({'N': str(len(inner))})}")
        if tag == "M":
            for name, element in inner.items():
                _compare(expression, f"{path}.{expression.name(name)}", element, parts)
        else:
            for index, element in enumerate(inner):
                _compare(expression, f"{path}[{index}]", element, parts)
        return
    parts.append(f"{path} = {expression.value(value)}")


def _fits(text: str) -> bool:
    return len(text.encode()) <= MAX_EXPRESSION_BYTES


@dataclass(frozen=True)
class _Outcome:
    old: AttributeItem | None  # the item before the write, when the write returned it
    now: AttributeItem | None  # the item after the write, as far as it is known


class ConditionalWriter:
    """
    Write items in place one at a time, each only if it is still as it was read (see the module documentation).

    Writes run on ``threads`` threads in no set order; :meth:`flush` waits for them. Throttled and transient
    errors are retried as ``retry_policy`` says; a failed condition is a conflict, handled by ``on_conflict``:

    * ``"reapply"``: read the item again (``GetItem``, strongly consistent) and apply the transform to it (the
      ``redo`` callable each write gets; it runs on a writer thread), then write conditionally again; after
      ``max_conflict_retries`` conflicts of one item, it is skipped. An item deleted meanwhile stays deleted.
    * ``"skip"``: leave the item as the other writer left it.

    An item whose re-read shows exactly what this writer meant to write (a write whose answer was lost, then
    retried) is counted as written, not as a conflict: the transform is never applied to its own result. Conflicts
    and skips are logged by key only.

    :param client: a low-level ``dynamodb`` client (thread-safe, shared by the threads)
    :param table_name: the table written
    :param key_names: its key attribute names (hash key first)
    :param threads: how many requests may run at once
    :param on_conflict: ``"reapply"`` or ``"skip"``
    :param max_conflict_retries: how many conflicts of one item are re-applied before it is skipped
    :param version_attribute: the attribute that holds each item's version, or ``None`` to compare every attribute
    :param retry_policy: attempts and pauses of throttled or failed requests (default :data:`WRITE_RETRY_POLICY`)
    :param pacer: keeps the writes within a write-capacity budget, or ``None``
    :param sleep: pauses between retries (tests pass a recorder)
    :param jitter: returns a random float in ``[0, 1)``, the share of the pause's limit to wait
    :raises InvalidScanArgumentError: a parameter out of range.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        key_names: Sequence[str],
        *,
        threads: int = 1,
        on_conflict: str = REAPPLY,
        max_conflict_retries: int = DEFAULT_MAX_CONFLICT_RETRIES,
        version_attribute: str | None = None,
        retry_policy: RetryPolicy | None = None,
        pacer: WriteCapacityPacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise InvalidScanArgumentError(
                f"Table {table_name!r}: threads={threads!r} is not allowed; it must be an integer >= 1."
            )
        if on_conflict == OVERWRITE:
            raise InvalidScanArgumentError(
                f"Table {table_name!r}: on_conflict='overwrite' writes with BatchWriteItem, not conditionally."
            )
        validate_conflict_policy(on_conflict, max_conflict_retries, table_name)
        if not key_names:
            raise InvalidScanArgumentError(f"Table {table_name!r}: key_names must name the table's key attributes.")
        self.client = client
        self.table_name = table_name
        self.key_names = tuple(key_names)
        self.on_conflict = on_conflict
        self.max_conflict_retries = max_conflict_retries
        self.version_attribute = version_attribute
        self.retry_policy = retry_policy or WRITE_RETRY_POLICY
        self.pacer = pacer
        self._sleep = sleep
        self._jitter = jitter
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=f"dynamoscan-write-{table_name}"
        )
        self._max_in_flight = 2 * threads
        self._in_flight: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {
            "written": 0,
            "deleted": 0,
            "retries": 0,
            "conflicts": 0,
            "reapplied": 0,
            "skipped_conflicts": 0,
            "skipped_uncheckable": 0,
        }

    # Counters, as BatchWriter has them.

    def _add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount

    def _get_count(self, name: str) -> int:
        with self._lock:
            return self.counts[name]

    @property
    def written(self) -> int:
        """Items written (put or updated) so far."""
        return self._get_count("written")

    @property
    def deleted(self) -> int:
        """Old items of moves deleted so far."""
        return self._get_count("deleted")

    @property
    def retries(self) -> int:
        """Requests sent again after throttling or a transient error."""
        return self._get_count("retries")

    def _count_retry(self, _code: str) -> None:
        self._add("retries")

    # Queueing, waiting, closing.

    def submit(self, function: Callable[..., Any], *arguments: Any) -> concurrent.futures.Future[Any]:
        """Run ``function(*arguments)`` on a writer thread, once fewer than ``2 * threads`` writes wait."""
        while len(self._in_flight) >= self._max_in_flight:
            self._wait(concurrent.futures.FIRST_COMPLETED)
        future = self._executor.submit(function, *arguments)
        self._in_flight.add(future)
        return future

    def flush(self) -> None:
        """Wait until every write queued so far is done; raise the first error one of them met."""
        self._wait(concurrent.futures.ALL_COMPLETED)

    def _wait(self, return_when: str) -> None:
        if not self._in_flight:
            return
        done, self._in_flight = concurrent.futures.wait(self._in_flight, return_when=return_when)
        errors = [error for future in done if (error := future.exception()) is not None]
        if errors:
            concurrent.futures.wait(self._in_flight)
            self._in_flight = set()
            raise errors[0]

    def close(self) -> None:
        """Wait for the writes already running, drop the queued ones and stop the threads."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ConditionalWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.close()

    # Requests.

    def key_of(self, item: Mapping[str, Any]) -> AttributeItem:
        """The key attributes of ``item``."""
        return {name: item[name] for name in self.key_names}

    def _call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        expected = self.pacer.before_write() if self.pacer is not None and operation != "get_item" else None
        request = {"TableName": self.table_name, **request}
        if expected is not None:
            request["ReturnConsumedCapacity"] = "TOTAL"
        retries: list[str] = []

        def count_retry(code: str) -> None:
            retries.append(code)
            self._count_retry(code)

        try:
            response = call_dynamodb(
                self.client,
                operation,
                self.table_name,
                request,
                retry_policy=self.retry_policy,
                on_retry=count_retry,
                sleep=self._sleep,
            )
        except ClientError as error:
            if expected is not None and self.pacer is not None:
                self.pacer.after_write(expected, None)
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise _ConditionFailed(resent=bool(retries)) from None
            raise
        if expected is not None and self.pacer is not None:
            capacity = response.get("ConsumedCapacity") or {}
            units = capacity.get("CapacityUnits")
            self.pacer.after_write(expected, float(units) if units is not None else None)
        return response

    def read(self, key: AttributeItem) -> AttributeItem | None:
        """The item with ``key`` as it is now (strongly consistent), or ``None`` if there is none."""
        response = self._call("get_item", {"Key": key, "ConsistentRead": True})
        item: AttributeItem | None = response.get("Item")
        return item

    def _unchanged(self, expression: _Expression, expected: AttributeItem) -> str:
        parts = [f"attribute_exists({expression.name(self.key_names[0])})"]
        if self.version_attribute is not None:
            version = expected.get(self.version_attribute)
            name = expression.name(self.version_attribute)
            parts.append(
                f"attribute_not_exists({name})" if version is None else f"{name} = {expression.value(version)}"
            )
        else:
            for attribute, value in expected.items():
                if attribute not in self.key_names:
                    _compare(expression, expression.name(attribute), value, parts)
        condition = " AND ".join(parts)
        if not _fits(condition):
            raise Uncheckable
        return condition

    def with_next_version(self, expected: AttributeItem | None, desired: AttributeItem) -> AttributeItem:
        """``desired`` with the version attribute one above ``expected``'s (1 for none); unchanged without one."""
        if self.version_attribute is None:
            return desired
        current = (expected or {}).get(self.version_attribute)
        number = Decimal(0)
        if current is not None:
            number = Decimal(current["N"]) if set(current) == {"N"} else Decimal("NaN")
        if not number.is_finite() or number != number.to_integral_value():
            raise TransformError(
                f"Table {self.table_name!r}: the item with key {describe_key(self.key_of(desired))} has a version "
                f"attribute {self.version_attribute!r} that is not a whole number; version_attribute must name a "
                "number attribute that every writer raises by one."
            )
        return {**desired, self.version_attribute: {"N": str(int(number) + 1)}}

    def _replace(self, key: AttributeItem, expected: AttributeItem | None, desired: AttributeItem | None) -> _Outcome:
        """
        Turn the item at ``key`` from ``expected`` (``None``: absent) into ``desired`` (``None``: deleted).

        :raises _ConditionFailed: the item is not as expected.
        :raises Uncheckable: the condition does not fit in an expression.
        """
        expression = _Expression()
        if expected is None:
            if desired is None:
                return _Outcome(None, None)
            condition = f"attribute_not_exists({expression.name(self.key_names[0])})"
            self._call("put_item", {"Item": desired, "ConditionExpression": condition, **expression.request()})
            return _Outcome(None, desired)
        condition = self._unchanged(expression, expected)
        returned = "NONE" if self.version_attribute is not None else "ALL_OLD"
        if desired is None:
            response = self._call(
                "delete_item",
                {"Key": key, "ConditionExpression": condition, "ReturnValues": returned, **expression.request()},
            )
            return _Outcome(response.get("Attributes"), None)
        if self.version_attribute is None:
            update = self._update_expression(expression, expected, desired)
            if update is not None:
                response = self._call(
                    "update_item",
                    {
                        "Key": key,
                        "UpdateExpression": update,
                        "ConditionExpression": condition,
                        "ReturnValues": returned,
                        **expression.request(),
                    },
                )
                old: AttributeItem = response.get("Attributes") or {}
                added = {name: value for name, value in old.items() if name not in expected}
                return _Outcome(old, {**added, **desired})
        response = self._call(
            "put_item",
            {"Item": desired, "ConditionExpression": condition, "ReturnValues": returned, **expression.request()},
        )
        return _Outcome(response.get("Attributes"), desired)

    def _update_expression(
        self, expression: _Expression, expected: AttributeItem, desired: AttributeItem
    ) -> str | None:
        # Only what the transform changed: an attribute another writer added meanwhile is kept.
        sets = [
            f"{expression.name(name)} = {expression.value(value)}"
            for name, value in desired.items()
            if name not in self.key_names and not _same(expected.get(name), value)
        ]
        removes = [expression.name(name) for name in expected if name not in desired]
        clauses = []
        if sets:
            clauses.append("SET " + ", ".join(sets))
        if removes:
            clauses.append("REMOVE " + ", ".join(removes))
        text = " ".join(clauses)
        if not clauses or len(sets) + len(removes) > 300 or not _fits(text):
            return None  # nothing to change, or too much for one UpdateExpression: the whole item is put
        return text

    # What the transform asks for.

    def update(self, expected: AttributeItem, desired: AttributeItem, redo: Redo) -> None:
        """Queue the in-place write of ``desired`` over the item read as ``expected`` (same key)."""
        self.submit(self.settle, expected, desired, redo)

    def copy(self, item: AttributeItem) -> None:
        """Queue the put of ``item`` into another table, only where its key holds no item or this very item."""
        self.submit(self._place, self.key_of(item), None, item)

    def settle(self, expected: AttributeItem, desired: AttributeItem, redo: Redo) -> bool:
        """
        Write ``desired`` over the item read as ``expected``, handling conflicts by the policy; return whether the
        item now holds a transformed version (not skipped, not deleted meanwhile).
        """
        key = self.key_of(expected)
        desired = self.with_next_version(expected, desired)
        conflicts = 0
        reverting = False  # putting the item back as another writer left it, which the transform must not change
        reverted_as = "skipped_conflicts"  # or "reapplied": the transform leaves that item alone
        while True:
            try:
                outcome = self._replace(key, expected, desired)
            except Uncheckable:
                self._add("skipped_uncheckable")
                log.warning(
                    "Table %s: the item with key %s is not written: the condition that it is unchanged since read "
                    "exceeds DynamoDB's 4 KB expression limit (too many attributes and elements); give "
                    "version_attribute to check such items",
                    self.table_name,
                    describe_key(key),
                )
                return False
            except _ConditionFailed as failed:
                fresh = self.read(key)
                if fresh is not None and (
                    _same_item(fresh, desired)
                    or (failed.resent and _holds_changes(fresh, expected, desired, self.version_attribute))
                ):
                    # The write was applied and only its answer was lost: the request sent again found its own
                    # result (possibly changed since by another writer, in attributes the transform left alone).
                    self._add(reverted_as if reverting else "written")
                    return not reverting
                self._add("conflicts")
                if fresh is None:
                    log.info(
                        "Table %s: the item with key %s was deleted since it was read",
                        self.table_name,
                        describe_key(key),
                    )
                    self._add("reapplied" if self.on_conflict == REAPPLY else "skipped_conflicts")
                    return False
                if reverting or self.on_conflict == SKIP or conflicts >= self.max_conflict_retries:
                    self._skip(key, "changed since it was read")
                    return False
                conflicts += 1
                redone = redo(fresh)
                if redone is None:
                    self._add("reapplied")
                    return False
                if _key_tuple(self.key_of(redone)) != _key_tuple(key):
                    self._skip(key, "changed since it was read, and the transform gives its new version a new key")
                    return False
                expected, desired = fresh, self.with_next_version(fresh, redone)
                continue
            added = [] if outcome.old is None else [name for name in outcome.old if name not in expected]
            if not added:
                if reverting:
                    self._add(reverted_as)
                    return False
                self._add("written")
                if conflicts:
                    self._add("reapplied")
                return True
            # Another writer added attributes between the read and the write: they were kept, and the transform
            # saw an earlier item. The exact earlier item is known: transform it, or put it back.
            self._add("conflicts")
            assert outcome.old is not None and outcome.now is not None
            now, old = outcome.now, outcome.old
            if self.on_conflict == SKIP or conflicts >= self.max_conflict_retries:
                log.info(
                    "Table %s: the item with key %s gained attributes since it was read; it is put back as it was",
                    self.table_name,
                    describe_key(key),
                )
                expected, desired, reverting = now, old, True
                continue
            conflicts += 1
            redone = redo(old)
            if redone is None or _key_tuple(self.key_of(redone)) != _key_tuple(key):
                # The transform leaves the earlier item alone, or gives it another key: it goes back as it was.
                expected, desired, reverting = now, old, True
                reverted_as = "reapplied" if redone is None else "skipped_conflicts"
                continue
            target = redone
            if _same_item(target, now):
                self._add("written")
                self._add("reapplied")
                return True
            expected, desired = now, target

    def _skip(self, key: AttributeItem, why: str) -> None:
        self._add("skipped_conflicts")
        log.info(
            "Table %s: the item with key %s %s; it is left as it is (skipped)", self.table_name, describe_key(key), why
        )

    def move(self, moves: Sequence[tuple[AttributeItem, AttributeItem, AttributeItem | None]], redo: Redo) -> None:
        """
        Move items to new keys: ``(read, new_item, held)``, where ``held`` is what the new key held when read (the
        item read there, if it moves away too) or ``None`` (absent). First every new item is written if its key
        still holds ``held``; then each old item whose move succeeded is deleted if unchanged (or, after a
        conflict and ``reapply``, the new item is rewritten from the re-read item). A move that cannot complete
        is undone: the new item removed if it is still as written, the item left where it was, and reported.
        """
        placed = [self.submit(self._place, self.key_of(new_item), held, new_item) for _, new_item, held in moves]
        self.flush()
        succeeded = [done.result() for done in placed]
        new_keys = {_key_tuple(self.key_of(new)) for (_, new, _), ok in zip(moves, succeeded, strict=True) if ok}
        for (read, new_item, held), ok in zip(moves, succeeded, strict=True):
            if not ok:
                continue
            if _key_tuple(self.key_of(read)) in new_keys:
                continue  # the old key now holds another moved item
            self.submit(self._retire, read, new_item, held, redo)
        self.flush()

    def _place(self, key: AttributeItem, held: AttributeItem | None, new_item: AttributeItem) -> bool:
        try:
            self._replace(key, held, new_item)
        except (_ConditionFailed, Uncheckable):
            fresh = self.read(key)
            if fresh is not None and _same_item(fresh, new_item):
                self._add("written")
                return True
            self._add("conflicts")
            self._skip(key, "was not the item the move expected at its new key")
            return False
        self._add("written")
        return True

    def _retire(self, read: AttributeItem, new_item: AttributeItem, held: AttributeItem | None, redo: Redo) -> None:
        key, new_key = self.key_of(read), self.key_of(new_item)
        expected = read
        conflicts = 0
        while True:
            try:
                outcome = self._replace(key, expected, None)
            except (_ConditionFailed, Uncheckable) as error:
                fresh = self.read(key)
                if fresh is None:
                    # Deleted by the application meanwhile: the moved copy must not bring it back.
                    self._add("conflicts")
                    self._undo(new_key, new_item, held)
                    return
                self._add("conflicts")
                if self.on_conflict == SKIP or isinstance(error, Uncheckable) or conflicts >= self.max_conflict_retries:
                    self._undo(new_key, new_item, held)
                    self._skip(key, "changed since it was read, so it was not moved")
                    return
                conflicts += 1
                redone = redo(fresh)
                if redone is None or _key_tuple(self.key_of(redone)) != _key_tuple(new_key):
                    self._undo(new_key, new_item, held)
                    self._skip(key, "changed since it was read, and its new version does not move to the same key")
                    return
                try:
                    self._replace(new_key, new_item, redone)
                except (_ConditionFailed, Uncheckable):
                    self._skip(key, "changed since it was read, and so did its new key")
                    return
                expected, new_item = fresh, redone
                continue
            added = [] if outcome.old is None else [name for name in outcome.old if name not in expected]
            if added and outcome.old is not None:
                # Deleted with attributes the move never saw: the item goes back and the move is undone.
                self._add("conflicts")
                self._replace(key, None, outcome.old)
                self._undo(new_key, new_item, held)
                self._skip(key, "gained attributes since it was read, so it was not moved")
                return
            self._add("deleted")
            if conflicts:
                self._add("reapplied")
            return

    def _undo(self, new_key: AttributeItem, new_item: AttributeItem, held: AttributeItem | None) -> None:
        self._add("written", -1)
        try:
            self._replace(new_key, new_item, held)
        except (_ConditionFailed, Uncheckable):
            log.warning(
                "Table %s: the item moved to key %s changed since it was written; it is left as it is",
                self.table_name,
                describe_key(new_key),
            )


def _same(left: Mapping[str, Any] | None, right: Mapping[str, Any] | None) -> bool:
    if left is None or right is None:
        return left is right
    return values_equal(deserialize_attribute_value(left), deserialize_attribute_value(right))


def _same_item(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    return left.keys() == right.keys() and all(_same(value, right[name]) for name, value in left.items())


def _holds_changes(
    item: Mapping[str, Any], before: Mapping[str, Any], after: Mapping[str, Any], version_attribute: str | None
) -> bool:
    """Whether every attribute that differs between ``before`` and ``after`` holds its ``after`` value in ``item``."""
    changed = [
        name
        for name in before.keys() | after.keys()
        if name != version_attribute and not _same(before.get(name), after.get(name))
    ]
    return bool(changed) and all(_same(item.get(name), after.get(name)) for name in changed)


def _key_tuple(key: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple((name, repr(deserialize_attribute_value(value))) for name, value in key.items())
