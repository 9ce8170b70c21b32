"""
Credentials, connection extras and item contents never reach logs, XCom or exception text.

The ``aws_default`` connection carries distinctive secrets (its login and password, and a session token in its
extras) and points at the local DynamoDB server (dynalite), which accepts any credentials; one item of the table
carries distinctive secrets in non-key attributes (text, a nested map, binary). Each scenario, successful or
failing, runs with:

* ``caplog`` capturing the package's loggers (``airflow_dynamoscan``) and ``airflow.task`` at DEBUG, ``botocore``
  at INFO, and every other logger at INFO through the root logger. botocore logs request and response bodies,
  headers and signatures at DEBUG on its own loggers, outside this package's control: the requirement covers our
  logs, not botocore's debug output;
* ``capsys`` capturing stdout and stderr: Airflow 3 sends operators' and hooks' ``self.log`` through structlog,
  which prints to stdout in tests rather than to a logging handler;

and asserts that no secret occurs in the captured logs, the captured output, the operators' return values (XCom,
as ``json.dumps``), or the exception raised: ``str`` and ``repr`` of it and of every exception chained to it
(``__cause__``, and ``__context__`` unless suppressed), and the traceback as Airflow would log it. Each scenario
also checks that the capture saw this run's log lines, so that an empty capture cannot pass for a clean one.
"""

from __future__ import annotations

import base64
import json
import logging
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_dynamoscan.compat import AirflowFailException
from airflow_dynamoscan.exceptions import DestinationError, ScanRequestError, TableNotFoundError, TransformError
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator
from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator
from devtools.sample_data import create_table, put_items
from tests.conftest import unique_table_name

LOGIN = "AKIASECRETLOGIN123"
PASSWORD = "very-secret-password-xyz"
SESSION_TOKEN = "session-token-SECRET-0d9c8b7a6f"
CARD = "item-secret-4111-1111-1111-1111"
NESTED = "nested-item-secret-ssn-078-05-1120"
BLOB = b"binary-item-secret-55aa"
SECRETS = {
    "connection login": LOGIN,
    "connection password": PASSWORD,
    "session token (connection extra)": SESSION_TOKEN,
    "item text attribute": CARD,
    "item nested attribute": NESTED,
    "item binary attribute": BLOB.decode("ascii"),
    "item binary attribute, base64": base64.b64encode(BLOB).decode("ascii"),
}
SECRET_KEY = "customer#2"


@pytest.fixture
def secret_connection(dynalite_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point ``aws_default`` at the local server with distinctive credentials; return the connection id."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "login": LOGIN,
                "password": PASSWORD,
                "extra": {
                    "region_name": "us-east-1",
                    "endpoint_url": dynalite_endpoint,
                    "aws_session_token": SESSION_TOKEN,
                },
            }
        ),
    )
    return "aws_default"


def customers() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"pk": f"customer#{number}", "status": "active"} for number in range(4)]
    items[2].update({"card": CARD, "profile": {"ssn": NESTED, "tier": "gold"}, "blob": BLOB})
    return items


@pytest.fixture
def secret_table(dynalite_client: Any) -> str:
    """A fresh table of four customers, ``customer#2`` holding every item secret (tests may change it)."""
    name = unique_table_name("secrets")
    create_table(dynalite_client, name)
    put_items(dynalite_client, name, customers())
    return name


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """Capture as the module docstring says; yield a function returning everything captured so far."""
    # set_level also sets the capture handler's level: the INFO logger first, so the handler ends at DEBUG.
    caplog.set_level(logging.INFO, logger="botocore")
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="airflow_dynamoscan")
    caplog.set_level(logging.DEBUG, logger="airflow.task")
    output: list[str] = []

    def everything() -> str:
        streams = capsys.readouterr()
        output.extend([streams.out, streams.err])
        return "\n".join([caplog.text, *output])

    yield everything


