"""
Retries of throttled and failed DynamoDB requests: exponential backoff with full jitter.

DynamoDB answers a request it cannot serve now with a throttling error (``ProvisionedThroughputExceededException``,
``ThrottlingException``, ``RequestLimitExceeded``), a server error (``InternalServerError``, HTTP 5xx), or the
connection fails (reset, closed, timed out). Such a request did not take effect, or may be sent again safely
(Scan reads; BatchWriteItem puts and deletes whole items), so :func:`call_with_retries` sends the very same
request again after a pause, up to :attr:`RetryPolicy.max_attempts` times. Any other error is raised at once.

The pause before retry ``n`` (from 1) is ``uniform(0, min(max_delay, base_delay * 2 ** (n - 1)))``: "full
jitter", which spreads the retries of many workers that were throttled together. Nothing here imports Airflow.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from botocore.exceptions import (
    ClientError,
    ConnectionError,
    HTTPClientError,
    SSLError,
)

from airflow_dynamoscan.exceptions import InvalidScanArgumentError, RetriesExhaustedError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Requests sent at most for one call (the first one included), unless a policy says otherwise.
DEFAULT_MAX_ATTEMPTS = 10

#: Longest pause (seconds) before the first retry; it doubles with each retry, up to ``DEFAULT_MAX_DELAY``.
DEFAULT_BASE_DELAY = 0.1
DEFAULT_MAX_DELAY = 20.0

#: Error codes with which DynamoDB (or AWS in front of it) says "too many requests now".
THROTTLING_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
    }
)

#: Error codes of failures on the service's side that a later attempt may not meet.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
    }
)

_MAX_EXPONENT = 62


@dataclass(frozen=True)
class RetryPolicy:
    """
    How often and after which pauses a throttled or failed request is sent again.

    :param max_attempts: requests sent at most for one call, the first one included (``1``: no retry)
    :param base_delay: longest pause before the first retry, in seconds; it doubles with each further retry
    :param max_delay: longest pause before any retry, in seconds
    :raises InvalidScanArgumentError: ``max_attempts`` is not an integer >= 1, or a delay is negative, or
        ``base_delay`` exceeds ``max_delay``.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_delay: float = DEFAULT_BASE_DELAY
    max_delay: float = DEFAULT_MAX_DELAY

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or isinstance(self.max_attempts, bool) or self.max_attempts < 1:
            raise InvalidScanArgumentError(
                f"max_attempts={self.max_attempts!r} is not allowed; it must be an integer >= 1 (1: no retries)."
            )
        for name in ("base_delay", "max_delay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < float("inf"):
                raise InvalidScanArgumentError(
                    f"{name}={value!r} is not allowed; it must be a finite number of seconds >= 0."
                )
        if self.base_delay > self.max_delay:
            raise InvalidScanArgumentError(
                f"base_delay={self.base_delay!r} is greater than max_delay={self.max_delay!r}; "
                "the first pause may not exceed the longest one."
            )

    def backoff_limit(self, retry: int) -> float:
        """Return the longest pause before retry number ``retry`` (from 1): ``min(max_delay, base * 2**(retry-1))``."""
        return float(min(self.max_delay, self.base_delay * 2 ** min(retry - 1, _MAX_EXPONENT)))

    def delay(self, retry: int, random_fraction: float) -> float:
        """Return the pause before retry number ``retry``: ``random_fraction`` (in ``[0, 1)``) of its limit."""
        return self.backoff_limit(retry) * random_fraction


def resolve_retry_policy(
    retry_policy: RetryPolicy | None,
    max_attempts: int | None,
    *,
    names: tuple[str, str] = ("retry_policy", "max_attempts"),
) -> RetryPolicy:
    """
    Return ``retry_policy``, or a default policy with ``max_attempts`` if given.

    :param names: what the caller calls the two parameters, for the error messages
    :raises InvalidScanArgumentError: both given, ``retry_policy`` is not a :class:`RetryPolicy`, or ``max_attempts``
        is not an integer >= 1.
    """
    policy_name, attempts_name = names
    if retry_policy is not None and max_attempts is not None:
        raise InvalidScanArgumentError(
            f"{policy_name}={retry_policy!r} and {attempts_name}={max_attempts!r} were both given; give one: "
            f"{attempts_name} is short for {policy_name}=RetryPolicy(max_attempts=...)."
        )
    if retry_policy is not None:
        if not isinstance(retry_policy, RetryPolicy):
            raise InvalidScanArgumentError(
                f"{policy_name} must be an airflow_dynamoscan.scan.retry.RetryPolicy; "
                f"got a {type(retry_policy).__name__}."
            )
        return retry_policy
    if max_attempts is None:
        return RetryPolicy()
    if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
        raise InvalidScanArgumentError(
            f"{attempts_name}={max_attempts!r} is not allowed; it must be an integer >= 1 (1: no retries)."
        )
    return RetryPolicy(max_attempts=max_attempts)


def retryable_error_code(error: BaseException) -> str | None:
    """
    Return what makes ``error`` worth retrying (an error code, ``HTTP 503``, or the connection error's class
    name), or ``None`` when sending the same request again cannot help (a validation error, a missing table,
    denied access, an SSL certificate problem).
    """
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in THROTTLING_ERROR_CODES or code in TRANSIENT_ERROR_CODES:
            return code
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int) and (status >= 500 or status == 429):
            return code or f"HTTP {status}"
        return None
    if isinstance(error, SSLError):
        return None
    if isinstance(error, (ConnectionError, HTTPClientError)):
        return type(error).__name__
    return None


