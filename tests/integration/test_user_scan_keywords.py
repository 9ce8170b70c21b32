"""
Scan keywords as DAG authors type them, on the local DynamoDB server: a misspelt keyword is refused before any
request with the closest allowed name, plain Python values in ``ExpressionAttributeValues`` select exactly the
items their AttributeValue form selects, and a segment count Airflow cannot map is refused by the plan step.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError

from airflow_dynamoscan.compat import AirflowFailException
from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportOperator
from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator
from airflow_dynamoscan.scan.scanner import SCAN_KEYWORDS
from airflow_dynamoscan.task_groups import plan_export_segments
from devtools.sample_data import create_table, put_items
from tests.conftest import unique_table_name

pytestmark = pytest.mark.usefixtures("aws_connection_env")

STATUSES = ("paid", "pending", "shipped")
ALLOWED = (
    "AttributesToGet, ConditionalOperator, ConsistentRead, ExpressionAttributeNames, ExpressionAttributeValues, "
    "FilterExpression, IndexName, Limit, ProjectionExpression, ReturnConsumedCapacity, ScanFilter, Select"
)


def order(number: int) -> dict[str, Any]:
    return {
        "pk": f"o{number:02d}",
        "status": STATUSES[number % 3],
        "n": number,
        "flag": number % 2 == 0,
        "code": bytes([number % 4]),
        "tags": {"all", f"t{number % 5}"},
        "note": None,
    }


@pytest.fixture(scope="module")
def orders(dynalite_client: Any) -> str:
    name = unique_table_name("keywords")
    create_table(dynalite_client, name)
    put_items(dynalite_client, name, [order(number) for number in range(30)])
    return name


def scanned_keys(table_name: str, **scan_kwargs: Any) -> list[str]:
    return sorted(item["pk"] for item in DynamoDBScanHook().scan(table_name, **scan_kwargs))


def test_scan_keywords_match_botocores_scan_request() -> None:
    members = DynamoDBScanHook().client.meta.service_model.operation_model("Scan").input_shape.members
    assert frozenset(members) == SCAN_KEYWORDS


@pytest.mark.parametrize(
    ("misspelt", "suggested"),
    [("FilterExpresion", "FilterExpression"), ("ProjectionExpresion", "ProjectionExpression"), ("limit", "Limit")],
)
def test_a_misspelt_keyword_is_refused_before_any_request(
    orders: str, tmp_path: Path, misspelt: str, suggested: str
) -> None:
    expected = (
        f"Table {orders!r}: {misspelt!r} is not a Scan keyword. Did you mean {suggested!r}? "
        f"Allowed in scan_kwargs: {ALLOWED}."
    )
    hook = DynamoDBScanHook()
    with pytest.raises(InvalidScanArgumentError) as raised:
        list(hook.scan(orders, **{misspelt: "x"}))
    assert str(raised.value) == expected

    export = DynamoDBExportOperator(
        task_id="export", table_name=orders, destination=str(tmp_path / "out"), scan_kwargs={misspelt: "x"}
    )
    transform = DynamoDBTransformOperator(
        task_id="transform", table_name=orders, transform=lambda item: item, scan_kwargs={misspelt: "x"}
    )
    for operator in (export, transform):
        requests: list[int] = []
        operator.hook._scan_client.meta.events.register("before-call.dynamodb", lambda _r=requests, **_: _r.append(1))
        with pytest.raises(AirflowFailException) as failed:
            operator.execute({})  # type: ignore[arg-type]
        assert str(failed.value) == expected
        assert requests == []
    assert not (tmp_path / "out").exists()


def test_a_keyword_unlike_any_gets_the_allowed_list_only(orders: str) -> None:
    with pytest.raises(InvalidScanArgumentError) as raised:
        list(DynamoDBScanHook().scan(orders, Zzz=1))
    assert str(raised.value) == f"Table {orders!r}: 'Zzz' is not a Scan keyword. Allowed in scan_kwargs: {ALLOWED}."


@pytest.mark.parametrize(
    ("expression", "plain", "attribute_values", "expected"),
    [
        ("#s = :s", {":s": "paid"}, {":s": {"S": "paid"}}, [n for n in range(30) if n % 3 == 0]),
        ("n >= :n", {":n": 25}, {":n": {"N": "25"}}, list(range(25, 30))),
        ("n < :n", {":n": Decimal("2.5")}, {":n": {"N": "2.5"}}, [0, 1, 2]),
        ("flag = :f", {":f": True}, {":f": {"BOOL": True}}, list(range(0, 30, 2))),
        ("code = :c", {":c": b"\x03"}, {":c": {"B": b"\x03"}}, list(range(3, 30, 4))),
        ("contains(tags, :t)", {":t": "t4"}, {":t": {"S": "t4"}}, [4, 9, 14, 19, 24, 29]),
        ("tags = :set", {":set": {"all", "t0"}}, {":set": {"SS": ["all", "t0"]}}, [0, 5, 10, 15, 20, 25]),
        ("note = :none", {":none": None}, {":none": {"NULL": True}}, list(range(30))),
        (
            "#s = :s AND n < :n",  # plain and AttributeValue mixed in one dict
            {":s": "shipped", ":n": {"N": "10"}},
            {":s": {"S": "shipped"}, ":n": {"N": "10"}},
            [2, 5, 8],
        ),
    ],
    ids=["str", "int", "decimal", "bool", "bytes", "contains", "string-set", "null", "mixed"],
)
def test_plain_python_expression_values_select_what_attribute_values_select(
    orders: str, expression: str, plain: dict[str, Any], attribute_values: dict[str, Any], expected: list[int]
) -> None:
    names = {"#s": "status"} if "#s" in expression else None
    extra = {"ExpressionAttributeNames": names} if names else {}
    keys = [f"o{number:02d}" for number in expected]
    assert (
        scanned_keys(orders, FilterExpression=expression, ExpressionAttributeValues=attribute_values, **extra) == keys
    )
    assert scanned_keys(orders, FilterExpression=expression, ExpressionAttributeValues=plain, **extra) == keys
    parallel = DynamoDBScanHook().parallel_scan(
        orders, total_segments=3, FilterExpression=expression, ExpressionAttributeValues=plain, **extra
    )
    assert sorted(item["pk"] for item in parallel) == keys


def test_plain_values_in_an_export_and_a_transform(orders: str, tmp_path: Path, dynalite_client: Any) -> None:
    scan_kwargs = {"FilterExpression": "#s = :s", "ExpressionAttributeNames": {"#s": "status"}}
    result = DynamoDBExportOperator(
        task_id="export",
        table_name=orders,
        destination=str(tmp_path / "out"),
        scan_kwargs={**scan_kwargs, "ExpressionAttributeValues": {":s": "pending"}},
    ).execute({})  # type: ignore[arg-type]
    assert result["items"] == 10
    target = unique_table_name("keywords-copy")
    create_table(dynalite_client, target)
    copied = DynamoDBTransformOperator(
        task_id="copy",
        table_name=orders,
        target_table_name=target,
        transform=lambda item: item,
        scan_kwargs={**scan_kwargs, "ExpressionAttributeValues": {":s": "shipped"}},
    ).execute({})  # type: ignore[arg-type]
    assert copied["written"] == 10
    stored = dynalite_client.scan(TableName=target)["Items"]
    assert sorted(item["pk"]["S"] for item in stored) == [f"o{n:02d}" for n in range(2, 30, 3)]


def test_a_one_key_dict_named_like_a_type_is_an_attribute_value(orders: str) -> None:
    # Documented: {"S": "paid"} is the AttributeValue of the string "paid", not a map with the key "S".
    names = {"#s": "status"}
    paid = scanned_keys(
        orders,
        FilterExpression="#s = :s",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={":s": {"S": "paid"}},
    )
    assert len(paid) == 10


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {":n": 2.5},
            "ExpressionAttributeValues[':n'] is a float, which DynamoDB cannot store (use decimal.Decimal or int). "
            "Allowed: str, int, decimal.Decimal (at most 38 significant digits), bytes, bool, None, non-empty sets, "
            'lists, dicts, or an AttributeValue such as {"S": "paid"}.',
        ),
        (
            {"n": 2},
            "ExpressionAttributeValues placeholder 'n' must be a string starting with ':', e.g. {':status': 'paid'}.",
        ),
        (
            ["paid"],
            "scan keyword ExpressionAttributeValues must be a dict of placeholders (':name') to values; got a list.",
        ),
    ],
    ids=["float", "no-colon", "list"],
)
def test_expression_values_dynamodb_cannot_take_are_refused_early(
    orders: str, tmp_path: Path, values: Any, message: str
) -> None:
    operator = DynamoDBExportOperator(
        task_id="export",
        table_name=orders,
        destination=str(tmp_path / "out"),
        scan_kwargs={"FilterExpression": "n < :n", "ExpressionAttributeValues": values},
    )
    with pytest.raises(AirflowFailException) as failed:
        operator.execute({})  # type: ignore[arg-type]
    assert str(failed.value) == f"Table {orders!r}: {message}"
    assert not (tmp_path / "out").exists()


def test_a_plan_beyond_max_map_length_is_refused(orders: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidScanArgumentError) as raised:
        plan_export_segments(orders, 1025)
    assert str(raised.value) == (
        f"Table {orders!r}: total_segments=1025 is more segments than Airflow maps tasks: [core] max_map_length "
        "is 1024. Use at most 1024 segments, total_segments='auto', or raise max_map_length "
        "(AIRFLOW__CORE__MAX_MAP_LENGTH)."
    )
    assert len(plan_export_segments(orders, 1024)) == 1024
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "16")
    with pytest.raises(InvalidScanArgumentError, match=r"total_segments=17 .* max_map_length is 16\."):
        plan_export_segments(orders, "17")  # type: ignore[arg-type]
    assert len(plan_export_segments(orders, 16)) == 16


def test_botocore_still_checks_what_it_alone_knows(orders: str) -> None:
    with pytest.raises(ParamValidationError):
        list(DynamoDBScanHook().scan(orders, Limit="ten"))
