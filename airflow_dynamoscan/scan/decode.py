"""
Lossless decoding of DynamoDB AttributeValues, and a fast reader of Scan and Query responses.

Two shapes of AttributeValue reach this module:

* the *client* shape, as botocore's low-level client returns it: ``B`` values are ``bytes``, numbers are
  strings, sets are lists;
* the *wire* shape, the JSON on the HTTP body: the same, except that ``B`` values are base64 text.

Both decode to plain Python values: ``S`` -> ``str``, ``N`` -> ``decimal.Decimal`` (exact, any precision),
``B`` -> ``bytes``, ``SS``/``NS``/``BS`` -> ``set``, ``BOOL`` -> ``bool``, ``NULL`` -> ``None``, ``L`` ->
``list``, ``M`` -> ``dict``, nested to any depth.
"""

from __future__ import annotations

import base64
import logging
import weakref
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import botocore
import orjson

from airflow_dynamoscan.scan.memory import parse_body

#: Key under which the fast reader leaves a response's items, still in the wire shape.
WIRE_ITEMS_KEY = "DynamoScanWireItems"

_FAST_OPERATIONS = ("Scan", "Query")

#: The first botocore release that emits the ``before-parse`` event the fast decoder hooks into.
FAST_DECODING_MIN_BOTOCORE = (1, 35, 16)

log = logging.getLogger(__name__)


def fast_decoding_available(version: str | None = None) -> bool:
    """Whether botocore (``version``, default the installed one) lets the fast decoder read responses."""
    parts = []
    for part in (version or botocore.__version__).split(".")[:3]:
        digits = "".join(char for char in part if char.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts) >= FAST_DECODING_MIN_BOTOCORE


Item = dict[str, Any]


def _make_value_decoder(to_bytes: Callable[[Any], bytes]) -> Callable[[Mapping[str, Any]], Any]:
    def decode(attribute_value: Mapping[str, Any]) -> Any:
        for tag, value in attribute_value.items():
            if tag == "S":
                return value
            if tag == "N":
                return Decimal(value)
            if tag == "M":
                return {name: decode(nested) for name, nested in value.items()}
            if tag == "L":
                return [decode(nested) for nested in value]
            if tag == "BOOL":
                return value
            if tag == "NULL":
                return None
            if tag == "B":
                return to_bytes(value)
            if tag == "SS":
                return set(value)
            if tag == "NS":
                return {Decimal(number) for number in value}
            if tag == "BS":
                return {to_bytes(blob) for blob in value}
            raise unknown_type_error(tag)
        raise empty_value_error()

    return decode


def unknown_type_error(tag: object) -> ValueError:
    """The error for an AttributeValue whose type key DynamoDB does not have."""
    return ValueError(f"Unknown DynamoDB AttributeValue type {tag!r}; allowed: {_ALLOWED_TAGS}.")


def empty_value_error() -> ValueError:
    """The error for an AttributeValue without a type key."""
    return ValueError("Empty DynamoDB AttributeValue: it must hold exactly one type key.")


def _client_bytes(value: Any) -> bytes:
    return bytes(value)


_ALLOWED_TAGS = "S, N, B, SS, NS, BS, BOOL, NULL, L, M"
_decode_client_value = _make_value_decoder(_client_bytes)
_decode_wire_value = _make_value_decoder(base64.b64decode)


def deserialize_attribute_value(attribute_value: Mapping[str, Any]) -> Any:
    """Return the Python value of one AttributeValue in the client shape (``B`` as bytes)."""
    return _decode_client_value(attribute_value)


def deserialize_item(item: Mapping[str, Mapping[str, Any]]) -> Item:
    """Return a plain-Python item from an item in the client shape, as botocore's low-level client returns it."""
    return {name: _decode_client_value(value) for name, value in item.items()}


def deserialize_wire_item(item: Mapping[str, Mapping[str, Any]]) -> Item:
    """Return a plain-Python item from an item in the wire shape (``B`` as base64 text)."""
    return {name: _decode_wire_value(value) for name, value in item.items()}


def deserialize_wire_value(attribute_value: Mapping[str, Any]) -> Any:
    """Return the Python value of one AttributeValue in the wire shape (``B`` as base64 text)."""
    return _decode_wire_value(attribute_value)


def _make_blob_converter(convert_blob: Callable[[Any], Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An AttributeValue converter that changes only ``B``/``BS`` values (with ``convert_blob``), at any depth."""

    def convert(attribute_value: dict[str, Any]) -> dict[str, Any]:
        for tag, value in attribute_value.items():
            if tag == "M":
                return {"M": {name: convert(nested) for name, nested in value.items()}}
            if tag == "L":
                return {"L": [convert(nested) for nested in value]}
            if tag == "B":
                return {"B": convert_blob(value)}
            if tag == "BS":
                return {"BS": [convert_blob(blob) for blob in value]}
        return attribute_value

    return convert


def _base64_text(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


_wire_value_to_client = _make_blob_converter(base64.b64decode)
_client_value_to_wire = _make_blob_converter(_base64_text)


def wire_item_to_client_item(item: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return a wire-shape item in the client shape: exactly what botocore's low-level client would return."""
    return {name: _wire_value_to_client(value) for name, value in item.items()}


def client_item_to_wire_item(item: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return a client-shape item (``B`` as bytes) in the wire shape (``B`` as base64 text), e.g. to store as JSON."""
    return {name: _client_value_to_wire(value) for name, value in item.items()}


def _read_fast(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    # Errors keep botocore's own parsing, so its exceptions, retries and error codes stay as they are.
    if response_dict.get("status_code", 500) >= 300:
        return
    body = parse_body(response_dict["body"], orjson.loads)
    items = body.pop("Items", None)
    if items is not None:
        customized_response_dict[WIRE_ITEMS_KEY] = items
    last_key = body.get("LastEvaluatedKey")
    if last_key is not None:
        body["LastEvaluatedKey"] = wire_item_to_client_item(last_key)
    customized_response_dict.update(body)
    # botocore's generic parser now only has the response metadata left to read.
    response_dict["body"] = b"{}"


_fast_clients: weakref.WeakSet[Any] = weakref.WeakSet()


def has_fast_decoding(client: Any) -> bool:
    """Whether :func:`install_fast_decoding` made ``client`` read Scan responses itself."""
    return client in _fast_clients


def install_fast_decoding(client: Any) -> Any:
    """
    Make ``client`` read Scan and Query responses with ``orjson`` instead of botocore's generic parser.

    The items of a successful response are left, undecoded, under :data:`WIRE_ITEMS_KEY` instead of
    ``Items``; the scanner decodes them in one pass. ``LastEvaluatedKey``, ``Count``, ``ScannedCount`` and
    ``ConsumedCapacity`` keep their usual names and shapes. Signing, retries, endpoints and error responses are
    untouched. Use it only on a client of your own: other callers of the same client would not find ``Items``.

    With a botocore older than :data:`FAST_DECODING_MIN_BOTOCORE` (it has no ``before-parse`` event) the client is
    left as it is: botocore's own parser reads the responses, with the same items, more slowly.

    :return: the same client.
    """
    if not fast_decoding_available():
        log.info(
            "botocore %s reads Scan responses with its own parser; fast decoding needs botocore >= %s",
            botocore.__version__,
            ".".join(map(str, FAST_DECODING_MIN_BOTOCORE)),
        )
        return client
    for operation in _FAST_OPERATIONS:
        client.meta.events.register(
            f"before-parse.dynamodb.{operation}", _read_fast, unique_id=f"dynamoscan-{operation}"
        )
    _fast_clients.add(client)
    return client
