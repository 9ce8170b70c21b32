"""The retry policy and call_with_retries (scan/retry.py), with a recorded sleep and a fixed jitter."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from airflow_dynamoscan.exceptions import InvalidScanArgumentError, RetriesExhaustedError
from airflow_dynamoscan.scan.retry import (
    RetryPolicy,
    call_with_retries,
    is_throttling,
    resolve_retry_policy,
    retryable_error_code,
)

SECRET = "item-value-s3cr3t"


def client_error(code: str, status: int = 400, message: str = SECRET) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Scan"
    )


class FlakyCall:
    """Fails with ``errors`` one after the other, then returns ``result``; records every call."""

    def __init__(self, errors: list[BaseException], result: Any = "page") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"max_attempts": 0}, "max_attempts=0 is not allowed"),
        ({"max_attempts": True}, "max_attempts=True is not allowed"),
        ({"max_attempts": 2.5}, "max_attempts=2.5 is not allowed"),
        ({"base_delay": -0.1}, "base_delay=-0.1 is not allowed"),
        ({"max_delay": float("inf")}, "max_delay=inf is not allowed"),
        ({"base_delay": 2.0, "max_delay": 1.0}, "base_delay=2.0 is greater than max_delay=1.0"),
    ],
)
def test_policy_refuses_impossible_values(arguments: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidScanArgumentError, match=fragment):
        RetryPolicy(**arguments)


def test_backoff_doubles_up_to_the_maximum_and_jitter_spans_zero_to_the_limit() -> None:
    policy = RetryPolicy(max_attempts=12, base_delay=0.1, max_delay=1.0)
    assert [policy.backoff_limit(retry) for retry in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert policy.backoff_limit(10_000) == 1.0  # no overflow for absurd attempt numbers
    assert policy.delay(3, 0.0) == 0.0
    assert policy.delay(3, 0.5) == pytest.approx(0.2)
    assert policy.delay(3, 0.999) == pytest.approx(0.3996)


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    ],
)
def test_throttling_and_server_errors_are_retryable(code: str) -> None:
    status = 500 if code in ("InternalServerError", "ServiceUnavailable") else 400
    assert retryable_error_code(client_error(code, status)) == code


def test_any_5xx_and_429_are_retryable_other_client_errors_are_not() -> None:
    assert retryable_error_code(client_error("", 503)) == "HTTP 503"
    assert retryable_error_code(client_error("SomethingNew", 502)) == "SomethingNew"
    assert retryable_error_code(client_error("", 429)) == "HTTP 429"
    for code in ("ValidationException", "ResourceNotFoundException", "AccessDeniedException"):
        assert retryable_error_code(client_error(code, 400)) is None


def test_connection_failures_are_retryable_but_not_ssl_or_credentials() -> None:
    url = "http://127.0.0.1:1"
    assert retryable_error_code(ConnectionClosedError(endpoint_url=url)) == "ConnectionClosedError"
    assert retryable_error_code(ReadTimeoutError(endpoint_url=url)) == "ReadTimeoutError"
    assert retryable_error_code(EndpointConnectionError(endpoint_url=url)) == "EndpointConnectionError"
    assert retryable_error_code(ConnectTimeoutError(endpoint_url=url)) == "ConnectTimeoutError"
    assert retryable_error_code(SSLError(endpoint_url=url, error="bad certificate")) is None
    assert retryable_error_code(NoCredentialsError()) is None
    assert retryable_error_code(ValueError("x")) is None
    assert is_throttling("ThrottlingException") and is_throttling("HTTP 429")
    assert not is_throttling("InternalServerError")


def test_retries_the_same_call_with_full_jitter_pauses_and_counts_them(caplog: pytest.LogCaptureFixture) -> None:
    call = FlakyCall(
        [
            client_error("ProvisionedThroughputExceededException"),
            ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
            client_error("InternalServerError", 500),
        ]
    )
    pauses: list[float] = []
    codes: list[str] = []
    with caplog.at_level(logging.WARNING, logger="airflow_dynamoscan.scan.retry"):
        result = call_with_retries(
            call,
            RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=5.0),
            table_name="orders",
            operation="Scan",
            segment=3,
            on_retry=codes.append,
            sleep=pauses.append,
            random_fraction=lambda: 0.5,
        )
    assert result == "page"
    assert call.calls == 4
    assert pauses == pytest.approx([0.05, 0.1, 0.2])
    assert codes == ["ProvisionedThroughputExceededException", "ConnectionClosedError", "InternalServerError"]
    assert [record.levelno for record in caplog.records] == [logging.WARNING] * 3
    assert caplog.records[0].getMessage() == (
        "Table orders segment 3: Scan failed with ProvisionedThroughputExceededException (attempt 1 of 4); "
        "retrying in 0.050 s"
    )
    assert caplog.records[2].getMessage().endswith("InternalServerError (attempt 3 of 4); retrying in 0.200 s")
    assert SECRET not in caplog.text


def test_gives_up_after_max_attempts_with_the_last_error_chained(caplog: pytest.LogCaptureFixture) -> None:
    errors = [client_error("ThrottlingException") for _ in range(3)]
    call = FlakyCall(list(errors))
    pauses: list[float] = []
    with pytest.raises(RetriesExhaustedError) as raised:
        call_with_retries(
            call,
            RetryPolicy(max_attempts=3),
            table_name="orders",
            operation="BatchWriteItem",
            sleep=pauses.append,
            random_fraction=lambda: 1.0,
        )
    assert call.calls == 3
    assert pauses == pytest.approx([0.1, 0.2])
    assert raised.value.__cause__ is errors[2]
    message = str(raised.value)
    assert message.startswith(
        "Table 'orders': BatchWriteItem failed 3 time(s) in a row, the last time with ThrottlingException."
    )
    assert "read_capacity_fraction" in message and "max_attempts" in message
    assert SECRET not in message and SECRET not in caplog.text


def test_an_error_that_is_not_retryable_is_raised_at_once() -> None:
    error = client_error("ValidationException")
    call = FlakyCall([error])
    pauses: list[float] = []
    with pytest.raises(ClientError) as raised:
        call_with_retries(call, RetryPolicy(), table_name="orders", operation="Scan", sleep=pauses.append)
    assert raised.value is error
    assert call.calls == 1 and pauses == []


def test_one_attempt_means_no_retry() -> None:
    call = FlakyCall([client_error("ThrottlingException")])
    with pytest.raises(RetriesExhaustedError, match="failed 1 time"):
        call_with_retries(call, RetryPolicy(max_attempts=1), table_name="t", operation="Scan", sleep=lambda _: None)
    assert call.calls == 1


def test_resolve_retry_policy() -> None:
    assert resolve_retry_policy(None, None) == RetryPolicy()
    assert resolve_retry_policy(None, 3) == RetryPolicy(max_attempts=3)
    policy = RetryPolicy(max_attempts=5, base_delay=0.5)
    assert resolve_retry_policy(policy, None) is policy
    with pytest.raises(InvalidScanArgumentError, match=r"request_retry_policy=.* and request_max_attempts=3 were both"):
        resolve_retry_policy(policy, 3, names=("request_retry_policy", "request_max_attempts"))
    with pytest.raises(InvalidScanArgumentError, match="max_attempts=0 is not allowed"):
        resolve_retry_policy(None, 0)
    with pytest.raises(InvalidScanArgumentError, match="retry_policy must be an airflow_dynamoscan"):
        resolve_retry_policy({"max_attempts": 3}, None)  # type: ignore[arg-type]
