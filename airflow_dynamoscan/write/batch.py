"""
Write items to a DynamoDB table with BatchWriteItem: 25 requests at a time, unprocessed and throttled ones retried.

Items go in as AttributeValue dicts (the low-level client's shape); :func:`serialize_item` makes them from plain
Python values and names the attribute of any value DynamoDB cannot store. Nothing here imports Airflow.
"""

from __future__ import annotations

import concurrent.futures
import decimal
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from airflow_dynamoscan.exceptions import (
    BatchWriteError,
    InvalidItemError,
    InvalidScanArgumentError,
    RetriesExhaustedError,
    ScanRequestError,
)
from airflow_dynamoscan.scan.decode import deserialize_attribute_value
from airflow_dynamoscan.scan.pacing import WriteCapacityPacer
from airflow_dynamoscan.scan.retry import RetryPolicy, call_with_retries, retryable_error_code
from airflow_dynamoscan.scan.scanner import call_dynamodb

log = logging.getLogger(__name__)

#: BatchWriteItem takes at most 25 put or delete requests.
MAX_BATCH_SIZE = 25

#: The retries of a batch without a policy of its own: 10 requests, pauses from 0.05 s doubling up to 5 s.
WRITE_RETRY_POLICY = RetryPolicy(max_attempts=10, base_delay=0.05, max_delay=5.0)

_KEYS_SHOWN = 5


class _EmptySetError(TypeError):
    pass


class _UnprocessedItems(Exception):
    # Unprocessed items are retried like a throttling error: the same pauses, counted against the same attempts.
    def __init__(self, unprocessed: int, sent: int) -> None:
        super().__init__(f"UnprocessedItems ({unprocessed} of {sent} items)")


def _retryable_write_error(error: BaseException) -> str | None:
    if isinstance(error, _UnprocessedItems):
        return str(error)
    return retryable_error_code(error)


class _ItemSerializer(TypeSerializer):
    # boto3 turns an empty set into an empty NS, which DynamoDB rejects for the whole batch without naming the item.
    def serialize(self, value: Any) -> Any:
        if isinstance(value, (set, frozenset)) and not value:
            raise _EmptySetError
        return super().serialize(value)


_SERIALIZER = _ItemSerializer()
_SERIALIZE_ERRORS = (TypeError, decimal.DecimalException)


def describe_key(key: Mapping[str, Any]) -> str:
    """
    Return an item key for messages, e.g. ``pk='order#1', sk=3``: key attributes only, never other item data.

    :param key: key attribute names to plain Python values or to AttributeValue dicts.
    """
    parts = []
    for name, value in key.items():
        if isinstance(value, Mapping) and len(value) == 1:
            value = deserialize_attribute_value(value)
        parts.append(f"{name}={value if isinstance(value, decimal.Decimal) else repr(value)}")
    return ", ".join(parts)


def _locate(value: Any, path: str) -> tuple[str, Any]:
    """Return the path and value of the innermost part of ``value`` that cannot be serialized."""
    if isinstance(value, Mapping):
        nested: Iterable[tuple[str, Any]] = ((f"{path}.{name}", part) for name, part in value.items())
    elif isinstance(value, (list, tuple)):
        nested = ((f"{path}[{index}]", part) for index, part in enumerate(value))
    else:
        return path, value
    for nested_path, part in nested:
        try:
            _SERIALIZER.serialize(part)
        except _SERIALIZE_ERRORS:
            return _locate(part, nested_path)
    return path, value