def assert_no_secret(text: str, where: str) -> None:
    leaked = [name for name, secret in SECRETS.items() if secret in text]
    assert not leaked, f"{where} holds the secret(s): {', '.join(leaked)}"


def exception_texts(error: BaseException) -> list[str]:
    """``str`` and ``repr`` of the error and of each exception chained to it, then the formatted traceback."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current)]
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    texts.append("".join(traceback.format_exception(error)))
    return texts


def assert_error_is_clean(error: BaseException) -> None:
    for text in exception_texts(error):
        assert_no_secret(text, "the exception")


def raised(call: Callable[[], Any], error_type: type[BaseException]) -> BaseException:
    with pytest.raises((error_type, AirflowFailException)) as info:
        call()
    error = info.value
    if isinstance(error, AirflowFailException):
        # An operator ends a task no retry can fix with AirflowFailException: same message, caused by the error.
        assert isinstance(error.__cause__, error_type), repr(error.__cause__)
        assert str(error) == str(error.__cause__)
    return error


def export(table_name: str, destination: Path | str, **kwargs: Any) -> dict[str, Any]:
    operator = DynamoDBExportOperator(task_id="export", table_name=table_name, destination=str(destination), **kwargs)
    result: dict[str, Any] = operator.execute({})  # type: ignore[arg-type]
    return result


def transform(table_name: str, function: Callable[[dict[str, Any]], Any], **kwargs: Any) -> dict[str, Any]:
    operator = DynamoDBTransformOperator(task_id="transform", table_name=table_name, transform=function, **kwargs)
    result: dict[str, Any] = operator.execute({})  # type: ignore[arg-type]
    return result


pytestmark = pytest.mark.usefixtures("secret_connection")


def test_hook_scans_and_counts_leak_nothing(secret_table: str, captured: Callable[[], str]) -> None:
    hook = DynamoDBScanHook()
    serial = list(hook.scan(secret_table))
    parallel = list(hook.parallel_scan(secret_table, total_segments=3, max_workers=2))
    raw = list(hook.scan_segment(secret_table, 0, 1, deserialize=False))
    counted = hook.count(secret_table, total_segments=2)
    # The secrets are read (the data is the caller's), and reach no log or output.
    by_pk = {item["pk"]: item for item in serial}
    assert by_pk[SECRET_KEY]["card"] == CARD and by_pk[SECRET_KEY]["blob"] == BLOB
    assert sorted(item["pk"] for item in parallel) == sorted(by_pk)
    assert {"S": CARD} in [item.get("card") for item in raw]
    assert counted == 4
    logs = captured()
    assert f"Parallel scan of {secret_table}: 3 segments, 2 workers" in logs
    assert "credentials retrieved from login and password" in logs  # the connection was really used
    assert_no_secret(logs, "the logs and output")


def test_successful_export_and_manifest_leak_nothing(
    secret_table: str, tmp_path: Path, captured: Callable[[], str]
) -> None:
    whole = export(secret_table, tmp_path / "whole", total_segments=2)
    mapped = [
        export(secret_table, tmp_path / "mapped", file_format="csv", segment=segment, total_segments=2)
        for segment in range(2)
    ]
    summary = DynamoDBExportManifestOperator(task_id="manifest", results=mapped).execute({})  # type: ignore[arg-type]
    assert CARD in (tmp_path / "whole" / whole["parts"][0]["path"]).read_text()  # the export itself holds the data
    assert summary["items"] == whole["items"] == 4
    for result in [whole, *mapped, summary]:
        assert_no_secret(json.dumps(result), "the XCom value")
    logs = captured()
    assert f"Exporting table {secret_table} (segment 1 of 2)" in logs
    assert f"Export of table {secret_table} complete: 4 items" in logs
    assert_no_secret(logs, "the logs and output")


FAILING_EXPORTS: dict[str, tuple[dict[str, Any], type[BaseException]]] = {
    "missing-table": ({"table_name": "no-such-secret-table"}, TableNotFoundError),
    "value-not-defined": ({"scan_kwargs": {"FilterExpression": "card = :card"}}, ScanRequestError),
    "syntax-error": (
        {"scan_kwargs": {"FilterExpression": "card === :card", "ExpressionAttributeValues": {":card": {"S": "x"}}}},
        ScanRequestError,
    ),
    "destination-under-a-file": ({"destination": "blocker/export"}, DestinationError),
}


@pytest.mark.parametrize(("kwargs", "error_type"), list(FAILING_EXPORTS.values()), ids=list(FAILING_EXPORTS))
def test_failed_export_leaks_nothing(
    secret_table: str,
    tmp_path: Path,
    captured: Callable[[], str],
    kwargs: dict[str, Any],
    error_type: type[BaseException],
) -> None:
    (tmp_path / "blocker").write_bytes(b"a file")
    arguments = {"table_name": secret_table, "destination": "export", **kwargs}
    arguments["destination"] = str(tmp_path / arguments["destination"])
    error = raised(lambda: export(**arguments, segment=1, total_segments=2), error_type)
    assert_error_is_clean(error)
    logs = captured()
    if error_type is not DestinationError:  # a destination is checked before the connection is used
        assert "credentials retrieved from login and password" in logs
    assert_no_secret(logs, "the logs and output")


def test_successful_transform_leaks_nothing(secret_table: str, captured: Callable[[], str]) -> None:
    result = transform(secret_table, lambda item: {**item, "status": "seen"}, max_workers=2)
    assert (result["scanned"], result["written"]) == (4, 4)
    assert_no_secret(json.dumps(result), "the XCom value")
    logs = captured()
    assert f"Transformed the whole table of table {secret_table}: 4 scanned, 4 written" in logs
    assert_no_secret(logs, "the logs and output")


def raise_plainly(item: dict[str, Any]) -> Any:
    raise RuntimeError("normalisation failed")


def raise_on_missing_attribute(item: dict[str, Any]) -> Any:
    return {**item, "status": item["no-such-attribute"]}


def return_the_secret(item: dict[str, Any]) -> Any:
    return item["card"]


def return_a_float(item: dict[str, Any]) -> Any:
    return {**item, "profile": {**item["profile"], "score": 0.5}}


def raise_quoting_the_item(item: dict[str, Any]) -> Any:
    return {**item, "card": int(item["card"])}  # ValueError: invalid literal for int() with base 10: '...'


FAILING_TRANSFORMS = [
    pytest.param(raise_plainly, "the transform raised RuntimeError on the item", id="raises"),
    pytest.param(raise_on_missing_attribute, "the transform raised KeyError on the item", id="raises-key-error"),
    pytest.param(return_the_secret, "the transform returned a str for the item", id="returns-the-secret-text"),
    pytest.param(return_a_float, "attribute 'profile.score' of the transform's result", id="returns-a-float"),
    pytest.param(
        raise_quoting_the_item,
        "the transform raised ValueError on the item",
        id="raises-quoting-the-item",
    ),
]


@pytest.mark.parametrize(("failing", "described"), FAILING_TRANSFORMS)
def test_failing_transform_leaks_nothing(
    secret_table: str,
    dynalite_client: Any,
    captured: Callable[[], str],
    failing: Callable[[dict[str, Any]], Any],
    described: str,
) -> None:
    def function(item: dict[str, Any]) -> Any:
        return failing(item) if item["pk"] == SECRET_KEY else item

    error = raised(lambda: transform(secret_table, function), TransformError)
    assert str(error).startswith(f"Table {secret_table!r}: {described}")
    assert f"key pk={SECRET_KEY!r}" in str(error)  # the item is named by its key only
    assert_error_is_clean(error)
    logs = captured()
    assert f"Transforming the whole table of table {secret_table} into itself" in logs
    assert_no_secret(logs, "the logs and output")
