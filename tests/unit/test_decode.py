from __future__ import annotations

import base64
from decimal import Decimal

import boto3
import botocore
import pytest
from moto import mock_aws

from airflow_dynamoscan.scan.decode import (
    WIRE_ITEMS_KEY,
    deserialize_attribute_value,
    deserialize_item,
    deserialize_wire_item,
    fast_decoding_available,
    install_fast_decoding,
    wire_item_to_client_item,
)


def nested_map(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"M": {"leaf": {"N": "1.5"}}}
    for level in range(depth - 1):
        value = {"M": {f"level{level}": value, "n": {"N": str(level)}}}
    return value


def test_every_type_decodes_exactly() -> None:
    item = {
        "s": {"S": "ünïcødé"},
        "empty": {"S": ""},
        "n": {"N": "12345678901234567890.123456789"},
        "int": {"N": "-7"},
        "exp": {"N": "1E-130"},
        "b": {"B": b"\x00\xff"},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.50"]},
        "bs": {"BS": [b"\x01", b"\x02"]},
        "t": {"BOOL": True},
        "f": {"BOOL": False},
        "null": {"NULL": True},
        "l": {"L": [{"S": "x"}, {"N": "3"}, {"L": []}]},
        "m": {"M": {"k": {"M": {}}}},
    }
    assert deserialize_item(item) == {
        "s": "ünïcødé",
        "empty": "",
        "n": Decimal("12345678901234567890.123456789"),
        "int": Decimal(-7),
        "exp": Decimal("1E-130"),
        "b": b"\x00\xff",
        "ss": {"a", "b"},
        "ns": {Decimal(1), Decimal("2.5")},
        "bs": {b"\x01", b"\x02"},
        "t": True,
        "f": False,
        "null": None,
        "l": ["x", Decimal(3), []],
        "m": {"k": {}},
    }
    decoded = deserialize_item(item)
    assert str(decoded["n"]) == "12345678901234567890.123456789"
    assert type(decoded["b"]) is bytes


def test_ten_level_nested_map() -> None:
    value = deserialize_attribute_value(nested_map(10))
    depth = 0
    while "leaf" not in value:
        value = value[f"level{8 - depth}"]
        depth += 1
    assert depth == 9
    assert value == {"leaf": Decimal("1.5")}


def test_wire_shape_decodes_base64_binary() -> None:
    wire = {
        "b": {"B": base64.b64encode(b"\x00\x01").decode()},
        "bs": {"BS": [base64.b64encode(b"x").decode(), base64.b64encode(b"").decode()]},
        "l": {"L": [{"B": base64.b64encode(b"\xfe").decode()}]},
        "m": {"M": {"inner": {"BS": [base64.b64encode(b"y").decode()]}}},
        "s": {"S": "QUJD"},
    }
    assert deserialize_wire_item(wire) == {
        "b": b"\x00\x01",
        "bs": {b"x", b""},
        "l": [b"\xfe"],
        "m": {"inner": {b"y"}},
        "s": "QUJD",
    }
    assert wire_item_to_client_item(wire) == {
        "b": {"B": b"\x00\x01"},
        "bs": {"BS": [b"x", b""]},
        "l": {"L": [{"B": b"\xfe"}]},
        "m": {"M": {"inner": {"BS": [b"y"]}}},
        "s": {"S": "QUJD"},
    }


def test_unknown_and_empty_attribute_values_are_refused() -> None:
    with pytest.raises(ValueError, match="Unknown DynamoDB AttributeValue type 'X'"):
        deserialize_item({"a": {"X": "1"}})
    with pytest.raises(ValueError, match="Empty DynamoDB AttributeValue"):
        deserialize_item({"a": {}})


@pytest.mark.parametrize(
    ("version", "available"),
    [
        ("1.34.90", False),
        ("1.35.15", False),
        ("1.35.16", True),
        ("1.35.100", True),
        ("1.44.8", True),
        ("2.0.0rc1", True),
    ],
)
def test_fast_decoding_needs_a_botocore_with_the_before_parse_event(version: str, available: bool) -> None:
    assert fast_decoding_available(version) is available


@pytest.mark.parametrize("botocore_version", ["1.34.90", None])
def test_an_old_botocore_leaves_the_client_to_its_own_parser(
    monkeypatch: pytest.MonkeyPatch, botocore_version: str | None
) -> None:
    if botocore_version is None and not fast_decoding_available():
        pytest.skip("this botocore has no before-parse event")
    if botocore_version is not None:
        monkeypatch.setattr(botocore, "__version__", botocore_version)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.put_item(TableName="t", Item={"pk": {"S": "a"}, "blob": {"B": b"\x00"}})
        response = install_fast_decoding(client).scan(TableName="t")
    if botocore_version is None:
        assert "Items" not in response and response[WIRE_ITEMS_KEY] == [{"pk": {"S": "a"}, "blob": {"B": "AA=="}}]
    else:
        assert WIRE_ITEMS_KEY not in response and response["Items"] == [{"pk": {"S": "a"}, "blob": {"B": b"\x00"}}]