def _why_unwritable(value: Any) -> str:
    try:
        _SERIALIZER.serialize(value)
    except _EmptySetError:
        return "is an empty set; DynamoDB stores no empty sets: leave the attribute out or set it to None"
    except decimal.DecimalException:
        return (
            "is a number DynamoDB cannot store exactly; it allows at most 38 significant digits and magnitudes "
            "from 1E-130 to 9.99E+125: round it, e.g. with Decimal.quantize()"
        )
    except TypeError:
        pass
    members = value if isinstance(value, (set, frozenset)) else [value]
    if any(isinstance(member, float) for member in members):
        return "holds a float; DynamoDB numbers must be int or decimal.Decimal: use Decimal(str(value))"
    kind = type(value).__name__
    if isinstance(value, (set, frozenset)):
        kind = "set of " + ", ".join(sorted({type(member).__name__ for member in value}))
    return (
        f"has type {kind}, which DynamoDB cannot store; allowed: str, int, decimal.Decimal, bytes, bool, None, "
        "list, dict, and sets of str, numbers or bytes (one kind per set)"
    )


def serialize_item(item: Mapping[str, Any], *, table_name: str, item_description: str) -> dict[str, dict[str, Any]]:
    """
    Return ``item`` (plain Python values) as AttributeValue dicts, ready for BatchWriteItem.

    :param table_name: the table the item is meant for, named in errors
    :param item_description: what the item is, for errors, e.g. ``"the item with key pk='a'"``; give keys only,
        never other item data
    :raises InvalidItemError: an attribute holds a float, an empty set, a number DynamoDB cannot store or a value of
        another type; the message names the attribute (``address.geo.lat``, ``lines[2]``), never its value.
    """
    serialized: dict[str, dict[str, Any]] = {}
    for name, value in item.items():
        if not isinstance(name, str):
            raise InvalidItemError(
                f"Table {table_name!r}: {item_description} has an attribute name of type {type(name).__name__}; "
                "attribute names must be str."
            )
        try:
            serialized[name] = _SERIALIZER.serialize(value)
        except _SERIALIZE_ERRORS:
            path, part = _locate(value, name)
            # The serializer's own message quotes the value, so it is not chained.
            raise InvalidItemError(
                f"Table {table_name!r}: attribute {path!r} of {item_description} {_why_unwritable(part)}."
            ) from None
    return serialized


def _describe_keys(keys: Sequence[Mapping[str, Any]]) -> str:
    shown = "; ".join(f"({describe_key(key)})" for key in keys[:_KEYS_SHOWN])
    if len(keys) > _KEYS_SHOWN:
        shown += f"; and {len(keys) - _KEYS_SHOWN} more"
    return shown


