"""
The fast decoding path gives exactly what botocore's parser and boto3's TypeDeserializer give, for random items.

No server: each example is a Scan response body built as JSON text, as DynamoDB sends it. The reference path is
botocore's real JSON parser for the Scan output shape of the dynamodb service model, then
``boto3.dynamodb.types.TypeDeserializer`` (its ``Binary`` wrapper normalised to ``bytes``). The fast path is what a
client with fast decoding runs: the ``before-parse`` handler ``_read_fast``, botocore's parser on what it leaves,
then the scanner's page decoding. ``deserialize=False`` must give botocore's raw AttributeValues exactly.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import botocore.parsers
import botocore.session
import orjson
from boto3.dynamodb.types import DYNAMODB_CONTEXT, Binary, TypeDeserializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_dynamoscan.scan.decode import WIRE_ITEMS_KEY, _read_fast, deserialize_item
from airflow_dynamoscan.scan.scanner import _page_of

_SCAN_OUTPUT: Any = botocore.session.get_session().get_service_model("dynamodb").operation_model("Scan").output_shape
_DESERIALIZER = TypeDeserializer()

# DynamoDB numbers: up to 38 significant digits, magnitude from 1E-130 to below 1E+126.
_MIN_ADJUSTED_EXPONENT = -130
_MAX_ADJUSTED_EXPONENT = 125


@st.composite
def number_texts(draw: st.DrawFn) -> str:
    """The text of a DynamoDB number, in the forms a client may meet: integer, fixed point or exponent."""
    digit_count = draw(st.integers(1, 38))
    digits = draw(st.text("0123456789", min_size=digit_count, max_size=digit_count)).lstrip("0") or "0"
    # boto3's decimal context (the reference) rounds below an exponent of -165 (Emin -128, 38 digits of precision).
    adjusted = draw(st.integers(max(_MIN_ADJUSTED_EXPONENT, len(digits) - 166), _MAX_ADJUSTED_EXPONENT))
    number = Decimal(f"{draw(st.sampled_from(['', '-']))}{digits}E{adjusted - len(digits) + 1}")
    form = draw(st.sampled_from(["canonical", "fixed", "lower-exponent"]))
    if form == "fixed" and -40 <= adjusted <= 40:
        fixed = format(number, "f")
        # Written out, trailing zeros count as digits: keep to the 38 DynamoDB stores.
        if len(Decimal(fixed).as_tuple().digits) <= 38:
            return fixed
    if form == "lower-exponent":
        return format(number, "e") if number else "0"
    return str(number)


def _numeric_key(text: str) -> Decimal:
    return Decimal(text)


_texts = st.text(max_size=12)
_blobs = st.binary(max_size=12)

_scalar_values = st.one_of(
    st.builds(lambda text: {"S": text}, _texts),
    st.builds(lambda text: {"N": text}, number_texts()),
    st.builds(lambda blob: {"B": blob}, _blobs),
    st.builds(lambda texts: {"SS": texts}, st.lists(_texts, min_size=1, max_size=4, unique=True)),
    st.builds(
        lambda numbers: {"NS": numbers},
        st.lists(number_texts(), min_size=1, max_size=4, unique_by=_numeric_key),
    ),
    st.builds(lambda blobs: {"BS": blobs}, st.lists(_blobs, min_size=1, max_size=4, unique=True)),
    st.builds(lambda flag: {"BOOL": flag}, st.booleans()),
    st.just({"NULL": True}),
)

#: AttributeValues in the client shape (``B`` as bytes), nested through ``L`` and ``M``.
attribute_values = st.recursive(
    _scalar_values,
    lambda children: st.one_of(
        st.builds(lambda values: {"L": values}, st.lists(children, max_size=4)),
        st.builds(lambda values: {"M": values}, st.dictionaries(_texts, children, max_size=4)),
    ),
    max_leaves=12,
)
_attribute_names = st.text(min_size=1, max_size=8)
items = st.dictionaries(_attribute_names, attribute_values, min_size=1, max_size=6)
_key_values = st.one_of(
    st.builds(lambda text: {"S": text}, st.text(min_size=1, max_size=8)),
    st.builds(lambda text: {"N": text}, number_texts()),
    st.builds(lambda blob: {"B": blob}, st.binary(min_size=1, max_size=8)),
)
last_evaluated_keys = st.none() | st.dictionaries(_attribute_names, _key_values, min_size=1, max_size=2)


def to_wire(value: Any) -> Any:
    """The JSON-ready wire shape of client-shape AttributeValues: ``B``/``BS`` values as base64 text."""
    if isinstance(value, dict):
        return {name: to_wire(nested) for name, nested in value.items()}
    if isinstance(value, list):
        return [to_wire(nested) for nested in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def scan_body(page_items: list[dict[str, Any]], last_key: dict[str, Any] | None, ascii_only: bool) -> bytes:
    body: dict[str, Any] = {"Items": page_items, "Count": len(page_items), "ScannedCount": len(page_items) + 3}
    if last_key is not None:
        body["LastEvaluatedKey"] = last_key
    body["ConsumedCapacity"] = {"TableName": "orders", "CapacityUnits": 2.5}
    # Both escaped (\uXXXX, surrogate pairs) and raw UTF-8 text reach a client; check both.
    return json.dumps(to_wire(body), ensure_ascii=True).encode() if ascii_only else orjson.dumps(to_wire(body))


def botocore_parse(body: bytes) -> dict[str, Any]:
    response = {"status_code": 200, "headers": {"x-amzn-requestid": "R"}, "body": body}
    parsed: dict[str, Any] = botocore.parsers.create_parser("json").parse(response, _SCAN_OUTPUT)
    return parsed


def fast_parse(body: bytes) -> dict[str, Any]:
    """What botocore's endpoint does with the fast handler registered: handler, parser, then the merge."""
    response = {"status_code": 200, "headers": {"x-amzn-requestid": "R"}, "body": body}
    customized: dict[str, Any] = {}
    _read_fast(response_dict=response, customized_response_dict=customized)
    parsed: dict[str, Any] = botocore.parsers.create_parser("json").parse(response, _SCAN_OUTPUT)
    parsed.update(customized)
    return parsed