def is_throttling(code: str) -> bool:
    """Whether a code from :func:`retryable_error_code` means DynamoDB throttled the request."""
    return code in THROTTLING_ERROR_CODES or code == "HTTP 429"


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    table_name: str,
    operation: str,
    segment: int | None = None,
    on_retry: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    random_fraction: Callable[[], float] = random.random,
    retryable: Callable[[BaseException], str | None] = retryable_error_code,
) -> T:
    """
    Return ``call()``, calling it again after a pause each time it fails with a retryable error.

    Each retry is logged at WARNING with the table, the segment, the operation, the error code, the attempt and
    the pause; never with request or item contents.

    :param call: sends one request; called once per attempt, so each attempt sends the same request
    :param policy: attempts and pauses
    :param table_name: the table, for logs and errors
    :param operation: the DynamoDB operation, e.g. ``"Scan"``, for logs and errors
    :param segment: the segment the request reads, for logs and errors
    :param on_retry: called with the error code before each pause (e.g. to count retries)
    :param sleep: pauses; a scanner that must stop early passes one that raises when told to stop
    :param random_fraction: returns a float in ``[0, 1)``, the jitter
    :param retryable: returns the code to log for an error worth retrying, ``None`` for any other
    :raises RetriesExhaustedError: every one of ``policy.max_attempts`` attempts failed with a retryable error;
        the last error is chained.
    :raises Exception: the first error that is not retryable, unchanged.
    """
    where = f"Table {table_name!r}" if segment is None else f"Table {table_name!r} segment {segment}"
    attempt = 1
    while True:
        try:
            return call()
        except Exception as error:
            code = retryable(error)
            if code is None:
                raise
            if attempt >= policy.max_attempts:
                raise _exhausted(where, operation, attempt, code) from error
            pause = policy.delay(attempt, random_fraction())
            _log_retry(table_name, segment, operation, code, attempt, policy.max_attempts, pause)
            if on_retry is not None:
                on_retry(code)
            sleep(pause)
            attempt += 1


def _exhausted(where: str, operation: str, attempt: int, code: str) -> RetriesExhaustedError:
    return RetriesExhaustedError(
        f"{where}: {operation} failed {attempt} time(s) in a row, the last time with {code}. "
        + (
            "DynamoDB kept throttling: lower read_capacity_fraction or max_read_capacity_units (reads), "
            "write with fewer threads (writes), or raise max_attempts."
            if is_throttling(code)
            else "DynamoDB or the network kept failing: check the endpoint, or raise max_attempts."
        )
    )


def _log_retry(
    table_name: str, segment: int | None, operation: str, code: str, attempt: int, max_attempts: int, pause: float
) -> None:
    if segment is None:
        log.warning(
            "Table %s: %s failed with %s (attempt %s of %s); retrying in %.3f s",
            table_name,
            operation,
            code,
            attempt,
            max_attempts,
            pause,
        )
    else:
        log.warning(
            "Table %s segment %s: %s failed with %s (attempt %s of %s); retrying in %.3f s",
            table_name,
            segment,
            operation,
            code,
            attempt,
            max_attempts,
            pause,
        )