class BatchWriter:
    """
    Put and delete items in one table with BatchWriteItem, at most 25 per request, from ``threads`` threads.

    Requests are buffered and sent 25 at a time; a request for a key already in the buffer sends the buffer first,
    as DynamoDB refuses a batch naming a key twice. ``UnprocessedItems``, and whole requests that failed with a
    throttling or transient error (``ProvisionedThroughputExceededException``, ``ThrottlingException``, HTTP 5xx, a
    closed connection...), are sent again as ``retry_policy`` says (exponential backoff with full jitter); each
    retry is logged at WARNING. Puts and deletes of whole items may be sent twice without harm, so every item is
    written once. Items still unprocessed after ``retry_policy.max_attempts`` requests are an error. With more
    than one thread, batches run at once and in
    no set order: call :meth:`flush` between writes whose order matters. At most ``2 * threads`` batches wait.

    Use it as a context manager: leaving the block normally flushes; leaving it with an error waits for the batches
    already sent and drops the rest.

    :param client: a low-level ``dynamodb`` client (thread-safe, shared by the threads)
    :param table_name: the table written to
    :param key_names: the table's key attribute names (hash key, then range key if any)
    :param threads: how many BatchWriteItem requests may run at once
    :param retry_policy: attempts and pauses, the same object as for reads (the hook gives its own); default
        :data:`WRITE_RETRY_POLICY`
    :param sleep: pauses between retries (tests pass a recorder)
    :param jitter: returns a random float in ``[0, 1)``, the share of the pause's limit to wait
    :param pacer: keeps the writes within a write-capacity budget (each request then asks for its
        ``ConsumedCapacity``), or ``None``
    :raises InvalidScanArgumentError: ``threads`` below 1, or no key names.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        key_names: Sequence[str],
        *,
        threads: int = 1,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        pacer: WriteCapacityPacer | None = None,
    ) -> None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise InvalidScanArgumentError(
                f"Table {table_name!r}: threads={threads!r} is not allowed; it must be an integer >= 1."
            )
        if not key_names:
            raise InvalidScanArgumentError(f"Table {table_name!r}: key_names must name the table's key attributes.")
        self.pacer = pacer
        self.client = client
        self.table_name = table_name
        self.key_names = tuple(key_names)
        self.retry_policy = retry_policy or WRITE_RETRY_POLICY
        self.max_attempts = self.retry_policy.max_attempts
        self._sleep = sleep
        self._jitter = jitter
        self._requests: list[dict[str, Any]] = []
        self._keys_in_buffer: set[tuple[Any, ...]] = set()
        self._executor = (
            concurrent.futures.ThreadPoolExecutor(
                max_workers=threads, thread_name_prefix=f"dynamoscan-write-{table_name}"
            )
            if threads > 1
            else None
        )
        self._max_in_flight = 2 * threads
        self._in_flight: set[concurrent.futures.Future[None]] = set()
        self._counts_lock = threading.Lock()
        self._written = 0
        self._deleted = 0
        self._retries = 0

    @property
    def written(self) -> int:
        """Items DynamoDB has confirmed as put so far."""
        with self._counts_lock:
            return self._written

    @property
    def deleted(self) -> int:
        """Items DynamoDB has confirmed as deleted so far."""
        with self._counts_lock:
            return self._deleted

    @property
    def retries(self) -> int:
        """BatchWriteItem requests sent again so far (unprocessed items, throttling, transient errors)."""
        with self._counts_lock:
            return self._retries

    def _count_retry(self, _code: str) -> None:
        with self._counts_lock:
            self._retries += 1

    def put(self, item: Mapping[str, Any]) -> None:
        """Queue a put of ``item`` (AttributeValue dicts, e.g. from :func:`serialize_item`)."""
        self._add({"PutRequest": {"Item": item}}, item)

    def delete(self, key: Mapping[str, Any]) -> None:
        """Queue a delete of the item with ``key`` (the key attributes as AttributeValue dicts)."""
        self._add({"DeleteRequest": {"Key": key}}, key)

    def flush(self) -> None:
        """
        Send what is buffered and wait until every batch is written.

        :raises BatchWriteError: a batch was rejected or stayed unprocessed; the first such error is raised after
            every other batch has finished.
        """
        self._send_buffer()
        self._wait(return_when=concurrent.futures.ALL_COMPLETED)

    def close(self) -> None:
        """Wait for the batches already sent, drop what is buffered and stop the threads."""
        self._requests, self._keys_in_buffer = [], set()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BatchWriter:
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

    def _key_of(self, attributes: Mapping[str, Any]) -> tuple[Any, ...]:
        try:
            return tuple((name, tag, value) for name in self.key_names for tag, value in attributes[name].items())
        except KeyError as error:
            raise InvalidItemError(
                f"Table {self.table_name!r}: an item or key lacks the key attribute {error.args[0]!r}; "
                f"every item needs the key attributes {', '.join(self.key_names)}."
            ) from None

    def _add(self, request: dict[str, Any], attributes: Mapping[str, Any]) -> None:
        key = self._key_of(attributes)
        if key in self._keys_in_buffer:
            self._send_buffer()
        self._requests.append(request)
        self._keys_in_buffer.add(key)
        if len(self._requests) >= MAX_BATCH_SIZE:
            self._send_buffer()

    def _send_buffer(self) -> None:
        if not self._requests:
            return
        requests, self._requests, self._keys_in_buffer = self._requests, [], set()
        if self._executor is None:
            self._write_batch(requests)
            return
        while len(self._in_flight) >= self._max_in_flight:
            self._wait(return_when=concurrent.futures.FIRST_COMPLETED)
        self._in_flight.add(self._executor.submit(self._write_batch, requests))

    def _wait(self, return_when: str) -> None:
        if not self._in_flight:
            return
        done, self._in_flight = concurrent.futures.wait(self._in_flight, return_when=return_when)
        errors = [error for future in done if (error := future.exception()) is not None]
        if errors:
            # The other batches keep their writes: let them finish so the counts are final when the error surfaces.
            concurrent.futures.wait(self._in_flight)
            self._in_flight = set()
            raise errors[0]

    def _count(self, sent: Sequence[Mapping[str, Any]], unprocessed: Sequence[Mapping[str, Any]]) -> None:
        puts = sum(1 for request in sent if "PutRequest" in request)
        unprocessed_puts = sum(1 for request in unprocessed if "PutRequest" in request)
        with self._counts_lock:
            self._written += puts - unprocessed_puts
            self._deleted += (len(sent) - puts) - (len(unprocessed) - unprocessed_puts)

    def _request_keys(self, requests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        keys = []
        for request in requests:
            attributes = request["PutRequest"]["Item"] if "PutRequest" in request else request["DeleteRequest"]["Key"]
            keys.append({name: attributes[name] for name in self.key_names if name in attributes})
        return keys

    def _write_batch(self, requests: list[dict[str, Any]]) -> None:
        pending = requests

        def send() -> None:
            nonlocal pending
            request: dict[str, Any] = {"RequestItems": {self.table_name: pending}}
            expected = None
            if self.pacer is not None:
                expected = self.pacer.before_write(len(pending))
                request["ReturnConsumedCapacity"] = "TOTAL"
            try:
                response = call_dynamodb(self.client, "batch_write_item", self.table_name, request)
            except Exception:
                if self.pacer is not None and expected is not None:
                    self.pacer.after_write(expected, None, 0)
                raise
            unprocessed: list[dict[str, Any]] = response.get("UnprocessedItems", {}).get(self.table_name, [])
            if self.pacer is not None and expected is not None:
                consumed = [float(entry.get("CapacityUnits", 0)) for entry in response.get("ConsumedCapacity") or ()]
                self.pacer.after_write(expected, sum(consumed) if consumed else None, len(pending) - len(unprocessed))
            self._count(pending, unprocessed)
            client_retries = int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
            if client_retries:
                with self._counts_lock:
                    self._retries += client_retries
            if unprocessed:
                sent, pending = len(pending), unprocessed
                raise _UnprocessedItems(len(unprocessed), sent)

        try:
            call_with_retries(
                send,
                self.retry_policy,
                table_name=self.table_name,
                operation="BatchWriteItem",
                on_retry=self._count_retry,
                sleep=self._sleep,
                random_fraction=self._jitter,
                retryable=_retryable_write_error,
            )
        except ScanRequestError as error:
            raise BatchWriteError(
                f"Table {self.table_name!r}: DynamoDB rejected a BatchWriteItem request of {len(pending)} "
                f"item(s) with the keys {_describe_keys(self._request_keys(pending))}: {error.__cause__ or error}"
            ) from error
        except RetriesExhaustedError as error:
            if isinstance(error.__cause__, _UnprocessedItems):
                keys = _describe_keys(self._request_keys(pending))
                raise BatchWriteError(
                    f"Table {self.table_name!r}: {len(pending)} item(s) were still unprocessed after "
                    f"{self.max_attempts} BatchWriteItem attempts (keys {keys}). The table's write capacity is "
                    "probably exhausted: raise it, or write with fewer threads (max_workers)."
                ) from None
            code = retryable_error_code(error.__cause__) if error.__cause__ is not None else None
            raise BatchWriteError(
                f"Table {self.table_name!r}: a BatchWriteItem request of {len(pending)} item(s) with the keys "
                f"{_describe_keys(self._request_keys(pending))} failed {self.max_attempts} times in a row, the last "
                f"time with {code}. DynamoDB kept throttling or failing: raise the table's write capacity, write with "
                "fewer threads (max_workers), or raise max_attempts."
            ) from error