def boto3_value(attribute_value: dict[str, Any]) -> Any:
    """TypeDeserializer's value with its ``Binary`` wrapper turned into ``bytes``, at any depth."""
    return normalise_binary(_DESERIALIZER.deserialize(attribute_value))  # type: ignore[arg-type]


def normalise_binary(value: Any) -> Any:
    if isinstance(value, Binary):
        return bytes(value.value)  # type: ignore[attr-defined]
    if isinstance(value, dict):
        return {name: normalise_binary(nested) for name, nested in value.items()}
    if isinstance(value, list):
        return [normalise_binary(nested) for nested in value]
    if isinstance(value, set):
        return {normalise_binary(nested) for nested in value}
    return value


def exact(value: Any) -> Any:
    """A form that compares types and every digit: ``Decimal('1.0')`` differs from ``Decimal('1')``, and
    ``True`` from ``Decimal(1)``."""
    if isinstance(value, dict):
        return ("dict", sorted((name, exact(nested)) for name, nested in value.items()))
    if isinstance(value, list):
        return ("list", [exact(nested) for nested in value])
    if isinstance(value, set):
        return ("set", sorted(repr(exact(nested)) for nested in value))
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    return (type(value).__name__, value)


_PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@_PROPERTY_SETTINGS
@given(st.lists(items, max_size=5), last_evaluated_keys, st.booleans())
def test_fast_path_equals_botocore_and_type_deserializer(
    page_items: list[dict[str, Any]], last_key: dict[str, Any] | None, ascii_only: bool
) -> None:
    body = scan_body(page_items, last_key, ascii_only)
    reference = botocore_parse(body)
    fast = fast_parse(body)

    expected = [{name: boto3_value(value) for name, value in item.items()} for item in reference["Items"]]
    decoded = _page_of(fast, True, None, None).items
    assert exact(decoded) == exact(expected)
    # The fast_decoding=False path (botocore's parser, then our decoder) agrees as well.
    assert exact([deserialize_item(item) for item in reference["Items"]]) == exact(expected)

    raw = _page_of(fast, False, None, None).items
    assert raw == reference["Items"] == page_items
    assert exact(raw) == exact(reference["Items"])

    assert "Items" not in fast and WIRE_ITEMS_KEY not in reference
    assert fast.get("LastEvaluatedKey") == reference.get("LastEvaluatedKey") == last_key
    for field in ("Count", "ScannedCount", "ConsumedCapacity", "ResponseMetadata"):
        assert fast[field] == reference[field]


@_PROPERTY_SETTINGS
@given(number_texts())
def test_numbers_keep_every_digit(text: str) -> None:
    body = scan_body([{"n": {"N": text}, "ns": {"NS": [text]}}], None, ascii_only=False)
    (item,) = _page_of(fast_parse(body), True, None, None).items
    reference = DYNAMODB_CONTEXT.create_decimal(text)
    assert exact(item["n"]) == exact(reference) == ("Decimal", str(Decimal(text)))
    assert item["ns"] == {reference}


def test_error_responses_are_left_to_botocore() -> None:
    body = b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow"}'
    response = {"status_code": 400, "headers": {}, "body": body}
    customized: dict[str, Any] = {}
    _read_fast(response_dict=response, customized_response_dict=customized)
    assert customized == {}
    assert response["body"] == body
    error = botocore.parsers.create_parser("json").parse(response, _SCAN_OUTPUT)["Error"]
    assert error == {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}
